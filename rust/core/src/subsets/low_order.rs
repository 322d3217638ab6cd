//! Order-≤k transforms: Möbius and zeta on the subsets of at most k players only.
//!
//! The Möbius value of S needs only the values of the subsets of S, so from the C(n, ≤k) values
//! v(T), |T| ≤ k, the interactions I(S), |S| ≤ k, are exact (and back with zeta). Subsets are
//! stored in graded colex order: by size, then by bitmask value (within one size this is the colex
//! order, ranked by the combinatorial number system): the subset {c₀ < c₁ < … < c_{m−1}} of size
//! m sits at C(n, <m) + Σᵢ C(cᵢ, i+1). `low_order_masks` lists the bitmasks in that order.

use crate::error::{NilError, Result};
use rayon::prelude::*;

/// Largest number of players (bitmasks are u64).
pub const MAX_LOW_ORDER_PLAYERS: usize = 64;
/// Largest number of subsets of size ≤ k (indices are u32).
pub const MAX_LOW_ORDER_SUBSETS: usize = 1 << 31;

/// The two truncated transforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowOrderKind {
    /// I(S) = Σ_{T⊆S} (−1)^{|S∖T|} v(T) for |S| ≤ k.
    Mobius,
    /// v(T) = Σ_{S⊆T} I(S) for |T| ≤ k.
    Zeta,
}

impl LowOrderKind {
    /// The kind called `name` ("mobius" or "zeta").
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "mobius" => Ok(Self::Mobius),
            "zeta" => Ok(Self::Zeta),
            _ => Err(NilError::Value(format!(
                "order-≤k transform: expected \"mobius\" or \"zeta\", found {name:?}"
            ))),
        }
    }
}

fn binomials(n: usize) -> Vec<Vec<u128>> {
    let mut c = vec![vec![0u128; n + 2]; n + 1];
    for a in 0..=n {
        c[a][0] = 1;
        for b in 1..=a {
            c[a][b] = c[a - 1][b - 1] + c[a - 1][b];
        }
    }
    c
}

fn check(n: usize, k: usize) -> Result<()> {
    if n > MAX_LOW_ORDER_PLAYERS {
        return Err(NilError::Value(format!(
            "order-≤k transform: at most {MAX_LOW_ORDER_PLAYERS} players, found {n}"
        )));
    }
    if k > n {
        return Err(NilError::Value(format!(
            "order-≤k transform: the order k = {k} exceeds the number of players n = {n}"
        )));
    }
    Ok(())
}

/// C(n, ≤k) = Σ_{m≤k} C(n, m): the number of subsets of size at most k.
pub fn low_order_count(n: usize, k: usize) -> Result<usize> {
    check(n, k)?;
    let c = binomials(n);
    let total: u128 = (0..=k).map(|m| c[n][m]).sum();
    if total > MAX_LOW_ORDER_SUBSETS as u128 {
        return Err(NilError::Value(format!(
            "order-≤k transform: C({n}, ≤{k}) = {total} subsets exceed the limit of {MAX_LOW_ORDER_SUBSETS}"
        )));
    }
    Ok(total as usize)
}

/// The bitmasks of every subset of size ≤ k, in graded colex order.
pub fn low_order_masks(n: usize, k: usize) -> Result<Vec<u64>> {
    let count = low_order_count(n, k)?;
    let mut out = Vec::with_capacity(count);
    out.push(0u64);
    let limit: u128 = 1u128 << n;
    for m in 1..=k {
        // Gosper's hack: the next larger integer with the same number of set bits.
        let mut s: u128 = (1u128 << m) - 1;
        while s < limit {
            out.push(s as u64);
            let c = s & s.wrapping_neg();
            let r = s + c;
            s = (((r ^ s) >> 2) / c) | r;
        }
    }
    debug_assert_eq!(out.len(), count);
    Ok(out)
}

/// Index pairs (S, S∖{h}) for every bit h, as (position of S, position of S∖{h}).
struct Plan {
    pairs: Vec<Vec<(u32, u32)>>,
    count: usize,
}

fn plan(n: usize, k: usize) -> Result<Plan> {
    let masks = low_order_masks(n, k)?;
    let c = binomials(n);
    let mut offset = vec![0u128; k + 2];
    for m in 0..=k {
        offset[m + 1] = offset[m] + c[n][m];
    }
    let rank = |mask: u64| -> u32 {
        let m = mask.count_ones() as usize;
        let mut r = offset[m];
        let mut rest = mask;
        let mut i = 1;
        while rest != 0 {
            let e = rest.trailing_zeros() as usize;
            r += c[e][i];
            i += 1;
            rest &= rest - 1;
        }
        r as u32
    };
    let mut pairs = vec![Vec::new(); n];
    for (pos, &s) in masks.iter().enumerate() {
        debug_assert_eq!(rank(s) as usize, pos);
        let mut rest = s;
        while rest != 0 {
            let h = rest.trailing_zeros() as usize;
            pairs[h].push((pos as u32, rank(s & !(1u64 << h))));
            rest &= rest - 1;
        }
    }
    Ok(Plan {
        pairs,
        count: masks.len(),
    })
}

/// Applies the order-≤k Möbius or zeta transform in place to every row of `data` (rows of
/// C(n, ≤k) values in graded colex order).
pub fn low_order_transform(data: &mut [f64], n: usize, k: usize, kind: LowOrderKind) -> Result<()> {
    let plan = plan(n, k)?;
    let len = plan.count;
    if data.len() % len != 0 {
        return Err(NilError::shape(
            "order-≤k transform",
            format!("a whole number of rows of C({n}, ≤{k}) = {len} values"),
            format!("{} values", data.len()),
        ));
    }
    let sign = match kind {
        LowOrderKind::Mobius => -1.0,
        LowOrderKind::Zeta => 1.0,
    };
    data.par_chunks_mut(len).for_each(|row| {
        for bit in &plan.pairs {
            for &(s, t) in bit {
                row[s as usize] += sign * row[t as usize];
            }
        }
    });
    Ok(())
}

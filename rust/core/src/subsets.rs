//! Fast transforms over subsets: zeta, Möbius (AND interactions), co-Möbius and the OR
//! interactions of symbolic-interaction analysis, their inverses and transposes, in place, in
//! O(n·2^n) f64 operations.
//!
//! A function of n players is a row of 2^n values, the value of subset S at index S read as a
//! bitmask (bit i set ⇔ player i ∈ S). Rows are batched: a slice of `rows · 2^n` values holds one
//! row after the other, and rows are spread over the current rayon pool (one large row is itself
//! split between threads). Definitions, with N the full set and |S| the size of S:
//!
//! - zeta: (ζv)(S) = Σ_{T⊆S} v(T); Möbius: (μv)(S) = Σ_{T⊆S} (−1)^{|S∖T|} v(T) = ζ⁻¹. The AND
//!   (Harsanyi) interactions of v are μv.
//! - their transposes are the superset sums: (ζᵀv)(S) = Σ_{T⊇S} v(T) and
//!   (μᵀv)(S) = Σ_{T⊇S} (−1)^{|T∖S|} v(T).
//! - co-Möbius (Grabisch–Marichal, shapiq's "Co-Moebius"): (m*v)(S) = Σ_{T⊆S} (−1)^{|T|} v(N∖T);
//!   `CoZeta` is its inverse, v(T) = Σ_{S⊆N∖T} (−1)^{|S|} (m*v)(S).
//! - OR interactions (Li & Zhang 2023): I_or(S) = −Σ_{T⊆S} (−1)^{|S|−|T|} v(N∖T) for S ≠ ∅ and
//!   I_or(∅) = v(∅), so that v(T) = I_or(∅) + Σ_{S∩T≠∅} I_or(S) (`OrInverse`). For S ≠ ∅,
//!   I_or(S) = (−1)^{|S|+1} (m*v)(S).
//!
//! With F the reversal of a row (index S ↦ N∖S, since N∖S = (2^n − 1) − S) and D the sign
//! (−1)^{|S|}: m* = D μ F, its inverse F ζ D, and the transposes follow by reversing the order.

mod butterfly;
mod low_order;

use crate::error::{NilError, Result};
use butterfly::{Pass, Tiles, DEFAULT_TILES};
use rayon::prelude::*;

pub use low_order::{low_order_count, low_order_masks, low_order_transform, LowOrderKind};

/// The transforms this module applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Sum over subsets, ζ.
    Zeta,
    /// Möbius, μ = ζ⁻¹: the AND (Harsanyi) interactions.
    Mobius,
    /// Sum over supersets, ζᵀ.
    SupersetZeta,
    /// Superset Möbius, μᵀ = (ζᵀ)⁻¹.
    SupersetMobius,
    /// Co-Möbius m* = D μ F.
    CoMobius,
    /// The inverse of co-Möbius, F ζ D.
    CoZeta,
    /// OR interactions, with I_or(∅) = v(∅).
    Or,
    /// Values from OR interactions: v(T) = I_or(∅) + Σ_{S∩T≠∅} I_or(S).
    OrInverse,
}

impl Transform {
    /// Every transform, in the order of its names.
    pub const ALL: [Transform; 8] = [
        Transform::Zeta,
        Transform::Mobius,
        Transform::SupersetZeta,
        Transform::SupersetMobius,
        Transform::CoMobius,
        Transform::CoZeta,
        Transform::Or,
        Transform::OrInverse,
    ];

    /// The name used by the bindings.
    pub fn name(self) -> &'static str {
        match self {
            Transform::Zeta => "zeta",
            Transform::Mobius => "mobius",
            Transform::SupersetZeta => "superset_zeta",
            Transform::SupersetMobius => "superset_mobius",
            Transform::CoMobius => "co_mobius",
            Transform::CoZeta => "co_zeta",
            Transform::Or => "or",
            Transform::OrInverse => "or_inverse",
        }
    }

    /// The transform called `name`.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                NilError::Value(format!(
                    "subset transform: expected one of {:?}, found {name:?}",
                    Self::ALL.map(|t| t.name())
                ))
            })
    }

    /// The inverse transform.
    pub fn inverse(self) -> Self {
        match self {
            Transform::Zeta => Transform::Mobius,
            Transform::Mobius => Transform::Zeta,
            Transform::SupersetZeta => Transform::SupersetMobius,
            Transform::SupersetMobius => Transform::SupersetZeta,
            Transform::CoMobius => Transform::CoZeta,
            Transform::CoZeta => Transform::CoMobius,
            Transform::Or => Transform::OrInverse,
            Transform::OrInverse => Transform::Or,
        }
    }
}

/// Largest number of players of a full transform (2^30 values are 8 GiB per row).
pub const MAX_PLAYERS: usize = 30;

/// n such that `len` = 2^n, or a shape error naming `context`.
pub fn players_of(len: usize, context: &str) -> Result<usize> {
    if len == 0 || !len.is_power_of_two() || len.trailing_zeros() as usize > MAX_PLAYERS {
        return Err(NilError::shape(
            context,
            format!("rows of 2^n values (n ≤ {MAX_PLAYERS})"),
            format!("rows of {len}"),
        ));
    }
    Ok(len.trailing_zeros() as usize)
}

/// Inputs smaller than this many values are transformed on the calling thread (tens of
/// microseconds: less than handing them to the pool would cost).
pub const SERIAL_BELOW: usize = 1 << 15;

/// Applies `t` (or its transpose) in place to every row of `data`, rows of 2^n values each.
pub fn transform_rows(data: &mut [f64], n: usize, t: Transform, transpose: bool) -> Result<()> {
    transform_rows_with(data, n, t, transpose, DEFAULT_TILES)
}

fn transform_rows_with(
    data: &mut [f64],
    n: usize,
    t: Transform,
    transpose: bool,
    tiles: Tiles,
) -> Result<()> {
    if n > MAX_PLAYERS {
        return Err(NilError::Value(format!(
            "subset transform: at most {MAX_PLAYERS} players, found {n}"
        )));
    }
    let len = 1usize << n;
    if data.len() % len != 0 {
        return Err(NilError::shape(
            "subset transform",
            format!("a whole number of rows of 2^{n} = {len} values"),
            format!("{} values", data.len()),
        ));
    }
    let rows = data.len() / len;
    if data.len() < SERIAL_BELOW {
        let mut scratch = Vec::new();
        for row in data.chunks_exact_mut(len) {
            apply_row(row, n, t, transpose, tiles, &mut scratch, false);
        }
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    if rows == 1 && threads > 1 && len >= 1 << 16 {
        apply_row(data, n, t, transpose, tiles, &mut Vec::new(), true);
    } else {
        data.par_chunks_mut(len)
            .with_min_len((1 << 14) / len.min(1 << 14))
            .for_each_init(Vec::new, |scratch, row| {
                apply_row(row, n, t, transpose, tiles, scratch, false)
            });
    }
    Ok(())
}

/// Applies `t` (or its transpose) to every row of `data` on the calling thread (for callers that
/// are already parallel over problems); `scratch` is reused between calls.
pub(crate) fn transform_serial(
    data: &mut [f64],
    n: usize,
    t: Transform,
    transpose: bool,
    scratch: &mut Vec<f64>,
) {
    for row in data.chunks_exact_mut(1 << n) {
        apply_row(row, n, t, transpose, DEFAULT_TILES, scratch, false);
    }
}

/// One row, in place; `parallel` spreads a single large row over the pool.
fn apply_row(
    x: &mut [f64],
    n: usize,
    t: Transform,
    transpose: bool,
    tiles: Tiles,
    scratch: &mut Vec<f64>,
    parallel: bool,
) {
    let pass = |x: &mut [f64], p: Pass, scratch: &mut Vec<f64>| {
        if parallel {
            butterfly::apply_parallel(x, n, p, tiles)
        } else {
            butterfly::apply(x, n, 1, p, tiles, scratch)
        }
    };
    use Transform::*;
    match (t, transpose) {
        (Zeta, false) | (SupersetZeta, true) => pass(x, Pass::SubsetAdd, scratch),
        (Mobius, false) | (SupersetMobius, true) => pass(x, Pass::SubsetSub, scratch),
        (SupersetZeta, false) | (Zeta, true) => pass(x, Pass::SupersetAdd, scratch),
        (SupersetMobius, false) | (Mobius, true) => pass(x, Pass::SupersetSub, scratch),
        (CoMobius, false) => {
            // D μ F
            x.reverse();
            pass(x, Pass::SubsetSub, scratch);
            parity_sign(x);
        }
        (CoMobius, true) => {
            // (D μ F)ᵀ = F μᵀ D
            parity_sign(x);
            pass(x, Pass::SupersetSub, scratch);
            x.reverse();
        }
        (CoZeta, false) => {
            // F ζ D
            parity_sign(x);
            pass(x, Pass::SubsetAdd, scratch);
            x.reverse();
        }
        (CoZeta, true) => {
            // D ζᵀ F
            x.reverse();
            pass(x, Pass::SupersetAdd, scratch);
            parity_sign(x);
        }
        (Or, false) => {
            // Ω x = −μ(F x), then I_or(∅) = x(∅)
            let empty = x[0];
            x.reverse();
            pass(x, Pass::SubsetSub, scratch);
            negate(x);
            x[0] = empty;
        }
        (Or, true) => {
            // Ωᵀ y = −F μᵀ (y with y(∅) = 0) + y(∅)·e_∅
            let empty = x[0];
            x[0] = 0.0;
            pass(x, Pass::SupersetSub, scratch);
            negate(x);
            x.reverse();
            x[0] += empty;
        }
        (OrInverse, false) => {
            // R o = (Σ o)·1 − F ζ (o with o(∅) = 0)
            let total = pairwise_sum(x);
            x[0] = 0.0;
            pass(x, Pass::SubsetAdd, scratch);
            x.reverse();
            x.iter_mut().for_each(|v| *v = total - *v);
        }
        (OrInverse, true) => {
            // Rᵀ y = (Σ y)·1 − P ζᵀ F y, P zeroing the ∅ entry
            let total = pairwise_sum(x);
            x.reverse();
            pass(x, Pass::SupersetAdd, scratch);
            x[0] = 0.0;
            x.iter_mut().for_each(|v| *v = total - *v);
        }
    }
}

/// Multiplies the value of every odd-sized subset by −1 (the diagonal D).
fn parity_sign(x: &mut [f64]) {
    for (i, v) in x.iter_mut().enumerate() {
        if i.count_ones() & 1 == 1 {
            *v = -*v;
        }
    }
}

fn negate(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = -*v);
}

/// Σ x by pairwise summation (error O(log n · ε · Σ|x|) instead of O(n · ε · Σ|x|)).
pub(crate) fn pairwise_sum(x: &[f64]) -> f64 {
    if x.len() <= 64 {
        return x.iter().sum();
    }
    let (a, b) = x.split_at(x.len() / 2);
    pairwise_sum(a) + pairwise_sum(b)
}

#[cfg(test)]
mod tests;

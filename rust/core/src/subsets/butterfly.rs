//! The in-place butterfly over subsets, cache-blocked, with contiguous inner loops.
//!
//! A row of 2^m vectors of width w (row-major, the vector of subset S at S·w) is transformed one
//! bit at a time: for bit h, blocks of 2^(h+1)·w hold a lower half (S without h) and an upper half
//! (S with h), and one half is added to or subtracted from the other element by element. The bits
//! commute, so they may be taken in any order. A row that fits the L2-sized scratch budget does its
//! low bits inside L1-sized contiguous tiles, then its high bits in place (long inner loops over
//! whole tiles). A larger row takes two passes over memory: scratch-sized contiguous tiles for the
//! low bits, then column chunks of the high bits gathered into a scratch buffer, where the same
//! scheme recurses. Tile sizes are parameters so that the tests can drive every path at small
//! sizes.

/// Which half is updated from which, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// x[S ∪ h] += x[S]: the sum over subsets (zeta).
    SubsetAdd,
    /// x[S ∪ h] −= x[S]: its inverse (Möbius).
    SubsetSub,
    /// x[S] += x[S ∪ h]: the sum over supersets (the transpose of zeta).
    SupersetAdd,
    /// x[S] −= x[S ∪ h]: its inverse (the transpose of Möbius).
    SupersetSub,
}

/// Sizes, in f64 elements, of the blocked kernel's working sets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tiles {
    /// Rows of at most this many elements are transformed directly, bit after bit (≈ L1 size).
    pub base: usize,
    /// Column chunks of the high phase are gathered into a buffer of at most this many elements
    /// (≈ half the L2 size).
    pub scratch: usize,
}

/// 32 KiB direct tiles and 256 KiB scratch tiles: fit the L1 and L2 caches of current x86 cores
/// (chosen by timing n = 12…24 on a Sapphire Rapids core).
pub(crate) const DEFAULT_TILES: Tiles = Tiles {
    base: 1 << 12,
    scratch: 1 << 15,
};

#[inline(always)]
fn combine<const UP: bool, const ADD: bool>(lo: &mut [f64], hi: &mut [f64]) {
    if UP {
        if ADD {
            hi.iter_mut().zip(lo.iter()).for_each(|(a, b)| *a += *b);
        } else {
            hi.iter_mut().zip(lo.iter()).for_each(|(a, b)| *a -= *b);
        }
    } else if ADD {
        lo.iter_mut().zip(hi.iter()).for_each(|(a, b)| *a += *b);
    } else {
        lo.iter_mut().zip(hi.iter()).for_each(|(a, b)| *a -= *b);
    }
}

#[inline(always)]
fn pair<const UP: bool, const ADD: bool>(c: &mut [f64], i: usize, j: usize) {
    // i is the index without the bit, j the index with it.
    match (UP, ADD) {
        (true, true) => c[j] += c[i],
        (true, false) => c[j] -= c[i],
        (false, true) => c[i] += c[j],
        (false, false) => c[i] -= c[j],
    }
}

/// Bits 0, 1 and 2 of a width-1 row in one sweep over chunks of eight values.
#[inline(always)]
fn low3<const UP: bool, const ADD: bool>(x: &mut [f64]) {
    for c in x.chunks_exact_mut(8) {
        for (i, j) in [(0, 1), (2, 3), (4, 5), (6, 7)] {
            pair::<UP, ADD>(c, i, j);
        }
        for (i, j) in [(0, 2), (1, 3), (4, 6), (5, 7)] {
            pair::<UP, ADD>(c, i, j);
        }
        for (i, j) in [(0, 4), (1, 5), (2, 6), (3, 7)] {
            pair::<UP, ADD>(c, i, j);
        }
    }
}

/// Every bit of the row index, one after the other (the data should fit a fast cache).
#[inline(always)]
fn direct_body<const UP: bool, const ADD: bool>(x: &mut [f64], m: usize, w: usize) {
    let mut h = 0;
    if w == 1 && m >= 3 {
        low3::<UP, ADD>(x);
        h = 3;
    }
    while h < m {
        let half = w << h;
        for block in x.chunks_exact_mut(2 * half) {
            let (lo, hi) = block.split_at_mut(half);
            combine::<UP, ADD>(lo, hi);
        }
        h += 1;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn direct_avx2<const UP: bool, const ADD: bool>(x: &mut [f64], m: usize, w: usize) {
    direct_body::<UP, ADD>(x, m, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn direct_avx512<const UP: bool, const ADD: bool>(x: &mut [f64], m: usize, w: usize) {
    direct_body::<UP, ADD>(x, m, w)
}

/// The widest vector instructions this CPU has, detected once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Simd {
    Plain,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn simd() -> Simd {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<Simd> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Simd::Avx2;
            }
        }
        Simd::Plain
    })
}

fn direct_typed<const UP: bool, const ADD: bool>(x: &mut [f64], m: usize, w: usize) {
    match simd() {
        // SAFETY: the CPU was detected to support the instructions these functions enable.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { direct_avx512::<UP, ADD>(x, m, w) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { direct_avx2::<UP, ADD>(x, m, w) },
        Simd::Plain => direct_body::<UP, ADD>(x, m, w),
    }
}

fn direct(x: &mut [f64], m: usize, w: usize, pass: Pass) {
    match pass {
        Pass::SubsetAdd => direct_typed::<true, true>(x, m, w),
        Pass::SubsetSub => direct_typed::<true, false>(x, m, w),
        Pass::SupersetAdd => direct_typed::<false, true>(x, m, w),
        Pass::SupersetSub => direct_typed::<false, false>(x, m, w),
    }
}

/// How a row of 2^m vectors of width w is blocked: None when it is transformed directly, else
/// the low bits done inside contiguous tiles of 2^lo vectors.
fn low_bits(m: usize, w: usize, tiles: Tiles) -> Option<usize> {
    if (w << m) <= tiles.base || 2 * w > tiles.base {
        return None;
    }
    let mut lo = 1;
    while lo + 1 < m && (w << (lo + 1)) <= tiles.base {
        lo += 1;
    }
    Some(lo)
}

/// Width of the column chunks of the high phase: the scratch buffer holds 2^hi of them.
fn chunk_cols(hi: usize, row: usize, tiles: Tiles) -> usize {
    let min = 8.min(row);
    ((tiles.scratch >> hi).max(min).min(row))
        .next_power_of_two()
        .min(row)
}

/// Every bit of a row that fits the scratch budget: the low bits inside L1-sized tiles, then
/// the high bits in place (rows of a whole tile, so the inner loops are long).
fn apply_cached(x: &mut [f64], m: usize, w: usize, pass: Pass, tiles: Tiles) {
    let Some(lo) = low_bits(m, w, tiles) else {
        direct(x, m, w, pass);
        return;
    };
    let row = w << lo;
    for tile in x.chunks_exact_mut(row) {
        direct(tile, lo, w, pass);
    }
    direct(x, m - lo, row, pass);
}

/// Bits of a scratch-sized tile: log2(scratch / w), at least 1 and at most m − 1.
fn tile_bits(m: usize, w: usize, tiles: Tiles) -> usize {
    let mut lo = 1;
    while lo + 1 < m && (w << (lo + 1)) <= tiles.scratch {
        lo += 1;
    }
    lo
}

/// Applies `pass` over all m bits of the row index of `x`, viewed as 2^m vectors of width `w`
/// (w and the tile sizes are powers of two). Rows larger than the scratch budget take two passes
/// over memory: scratch-sized contiguous tiles for the low bits, then column chunks of the high
/// bits gathered into `scratch` (reused across calls).
pub(crate) fn apply(
    x: &mut [f64],
    m: usize,
    w: usize,
    pass: Pass,
    tiles: Tiles,
    scratch: &mut Vec<f64>,
) {
    debug_assert_eq!(x.len(), w << m);
    if x.len() <= tiles.scratch || m <= 1 {
        apply_cached(x, m, w, pass, tiles);
        return;
    }
    let lo = tile_bits(m, w, tiles);
    let hi = m - lo;
    let row = w << lo;
    for tile in x.chunks_exact_mut(row) {
        apply_cached(tile, lo, w, pass, tiles);
    }
    let rows = 1usize << hi;
    let cols = chunk_cols(hi, row, tiles);
    let mut buf = std::mem::take(scratch);
    buf.resize(rows * cols, 0.0);
    let mut inner = Vec::new();
    for c0 in (0..row).step_by(cols) {
        gather(x, &mut buf, rows, row, c0, cols);
        apply(&mut buf, hi, cols, pass, tiles, &mut inner);
        scatter(x, &buf, rows, row, c0, cols);
    }
    *scratch = buf;
}

fn gather(x: &[f64], buf: &mut [f64], rows: usize, row: usize, c0: usize, cols: usize) {
    for r in 0..rows {
        buf[r * cols..(r + 1) * cols].copy_from_slice(&x[r * row + c0..r * row + c0 + cols]);
    }
}

fn scatter(x: &mut [f64], buf: &[f64], rows: usize, row: usize, c0: usize, cols: usize) {
    for r in 0..rows {
        x[r * row + c0..r * row + c0 + cols].copy_from_slice(&buf[r * cols..(r + 1) * cols]);
    }
}

/// A raw pointer that may cross threads: the parallel high phase below hands each task a set of
/// column chunks that no other task touches.
#[derive(Clone, Copy)]
struct SharedRow(*mut f64);
// SAFETY: tasks only access disjoint index sets through it (see `apply_parallel`).
unsafe impl Send for SharedRow {}
// SAFETY: as above.
unsafe impl Sync for SharedRow {}

/// `apply` on one large row (w = 1) with both phases spread over the current rayon pool.
pub(crate) fn apply_parallel(x: &mut [f64], m: usize, pass: Pass, tiles: Tiles) {
    use rayon::prelude::*;
    if x.len() <= tiles.scratch || m <= 1 {
        apply_cached(x, m, 1, pass, tiles);
        return;
    }
    let lo = tile_bits(m, 1, tiles);
    let hi = m - lo;
    let row = 1usize << lo;
    x.par_chunks_mut(row)
        .for_each(|tile| apply_cached(tile, lo, 1, pass, tiles));
    let rows = 1usize << hi;
    let cols = chunk_cols(hi, row, tiles);
    let len = x.len();
    let base = SharedRow(x.as_mut_ptr());
    (0..row / cols).into_par_iter().for_each_init(
        || (vec![0.0; rows * cols], Vec::new()),
        |(buf, inner), chunk| {
            let c0 = chunk * cols;
            let p = base;
            for r in 0..rows {
                let start = r * row + c0;
                debug_assert!(start + cols <= len);
                // SAFETY: chunk `chunk` reads and writes only the elements r·row + c0 .. + cols of
                // every row r; chunks are disjoint column ranges, so no two tasks alias, and every
                // range lies inside x (start + cols ≤ rows·row = len).
                let src = unsafe { std::slice::from_raw_parts(p.0.add(start), cols) };
                buf[r * cols..(r + 1) * cols].copy_from_slice(src);
            }
            apply(buf, hi, cols, pass, tiles, inner);
            for r in 0..rows {
                let start = r * row + c0;
                // SAFETY: as above.
                let dst = unsafe { std::slice::from_raw_parts_mut(p.0.add(start), cols) };
                dst.copy_from_slice(&buf[r * cols..(r + 1) * cols]);
            }
        },
    );
}

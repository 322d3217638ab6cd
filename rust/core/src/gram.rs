//! Streaming Gram accumulation: S = Σ g gᵀ over gradient rows, in f64, one triangle, in parallel.
//!
//! Rows are widened exactly to f64 in blocks and multiplied by faer's triangular product, so every
//! product of f32/f16/bf16 inputs is exact and only the f64 sums round.

use crate::dtype::Widen;
use crate::error::{NilError, Result};
use crate::limits::{add_counts, check_accumulator_memory, square_len};
use faer::linalg::matmul::triangular::{matmul, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::ArrayView2;
use rayon::prelude::*;

/// What to do with a row that holds NaN or infinity.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NonFinitePolicy {
    /// Fail the whole update; the accumulator is left unchanged.
    Raise,
    /// Leave the row out and count it in `nonfinite`.
    Skip,
}

/// How the products g gᵀ are formed (the sums are always f64).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Products in f64: exact for f32/f16/bf16 inputs; only the f64 sums round.
    Exact,
    /// Products summed in f32 over blocks of at most [`FAST_BLOCK_ROWS`] rows, blocks summed in
    /// f64: relative error about √512·2⁻²⁴ ≈ 1e-6 on an entry, at f32 matrix-product speed.
    /// A block holding a value whose f32 products could overflow (|x| > 2⁵⁸) or underflow
    /// (0 < |x| < 2⁻⁶³) is formed in f64 instead, so the answer never becomes inf or loses small
    /// values. f64 inputs always use `Exact`.
    Fast,
}

/// Largest |x| whose f32 products over [`FAST_BLOCK_ROWS`] rows cannot overflow: 512·(2⁵⁸)² = 2¹²⁵,
/// far below f32::MAX ≈ 2¹²⁸.
const FAST_MAX_ABS: f32 = (1u64 << 58) as f32;

/// Smallest nonzero |x| whose f32 products stay normal: (2⁻⁶³)² = 2⁻¹²⁶ = f32::MIN_POSITIVE.
const FAST_MIN_ABS: f32 = 1.0 / (1u64 << 63) as f32;

/// Rows whose f32 products are summed in f32 before entering the f64 sum ([`Precision::Fast`]).
pub const FAST_BLOCK_ROWS: usize = 512;

/// Below this many elements a step runs on the calling thread: thread-pool dispatch costs more
/// than the work (it dominated reductions of many small layers).
const SMALL: usize = 1 << 14;

/// Target number of f64 elements in one widened block of rows (16 MiB).
const BLOCK_ELEMS: usize = 1 << 21;

/// Rows per block for a given dimension.
fn block_rows(dim: usize) -> usize {
    (BLOCK_ELEMS / dim.max(1)).clamp(64, 16384)
}

/// The streaming average gradient outer product (1/n)·GᵀG, kept as the exact f64 sum GᵀG.
#[derive(Clone, Debug)]
pub struct AgopAccumulator {
    dim: usize,
    /// Column-major d×d; only the lower triangle (with diagonal) is maintained.
    sum: Vec<f64>,
    count: u64,
    nonfinite: u64,
}

impl AgopAccumulator {
    /// An empty accumulator for rows of length `dim` (1 ≤ dim ≤ [`crate::limits::MAX_DIM`]).
    ///
    /// Fails cleanly, never aborting, when the d×d sum does not fit in the memory available.
    pub fn new(dim: usize) -> Result<Self> {
        check_accumulator_memory("AgopAccumulator", dim)?;
        Ok(Self {
            dim,
            sum: zeroed(dim)?,
            count: 0,
            nonfinite: 0,
        })
    }

    /// Rebuilds an accumulator from a stored sum (either triangle or full) and counts.
    pub fn from_parts(
        dim: usize,
        sum_row_major: &[f64],
        count: u64,
        nonfinite: u64,
    ) -> Result<Self> {
        if Some(sum_row_major.len()) != dim.checked_mul(dim) {
            return Err(NilError::shape(
                "AgopAccumulator sum",
                format!("{dim}x{dim}"),
                format!("{} values", sum_row_major.len()),
            ));
        }
        let mut acc = Self::new(dim)?;
        // Row-major (i, j) with i >= j is column-major lower (i, j): index j*dim + i.
        for i in 0..dim {
            for j in 0..=i {
                acc.sum[j * dim + i] = sum_row_major[i * dim + j];
            }
        }
        acc.count = count;
        acc.nonfinite = nonfinite;
        Ok(acc)
    }

    /// Row length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows accumulated.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Rows skipped for holding non-finite values.
    pub fn nonfinite(&self) -> u64 {
        self.nonfinite
    }

    /// Adds every row of `rows` (any strides) to the sum.
    ///
    /// With [`NonFinitePolicy::Raise`] a non-finite value fails the call and leaves the
    /// accumulator as it was; with [`NonFinitePolicy::Skip`] such rows are counted and left out.
    pub fn update<T: Widen + 'static>(
        &mut self,
        rows: ArrayView2<'_, T>,
        policy: NonFinitePolicy,
    ) -> Result<()> {
        self.update_with(rows, policy, Precision::Exact)
    }

    /// [`update`](Self::update) with a choice of [`Precision`].
    pub fn update_with<T: Widen + 'static>(
        &mut self,
        rows: ArrayView2<'_, T>,
        policy: NonFinitePolicy,
        precision: Precision,
    ) -> Result<()> {
        let (n, d) = rows.dim();
        if d != self.dim {
            return Err(NilError::shape(
                "AgopAccumulator.update: row length",
                self.dim,
                d,
            ));
        }
        if n == 0 {
            return Ok(());
        }
        if precision == Precision::Fast && T::NARROW_EXACT {
            return self.update_fast(rows, policy);
        }
        let br = block_rows(d);
        let mut panel = vec![0.0f64; br.min(n) * d];
        if n <= br {
            let (kept, skipped) = widen_block(rows, 0, policy, &mut panel, T::widen_row)?;
            let count = add_counts("AgopAccumulator", self.count, kept as u64)?;
            let nonfinite =
                add_counts("AgopAccumulator (non-finite rows)", self.nonfinite, skipped)?;
            gram_add(&mut self.sum, d, &panel[..kept * d], kept);
            self.count = count;
            self.nonfinite = nonfinite;
            return Ok(());
        }
        // Several blocks: sum into a scratch triangle and commit only if every block succeeds.
        let mut scratch = zeroed(d)?;
        let (kept, skipped) =
            for_each_block(rows, br, policy, &mut panel, T::widen_row, |p, k| {
                gram_add(&mut scratch, d, p, k)
            })?;
        self.commit(&scratch, kept, skipped)
    }

    /// [`Precision::Fast`]: f32 products over blocks of rows, each block's f32 products added to
    /// a scratch f64 triangle, committed when every block succeeded.
    ///
    /// Contiguous f32 blocks whose values are all in range are multiplied where they lie (one
    /// check pass, no copy); other blocks are converted into a reused f32 panel, checked in the
    /// same pass, and a block with a non-finite or out-of-range value takes the careful path.
    fn update_fast<T: Widen + 'static>(
        &mut self,
        rows: ArrayView2<'_, T>,
        policy: NonFinitePolicy,
    ) -> Result<()> {
        let (n, d) = rows.dim();
        let br = FAST_BLOCK_ROWS.min(n);
        let mut panel: Vec<f32> = Vec::new();
        let mut scratch = zeroed(d)?;
        let kernel = FastGram::new(d);
        let mut wide: Vec<f64> = Vec::new();
        let (mut kept_total, mut skipped_total) = (0u64, 0u64);
        let mut start = 0;
        while start < n {
            let (b0, end) = (start, (start + br).min(n));
            start = end;
            let block = rows.slice(ndarray::s![b0..end, ..]);
            if let Some(src) = as_f32_slice(&block) {
                if f32_products_safe(src, d) {
                    kernel.add(&mut scratch, src, end - b0);
                    kept_total += (end - b0) as u64;
                    continue;
                }
            }
            if panel.is_empty() {
                panel = vec![0.0f32; br * d];
            }
            let (kept, skipped, safe) = narrow_block(block, b0 as u64, policy, &mut panel)?;
            kept_total += kept as u64;
            skipped_total += skipped;
            if kept == 0 {
                continue;
            }
            let p = &panel[..kept * d];
            if safe {
                kernel.add(&mut scratch, p, kept);
            } else {
                // Values whose f32 products would overflow or underflow: this block in f64
                // (f32 → f64 is exact, so the block is as exact as Precision::Exact).
                wide.clear();
                wide.extend(p.iter().map(|&x| x as f64));
                gram_add(&mut scratch, d, &wide, kept);
            }
        }
        self.commit(&scratch, kept_total, skipped_total)
    }

    /// Adds a scratch triangle and its row counts to the accumulator (unchanged on overflow).
    fn commit(&mut self, scratch: &[f64], kept: u64, skipped: u64) -> Result<()> {
        let count = add_counts("AgopAccumulator", self.count, kept)?;
        let nonfinite = add_counts("AgopAccumulator (non-finite rows)", self.nonfinite, skipped)?;
        add_lower(&mut self.sum, scratch, self.dim);
        self.count = count;
        self.nonfinite = nonfinite;
        Ok(())
    }

    /// Adds another accumulator's rows; exact up to f64 rounding of the sums.
    pub fn merge(&mut self, other: &AgopAccumulator) -> Result<()> {
        if other.dim != self.dim {
            return Err(NilError::shape(
                "AgopAccumulator.merge: dim",
                self.dim,
                other.dim,
            ));
        }
        let count = add_counts("AgopAccumulator.merge", self.count, other.count)?;
        let nonfinite = add_counts(
            "AgopAccumulator.merge (non-finite rows)",
            self.nonfinite,
            other.nonfinite,
        )?;
        add_lower(&mut self.sum, &other.sum, self.dim);
        self.count = count;
        self.nonfinite = nonfinite;
        Ok(())
    }

    /// The full symmetric sum GᵀG, row-major.
    pub fn sum_matrix(&self) -> Vec<f64> {
        let d = self.dim;
        let mut out = vec![0.0; d * d];
        let fill = |(i, row): (usize, &mut [f64])| {
            for (j, v) in row.iter_mut().enumerate() {
                let (r, c) = if i >= j { (i, j) } else { (j, i) };
                *v = self.sum[c * d + r];
            }
        };
        if d * d < SMALL {
            out.chunks_mut(d).enumerate().for_each(fill);
        } else {
            out.par_chunks_mut(d).enumerate().for_each(fill);
        }
        out
    }

    /// The AGOP (1/n)·GᵀG, row-major; all NaN when no row has been accumulated.
    pub fn matrix(&self) -> Vec<f64> {
        let mut m = self.sum_matrix();
        let scale = if self.count == 0 {
            f64::NAN
        } else {
            1.0 / self.count as f64
        };
        m.iter_mut().for_each(|v| *v *= scale);
        m
    }
}

/// A zeroed d×d f64 triangle buffer, allocated fallibly (a clean error instead of an abort).
fn zeroed(dim: usize) -> Result<Vec<f64>> {
    let n = square_len("AgopAccumulator", dim)?;
    let mut v: Vec<f64> = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        NilError::Memory(format!(
            "AgopAccumulator: cannot allocate {} for a d×d float64 sum of dim {dim}",
            crate::limits::human((n as u64).saturating_mul(8))
        ))
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Whether every f32 product of a block of at most [`FAST_BLOCK_ROWS`] rows, and every sum of
/// them, is finite and normal: all |x| ≤ 2⁵⁸ and every nonzero |x| ≥ 2⁻⁶³. Branch-free on the
/// bits (|x| as an integer orders like |x|), so it vectorises: about 0.1 ns an element.
fn f32_products_safe(panel: &[f32], d: usize) -> bool {
    const MAX: u32 = FAST_MAX_ABS.to_bits();
    const MIN: u32 = FAST_MIN_ABS.to_bits();
    let ok = |row: &[f32]| {
        let bad = row.iter().fold(false, |bad, x| {
            let a = x.to_bits() & 0x7fff_ffff;
            // a > MAX: too large, infinite or NaN; 0 < a < MIN: too small (a = 0 wraps around).
            bad | (a > MAX) | (a.wrapping_sub(1) < MIN - 1)
        });
        !bad
    };
    if panel.len() < 1 << 16 {
        ok(panel)
    } else {
        panel.par_chunks(d.max(1 << 12)).all(ok)
    }
}

/// A block of f32 rows as one row-major slice, when it is f32 and laid out that way (no copy).
fn as_f32_slice<'a, T: 'static>(block: &ArrayView2<'a, T>) -> Option<&'a [f32]> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<f32>() {
        return None;
    }
    let s = block.to_slice()?;
    // SAFETY: T is f32 (checked above), so the slice is reinterpreted as itself.
    Some(unsafe { std::slice::from_raw_parts(s.as_ptr() as *const f32, s.len()) })
}

/// Converts one row to f32 (exact for f32, f16 and bf16): slices in a vectorised loop (f16 through
/// its F16C conversion), other strides element by element.
fn narrow_row<T: Widen + 'static>(row: ndarray::ArrayView1<'_, T>, out: &mut [f32]) {
    match row.as_slice() {
        Some(s)
            if std::any::TypeId::of::<T>() != std::any::TypeId::of::<crate::dtype::F16Bits>() =>
        {
            // f32 and bf16 (a shift) convert inline; a table lookup (f16) would not vectorise.
            for (o, v) in out.iter_mut().zip(s) {
                *o = v.narrow();
            }
        }
        _ => T::narrow_row(row, out),
    }
}

/// (holds a non-finite value, holds a value whose f32 products could overflow or underflow), in
/// one branch-free pass over the bits (|x| as an integer orders like |x|).
fn classify_f32(row: &[f32]) -> (bool, bool) {
    const MAX: u32 = FAST_MAX_ABS.to_bits();
    const MIN: u32 = FAST_MIN_ABS.to_bits();
    const INF: u32 = 0x7f80_0000;
    row.iter().fold((false, false), |(nonfinite, unsafe_), x| {
        let a = x.to_bits() & 0x7fff_ffff;
        (
            nonfinite | (a >= INF),
            unsafe_ | (a > MAX) | (a.wrapping_sub(1) < MIN - 1),
        )
    })
}

/// Converts `rows` into `panel` (row-major f32), checking every value in the same pass; drops or
/// rejects non-finite rows as [`widen_block`] does. Returns (rows kept, rows skipped, whether the
/// kept rows' f32 products are all safe).
fn narrow_block<T: Widen + 'static>(
    rows: ArrayView2<'_, T>,
    offset: u64,
    policy: NonFinitePolicy,
    panel: &mut [f32],
) -> Result<(usize, u64, bool)> {
    let (n, d) = rows.dim();
    let panel = &mut panel[..n * d];
    let row = |(i, out): (usize, &mut [f32])| {
        narrow_row(rows.row(i), out);
        classify_f32(out)
    };
    let flags: Vec<(bool, bool)> = if n * d < SMALL {
        panel.chunks_mut(d).enumerate().map(row).collect()
    } else {
        panel.par_chunks_mut(d).enumerate().map(row).collect()
    };
    let Some(first_bad) = flags.iter().position(|f| f.0) else {
        return Ok((n, 0, !flags.iter().any(|f| f.1)));
    };
    if policy == NonFinitePolicy::Raise {
        let value = panel[first_bad * d..(first_bad + 1) * d]
            .iter()
            .find(|x| !x.is_finite())
            .map_or(f64::NAN, |&x| x as f64);
        return Err(NilError::NonFinite {
            context: "AgopAccumulator.update".into(),
            row: offset + first_bad as u64,
            value,
        });
    }
    // Compact the finite rows to the front.
    let (mut kept, mut safe) = (0, true);
    for (i, &(nonfinite, unsafe_)) in flags.iter().enumerate() {
        if !nonfinite {
            if kept != i {
                panel.copy_within(i * d..(i + 1) * d, kept * d);
            }
            safe &= !unsafe_;
            kept += 1;
        }
    }
    Ok((kept, (n - kept) as u64, safe))
}

/// Largest dim multiplied in panels by [`FastGram`]; above it, one whole-triangle product.
const PANEL_MAX_DIM: usize = 2048;

/// Columns per panel of the lower triangle in [`FastGram`] (its tasks' width).
const PANEL_COLS: usize = 128;
/// Rows per rectangle below a panel's diagonal tile (a task's f32 tile stays in L2: 256 KiB).
const PANEL_ROWS: usize = 512;

/// One task of a block product: the tile rows i0.., columns j0..j0+cols of lower(PᵀP); the tile
/// on the diagonal (i0 == j0) is a triangle.
#[derive(Copy, Clone, Debug)]
struct Tile {
    i0: usize,
    j0: usize,
    rows: usize,
    cols: usize,
}

/// The f32 product of a block of rows, added to an f64 triangle: the lower triangle is cut into
/// column panels, each a triangle on the diagonal (faer's triangular kernel) and rectangles below
/// it (the `gemm` crate's f32 kernel); tasks run in parallel, each forms its tile in f32 in a
/// thread-local buffer and adds it to the f64 sum while it is in cache.
///
/// Above [`PANEL_MAX_DIM`] one triangular product of the whole block (faer, parallel) into a
/// reused f32 triangle was faster side by side (issue 14: 2-core VM, d = 4096), so it is used there.
struct FastGram {
    d: usize,
    tiles: Vec<Tile>,
    /// The f32 triangle of the whole-block product (d > [`PANEL_MAX_DIM`] only).
    whole: std::cell::RefCell<Vec<f32>>,
}

impl FastGram {
    fn new(d: usize) -> Self {
        let mut tiles = Vec::new();
        let mut j0 = 0;
        while j0 < d {
            let cols = (d - j0).min(PANEL_COLS);
            tiles.push(Tile {
                i0: j0,
                j0,
                rows: cols,
                cols,
            });
            let mut i0 = j0 + cols;
            while i0 < d {
                let rows = (d - i0).min(PANEL_ROWS);
                tiles.push(Tile { i0, j0, rows, cols });
                i0 += rows;
            }
            j0 += cols;
        }
        // Largest first, so the last tasks to finish are small ones.
        tiles
            .sort_by_key(|t| std::cmp::Reverse(t.rows * t.cols / if t.i0 == t.j0 { 2 } else { 1 }));
        Self {
            d,
            tiles,
            whole: Default::default(),
        }
    }

    /// lower(sum) += PᵀP for a row-major f32 panel P of `k` rows, products summed in f32.
    fn add(&self, sum: &mut [f64], p: &[f32], k: usize) {
        let d = self.d;
        if d > PANEL_MAX_DIM {
            let mut whole = self.whole.borrow_mut();
            if whole.is_empty() {
                *whole = vec![0.0f32; d * d];
            }
            gram_lower(&mut whole, d, p, k, Accum::Replace);
            add_lower(sum, &whole, d);
            return;
        }
        let out = SyncPtr(sum.as_mut_ptr());
        let tile = |buf: &mut Vec<f32>, t: &Tile| {
            let buf = &mut buf[..t.rows * t.cols];
            tile_product(buf, d, p, k, t);
            // SAFETY: tiles are disjoint parts of the d×d column-major sum, so no two tasks
            // write the same element; `sum` outlives the scope of the tasks.
            unsafe { add_tile(out, d, buf, t) };
        };
        let len = self
            .tiles
            .iter()
            .map(|t| t.rows * t.cols)
            .max()
            .unwrap_or(0);
        let buf = || vec![0.0f32; len];
        if self.tiles.len() == 1 || k * d * d < 1 << 16 {
            let mut b = buf();
            self.tiles.iter().for_each(|t| tile(&mut b, t));
        } else {
            self.tiles.par_iter().for_each_init(buf, tile);
        }
    }
}

/// A raw pointer that may cross threads (tasks write disjoint tiles through it).
#[derive(Copy, Clone)]
struct SyncPtr(*mut f64);
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

/// buf (column-major, `t.rows` × `t.cols`) = P[:, i0..]ᵀ P[:, j0..] in f32, on one thread.
fn tile_product(buf: &mut [f32], d: usize, p: &[f32], k: usize, t: &Tile) {
    if t.i0 == t.j0 {
        let pm = MatRef::from_row_major_slice(p, k, d).subcols(t.j0, t.cols);
        let dst = MatMut::from_column_major_slice_mut(buf, t.rows, t.cols);
        matmul(
            dst,
            BlockStructure::TriangularLower,
            Accum::Replace,
            pm.transpose(),
            BlockStructure::Rectangular,
            pm,
            BlockStructure::Rectangular,
            1.0f32,
            Par::Seq,
        );
    } else {
        // SAFETY: lhs(r, c) = P[c, i0 + r] and rhs(r, c) = P[r, j0 + c] stay inside the k × d
        // panel, and dst(r, c) = buf[c·rows + r] inside buf; gemm reads dst only when asked to.
        unsafe {
            gemm::gemm(
                t.rows,
                t.cols,
                k,
                buf.as_mut_ptr(),
                t.rows as isize,
                1,
                false,
                p.as_ptr().add(t.i0),
                d as isize,
                1,
                p.as_ptr().add(t.j0),
                1,
                d as isize,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// sum[tile] += buf, f32 widened exactly (only the lower part of a diagonal tile).
///
/// # Safety
/// `out` points at a d×d column-major f64 matrix, no other thread touches this tile.
unsafe fn add_tile(out: SyncPtr, d: usize, buf: &[f32], t: &Tile) {
    for c in 0..t.cols {
        let col = out.0.add((t.j0 + c) * d + t.i0);
        let r0 = if t.i0 == t.j0 { c } else { 0 };
        let dst = std::slice::from_raw_parts_mut(col.add(r0), t.rows - r0);
        for (o, &v) in dst.iter_mut().zip(&buf[c * t.rows + r0..(c + 1) * t.rows]) {
            *o += v as f64;
        }
    }
}

/// Converts `rows` block by block (`br` rows at a time) into `panel` and calls `step(kept rows,
/// count)` on every block with at least one kept row; returns the rows kept and skipped in total.
fn for_each_block<T: Widen, P: Copy + Send + Sync + Into<f64>>(
    rows: ArrayView2<'_, T>,
    br: usize,
    policy: NonFinitePolicy,
    panel: &mut [P],
    convert_row: impl Fn(ndarray::ArrayView1<'_, T>, &mut [P]) + Sync + Copy,
    mut step: impl FnMut(&[P], usize),
) -> Result<(u64, u64)> {
    let (n, d) = rows.dim();
    let (mut kept_total, mut skipped_total) = (0u64, 0u64);
    let mut start = 0;
    while start < n {
        let end = (start + br).min(n);
        let block = rows.slice(ndarray::s![start..end, ..]);
        let (kept, skipped) = widen_block(block, start as u64, policy, panel, convert_row)?;
        if kept > 0 {
            step(&panel[..kept * d], kept);
        }
        kept_total += kept as u64;
        skipped_total += skipped;
        start = end;
    }
    Ok((kept_total, skipped_total))
}

/// Widens `rows` into `panel` (row-major, contiguous), dropping or rejecting non-finite rows.
/// Returns (rows kept, rows skipped). `offset` numbers rows in error messages.
fn widen_block<T: Widen, P: Copy + Send + Sync + Into<f64>>(
    rows: ArrayView2<'_, T>,
    offset: u64,
    policy: NonFinitePolicy,
    panel: &mut [P],
    convert_row: impl Fn(ndarray::ArrayView1<'_, T>, &mut [P]) + Sync,
) -> Result<(usize, u64)> {
    let (n, d) = rows.dim();
    let panel = &mut panel[..n * d];
    // Convert (in parallel unless the block is small); each row reports its first non-finite
    // value, if any.
    let row = |(i, out): (usize, &mut [P])| {
        convert_row(rows.row(i), out);
        if out.iter().all(|&x| Into::<f64>::into(x).is_finite()) {
            None
        } else {
            out.iter()
                .map(|&x| Into::<f64>::into(x))
                .find(|w| !w.is_finite())
        }
    };
    let finite: Vec<Option<f64>> = if n * d < SMALL {
        panel.chunks_mut(d).enumerate().map(row).collect()
    } else {
        panel.par_chunks_mut(d).enumerate().map(row).collect()
    };
    let first_bad = finite.iter().position(|b| b.is_some());
    let Some(first_bad) = first_bad else {
        return Ok((n, 0));
    };
    if policy == NonFinitePolicy::Raise {
        return Err(NilError::NonFinite {
            context: "AgopAccumulator.update".into(),
            row: offset + first_bad as u64,
            value: finite[first_bad].unwrap(),
        });
    }
    // Compact the finite rows to the front.
    let mut kept = 0;
    for (i, bad) in finite.iter().enumerate() {
        if bad.is_none() {
            if kept != i {
                panel.copy_within(i * d..(i + 1) * d, kept * d);
            }
            kept += 1;
        }
    }
    Ok((kept, (n - kept) as u64))
}

/// lower(S) += Pᵀ P for a row-major f64 panel P of `rows` × `d`.
pub(crate) fn gram_add(sum: &mut [f64], d: usize, panel: &[f64], rows: usize) {
    if rows > 0 {
        gram_lower(sum, d, panel, rows, Accum::Add);
    }
}

/// lower(S) = Pᵀ P (`Accum::Replace`) or lower(S) += Pᵀ P (`Accum::Add`) for a row-major panel,
/// by faer's triangular product (one triangle, parallel above a small size).
fn gram_lower<T: faer::traits::ComplexField + Copy + From<f32>>(
    sum: &mut [T],
    d: usize,
    panel: &[T],
    rows: usize,
    accum: Accum,
) {
    let p = MatRef::from_row_major_slice(panel, rows, d);
    let dst = MatMut::from_column_major_slice_mut(sum, d, d);
    let par = if rows * d * d < 1 << 16 {
        Par::Seq
    } else {
        Par::rayon(0)
    };
    matmul(
        dst,
        BlockStructure::TriangularLower,
        accum,
        p.transpose(),
        BlockStructure::Rectangular,
        p,
        BlockStructure::Rectangular,
        T::from(1.0f32),
        par,
    );
}

/// lower(dst) += lower(src), both column-major d×d (src f64 or f32, widened exactly).
fn add_lower<S: Copy + Send + Sync + Into<f64>>(dst: &mut [f64], src: &[S], d: usize) {
    let column = |(j, (dc, sc)): (usize, (&mut [f64], &[S]))| {
        for i in j..d {
            dc[i] += sc[i].into();
        }
    };
    if d * d < SMALL {
        dst.chunks_mut(d)
            .zip(src.chunks(d))
            .enumerate()
            .for_each(column);
    } else {
        dst.par_chunks_mut(d)
            .zip(src.par_chunks(d))
            .enumerate()
            .for_each(column);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(rows: &Array2<f64>) -> Vec<f64> {
        let (n, d) = rows.dim();
        let mut m = vec![0.0; d * d];
        for r in 0..n {
            for i in 0..d {
                for j in 0..d {
                    m[i * d + j] += rows[[r, i]] * rows[[r, j]];
                }
            }
        }
        m.iter().map(|v| v / n as f64).collect()
    }

    fn lcg(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    #[test]
    fn matches_naive_and_is_symmetric() {
        let rows = Array2::from_shape_vec((37, 9), lcg(37 * 9, 1)).unwrap();
        let mut acc = AgopAccumulator::new(9).unwrap();
        acc.update(rows.view(), NonFinitePolicy::Raise).unwrap();
        let m = acc.matrix();
        for (a, b) in m.iter().zip(naive(&rows)) {
            assert!((a - b).abs() < 1e-14);
        }
        for i in 0..9 {
            for j in 0..9 {
                assert_eq!(m[i * 9 + j], m[j * 9 + i]);
            }
        }
    }

    #[test]
    fn many_blocks_and_strided_views_agree() {
        let d = 3;
        let n = block_rows(d) * 2 + 17;
        let rows = Array2::from_shape_vec((n, d), lcg(n * d, 2)).unwrap();
        let mut one = AgopAccumulator::new(d).unwrap();
        one.update(rows.view(), NonFinitePolicy::Raise).unwrap();
        let t = rows.t().to_owned();
        let mut strided = AgopAccumulator::new(d).unwrap();
        strided.update(t.t(), NonFinitePolicy::Raise).unwrap();
        for (a, b) in one.matrix().iter().zip(strided.matrix()) {
            assert!((a - b).abs() < 1e-12 * a.abs().max(1e-3));
        }
        assert_eq!(one.count(), n as u64);
    }

    #[test]
    fn merge_equals_single_update() {
        let rows = Array2::from_shape_vec((20, 4), lcg(80, 3)).unwrap();
        let mut whole = AgopAccumulator::new(4).unwrap();
        whole.update(rows.view(), NonFinitePolicy::Raise).unwrap();
        let mut a = AgopAccumulator::new(4).unwrap();
        let mut b = AgopAccumulator::new(4).unwrap();
        a.update(rows.slice(ndarray::s![..7, ..]), NonFinitePolicy::Raise)
            .unwrap();
        b.update(rows.slice(ndarray::s![7.., ..]), NonFinitePolicy::Raise)
            .unwrap();
        a.merge(&b).unwrap();
        for (x, y) in a.matrix().iter().zip(whole.matrix()) {
            assert!((x - y).abs() < 1e-14);
        }
    }

    #[test]
    fn nonfinite_raise_leaves_state_and_skip_counts() {
        let mut rows = Array2::from_shape_vec((5, 2), lcg(10, 4)).unwrap();
        rows[[3, 1]] = f64::NAN;
        let mut acc = AgopAccumulator::new(2).unwrap();
        let err = acc.update(rows.view(), NonFinitePolicy::Raise).unwrap_err();
        assert!(matches!(err, NilError::NonFinite { row: 3, .. }));
        assert_eq!(acc.count(), 0);
        acc.update(rows.view(), NonFinitePolicy::Skip).unwrap();
        assert_eq!((acc.count(), acc.nonfinite()), (4, 1));
    }

    #[test]
    fn fast_precision_never_overflows_or_underflows() {
        for scale in [1e20f32, 1e-25, 3e38] {
            let mut rows = Array2::<f32>::from_elem((600, 3), scale);
            rows[[5, 1]] = 1.0;
            let mut fast = AgopAccumulator::new(3).unwrap();
            fast.update_with(rows.view(), NonFinitePolicy::Raise, Precision::Fast)
                .unwrap();
            let mut exact = AgopAccumulator::new(3).unwrap();
            exact
                .update_with(rows.view(), NonFinitePolicy::Raise, Precision::Exact)
                .unwrap();
            for (a, b) in fast.matrix().iter().zip(exact.matrix()) {
                assert!(a.is_finite() && *a != 0.0, "scale {scale}: {a}");
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs(),
                    "scale {scale}: {a} vs {b}"
                );
            }
        }
        // Ordinary values still take the f32 path (and differ from exact only by rounding).
        let rows = Array2::from_shape_vec((40, 3), lcg(120, 9))
            .unwrap()
            .mapv(|v| v as f32);
        assert!(f32_products_safe(rows.as_slice().unwrap(), 3));
    }

    fn fast_and_exact<T: Widen + 'static>(
        rows: ArrayView2<'_, T>,
        policy: NonFinitePolicy,
    ) -> (AgopAccumulator, AgopAccumulator) {
        let d = rows.ncols();
        let mut fast = AgopAccumulator::new(d).unwrap();
        fast.update_with(rows, policy, Precision::Fast).unwrap();
        let mut exact = AgopAccumulator::new(d).unwrap();
        exact.update_with(rows, policy, Precision::Exact).unwrap();
        (fast, exact)
    }

    fn assert_close(a: &AgopAccumulator, b: &AgopAccumulator, tol: f64) {
        assert_eq!((a.count(), a.nonfinite()), (b.count(), b.nonfinite()));
        let (ma, mb) = (a.sum_matrix(), b.sum_matrix());
        let scale = mb.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = ma
            .iter()
            .zip(&mb)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        eprintln!("worst error / largest entry: {:.3e}", worst / scale);
        assert!(worst <= tol * scale, "{worst} vs {scale}");
    }

    #[test]
    fn fast_tiles_match_exact_for_every_layout_and_dtype() {
        // d spans several panels (diagonal triangles and rectangles), n several blocks and a
        // partial one.
        let (n, d) = (2 * FAST_BLOCK_ROWS + 77, 2 * PANEL_COLS + 45);
        let x = Array2::from_shape_vec((n, d), lcg(n * d, 5))
            .unwrap()
            .mapv(|v| v as f32);
        let (fast, exact) = fast_and_exact(x.view(), NonFinitePolicy::Raise);
        assert_close(&fast, &exact, 4e-6);
        let t = x.t().to_owned();
        let (strided, _) = fast_and_exact(t.t(), NonFinitePolicy::Raise);
        assert_close(&strided, &exact, 4e-6);
        let h = x.mapv(|v| crate::dtype::F16Bits(half::f16::from_f32(v).to_bits()));
        let (fast, exact) = fast_and_exact(h.view(), NonFinitePolicy::Raise);
        assert_close(&fast, &exact, 4e-6);
        let b = x.mapv(|v| crate::dtype::Bf16Bits(half::bf16::from_f32(v).to_bits()));
        let (fast, exact) = fast_and_exact(b.view(), NonFinitePolicy::Raise);
        assert_close(&fast, &exact, 4e-6);
    }

    #[test]
    fn fast_nonfinite_rows_raise_or_skip_as_exact() {
        let (n, d) = (3 * FAST_BLOCK_ROWS, 40);
        let mut x = Array2::from_shape_vec((n, d), lcg(n * d, 6))
            .unwrap()
            .mapv(|v| v as f32);
        x[[FAST_BLOCK_ROWS + 3, 7]] = f32::NAN;
        x[[FAST_BLOCK_ROWS + 9, 1]] = f32::INFINITY;
        x[[FAST_BLOCK_ROWS + 11, 2]] = 1e30; // out of the f32 range: that block in f64
        let mut acc = AgopAccumulator::new(d).unwrap();
        let err = acc
            .update_with(x.view(), NonFinitePolicy::Raise, Precision::Fast)
            .unwrap_err();
        assert!(
            matches!(err, NilError::NonFinite { row, value, .. } if row == FAST_BLOCK_ROWS as u64 + 3 && value.is_nan()),
            "{err}"
        );
        assert_eq!(acc.count(), 0);
        assert!(acc.sum_matrix().iter().all(|&v| v == 0.0));
        let (fast, exact) = fast_and_exact(x.view(), NonFinitePolicy::Skip);
        assert_eq!((fast.count(), fast.nonfinite()), (n as u64 - 2, 2));
        assert_close(&fast, &exact, 4e-6);
        let b = x.mapv(|v| crate::dtype::Bf16Bits(half::bf16::from_f32(v).to_bits()));
        let (fast, exact) = fast_and_exact(b.view(), NonFinitePolicy::Skip);
        assert_eq!(fast.nonfinite(), 2);
        assert_close(&fast, &exact, 4e-6);
    }

    #[test]
    fn counts_never_wrap() {
        let mut a = AgopAccumulator::from_parts(1, &[1.0], u64::MAX, 0).unwrap();
        let b = AgopAccumulator::from_parts(1, &[1.0], 10, 0).unwrap();
        let e = a.merge(&b).unwrap_err().to_string();
        assert!(e.contains("overflow"), "{e}");
        assert_eq!(a.count(), u64::MAX);
        let rows = Array2::<f32>::ones((2, 1));
        assert!(a.update(rows.view(), NonFinitePolicy::Raise).is_err());
        assert_eq!(a.sum_matrix(), vec![1.0]);
    }

    #[test]
    fn absurd_dims_are_errors_not_panics() {
        for d in [1usize << 32, 3_037_000_500, usize::MAX] {
            assert!(
                matches!(AgopAccumulator::new(d), Err(NilError::Value(_))),
                "{d}"
            );
        }
        assert!(AgopAccumulator::from_parts(1 << 33, &[], 0, 0).is_err());
    }

    #[test]
    fn empty_accumulator_is_nan_and_bad_dims_fail() {
        let acc = AgopAccumulator::new(2).unwrap();
        assert!(acc.matrix().iter().all(|v| v.is_nan()));
        assert!(AgopAccumulator::new(0).is_err());
        let mut acc = AgopAccumulator::new(3).unwrap();
        let rows = Array2::<f32>::zeros((2, 4));
        assert!(matches!(
            acc.update(rows.view(), NonFinitePolicy::Raise),
            Err(NilError::Shape { .. })
        ));
    }
}

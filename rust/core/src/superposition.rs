//! Superposition statistics of a feature matrix W (V features × d dimensions), streamed in row blocks
//! so that no V×V matrix and no f64 copy of W is ever held (METHOD.md §2.4, §8 R5).

use crate::dtype::Widen;
use crate::error::{NilError, Result};
use crate::gram::gram_add;
use crate::special::{chi2_sf, chi_mean};
use crate::stats::{interaction_stats, Convention, InteractionStats};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{s, ArrayView2};
use rayon::prelude::*;

/// Min, mean, median, max and standard deviation of a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Summary {
    /// Summary of `v`; all NaN when `v` is empty.
    pub fn of(v: &[f64]) -> Summary {
        if v.is_empty() {
            let n = f64::NAN;
            return Summary {
                mean: n,
                std: n,
                min: n,
                median: n,
                max: n,
            };
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let mut sorted = v.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let m = sorted.len();
        let median = if m % 2 == 1 {
            sorted[m / 2]
        } else {
            0.5 * (sorted[m / 2 - 1] + sorted[m / 2])
        };
        Summary {
            mean,
            std: var.sqrt(),
            min: sorted[0],
            median,
            max: sorted[m - 1],
        }
    }
}

/// Everything `superposition_stats` reports.
#[derive(Clone, Debug)]
pub struct SuperpositionStats {
    pub features: usize,
    pub dim: usize,
    /// Rows with zero norm (left out of overlap and dimensionality).
    pub zero_rows: usize,
    pub row_norms: Summary,
    /// (threshold, fraction of rows with norm ≥ threshold).
    pub fraction_represented: Vec<(f64, f64)>,
    /// Mean over ordered pairs i ≠ j of (ŵᵢ·ŵⱼ)² for normalised non-zero rows.
    pub mean_sq_overlap: f64,
    /// Per-feature dimensionality Dᵢ = ‖wᵢ‖⁴ / Σⱼ (wᵢ·wⱼ)².
    pub dimensionality: Summary,
    /// Σᵢ Dᵢ (close to d when the space is fully used).
    pub dimensionality_sum: f64,
    /// Interaction statistics of WᵀW / V.
    pub wtw: InteractionStats,
    /// The Gram WᵀW / V itself, row-major d×d.
    pub wtw_matrix: Vec<f64>,
    /// Per-entry variance σ² of the matching Gaussian null (mean squared entry of W).
    pub null_sigma2: f64,
    pub null_row_norm_mean: f64,
    pub null_fraction_represented: Vec<(f64, f64)>,
    pub null_mean_sq_overlap: f64,
    pub null_dimensionality_mean: f64,
    pub null_wtw_aofe_ratio: f64,
    pub null_wtw_weighted_mean_cos2: f64,
    pub null_wtw_participation_ratio: f64,
}

/// Rows per streamed block for dimension d (about 16 MiB of f64).
fn block_rows(d: usize) -> usize {
    ((1usize << 21) / d.max(1)).clamp(64, 65536)
}

fn widen_rows<T: Widen>(w: ArrayView2<'_, T>, panel: &mut [f64]) {
    let d = w.ncols();
    panel.par_chunks_mut(d).enumerate().for_each(|(i, out)| {
        for (o, v) in out.iter_mut().zip(w.row(i).iter()) {
            *o = v.widen();
        }
    });
}

/// Superposition statistics of `w` (rows are features). `spectrum` adds WᵀW's eigenvalues.
pub fn superposition_stats<T: Widen>(
    w: ArrayView2<'_, T>,
    thresholds: &[f64],
    spectrum: bool,
) -> Result<SuperpositionStats> {
    let (v, d) = w.dim();
    if v == 0 || d == 0 {
        return Err(NilError::shape(
            "superposition_stats: W",
            "a non-empty features x dim matrix",
            format!("{v}x{d}"),
        ));
    }
    let br = block_rows(d);
    let mut panel = vec![0.0f64; br.min(v) * d];
    let mut gram = vec![0.0f64; d * d]; // lower triangle of WᵀW, column-major
    let mut gram_hat = vec![0.0f64; d * d]; // lower triangle of ŴᵀŴ
    let mut norms = Vec::with_capacity(v);
    let mut sum_hat4 = 0.0f64;
    let mut finite = true;

    // Pass 1: norms, WᵀW and ŴᵀŴ.
    let mut start = 0;
    while start < v {
        let end = (start + br).min(v);
        let rows = end - start;
        let p = &mut panel[..rows * d];
        widen_rows(w.slice(s![start..end, ..]), p);
        finite &= p.par_iter().all(|x| x.is_finite());
        gram_add(&mut gram, d, p, rows);
        let block_norms: Vec<f64> = p
            .par_chunks(d)
            .map(|r| r.iter().map(|x| x * x).sum::<f64>().sqrt())
            .collect();
        p.par_chunks_mut(d)
            .zip(block_norms.par_iter())
            .for_each(|(r, &n)| {
                let inv = if n > 0.0 { 1.0 / n } else { 0.0 };
                r.iter_mut().for_each(|x| *x *= inv);
            });
        sum_hat4 += p
            .par_chunks(d)
            .map(|r| r.iter().map(|x| x * x).sum::<f64>().powi(2))
            .sum::<f64>();
        gram_add(&mut gram_hat, d, p, rows);
        norms.extend(block_norms);
        start = end;
    }
    if !finite {
        return Err(NilError::Value(
            "superposition_stats: W holds NaN or infinite entries".into(),
        ));
    }
    let full = |lower: &[f64]| -> Vec<f64> {
        let mut m = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                let (r, c) = if i >= j { (i, j) } else { (j, i) };
                m[i * d + j] = lower[c * d + r];
            }
        }
        m
    };
    let g = full(&gram);
    let g_hat = full(&gram_hat);
    let nonzero: Vec<usize> = (0..v).filter(|&i| norms[i] > 0.0).collect();
    let n_eff = nonzero.len();

    // Mean squared overlap: through ‖ŴᵀŴ‖²_F when there are many more rows than dimensions
    // (no cancellation to speak of), by direct blocks of ŴŴᵀ otherwise.
    let mean_sq_overlap = if n_eff < 2 {
        f64::NAN
    } else if n_eff >= 2 * d {
        let f: f64 = g_hat.par_iter().map(|x| x * x).sum();
        (f - sum_hat4) / (n_eff as f64 * (n_eff as f64 - 1.0))
    } else {
        direct_overlap(&w, &nonzero, &norms) / (n_eff as f64 * (n_eff as f64 - 1.0))
    };

    // Pass 2: dimensionality Dᵢ = ‖wᵢ‖⁴ / wᵢᵀ G wᵢ.
    let mut dims = Vec::with_capacity(n_eff);
    let gm = MatRef::from_row_major_slice(&g, d, d);
    let mut prod = vec![0.0f64; br.min(v) * d];
    let mut start = 0;
    while start < v {
        let end = (start + br).min(v);
        let rows = end - start;
        let p = &mut panel[..rows * d];
        widen_rows(w.slice(s![start..end, ..]), p);
        let out = &mut prod[..rows * d];
        matmul(
            MatMut::from_row_major_slice_mut(out, rows, d),
            Accum::Replace,
            MatRef::from_row_major_slice(p, rows, d),
            gm,
            1.0,
            Par::rayon(0),
        );
        let block: Vec<f64> = p
            .par_chunks(d)
            .zip(out.par_chunks(d))
            .enumerate()
            .filter_map(|(i, (r, q))| {
                let n = norms[start + i];
                if n > 0.0 {
                    let quad: f64 = r.iter().zip(q).map(|(a, b)| a * b).sum();
                    Some(n.powi(4) / quad)
                } else {
                    None
                }
            })
            .collect();
        dims.extend(block);
        start = end;
    }

    let vf = v as f64;
    let df = d as f64;
    let wtw_matrix: Vec<f64> = g.iter().map(|x| x / vf).collect();
    let wtw = interaction_stats(
        ndarray::ArrayView2::from_shape((d, d), &wtw_matrix).unwrap(),
        Convention::Exact,
        spectrum,
    )?;
    let fraction_represented = thresholds
        .iter()
        .map(|&t| (t, norms.iter().filter(|&&n| n >= t).count() as f64 / vf))
        .collect();
    let sigma2 = norms.iter().map(|n| n * n).sum::<f64>() / (vf * df);
    let null_fraction_represented = thresholds
        .iter()
        .map(|&t| {
            (
                t,
                if sigma2 > 0.0 {
                    chi2_sf(df, t * t / sigma2)
                } else {
                    f64::NAN
                },
            )
        })
        .collect();
    Ok(SuperpositionStats {
        features: v,
        dim: d,
        zero_rows: v - n_eff,
        row_norms: Summary::of(&norms),
        fraction_represented,
        mean_sq_overlap,
        dimensionality_sum: dims.iter().sum(),
        dimensionality: Summary::of(&dims),
        wtw,
        wtw_matrix,
        null_sigma2: sigma2,
        null_row_norm_mean: sigma2.sqrt() * chi_mean(df),
        null_fraction_represented,
        null_mean_sq_overlap: 1.0 / df,
        null_dimensionality_mean: df / (df + vf - 1.0),
        null_wtw_aofe_ratio: (df - 1.0) / (vf + df + 1.0),
        null_wtw_weighted_mean_cos2: 1.0 / vf,
        null_wtw_participation_ratio: df * vf / (vf + df + 1.0),
    })
}

/// Σ_{i≠j} (ŵᵢ·ŵⱼ)² over the non-zero rows, by blocks of ŴŴᵀ (used when rows < 2d).
fn direct_overlap<T: Widen>(w: &ArrayView2<'_, T>, nonzero: &[usize], norms: &[f64]) -> f64 {
    let d = w.ncols();
    let n = nonzero.len();
    // n < 2d here, so Ŵ (n×d f64) is at most twice the size of a d×d Gram.
    let mut hat = vec![0.0f64; n * d];
    hat.par_chunks_mut(d)
        .zip(nonzero.par_iter())
        .for_each(|(out, &i)| {
            let inv = 1.0 / norms[i];
            for (o, x) in out.iter_mut().zip(w.row(i).iter()) {
                *o = x.widen() * inv;
            }
        });
    let br = ((1usize << 21) / n.max(1)).clamp(1, n);
    let all = MatRef::from_row_major_slice(&hat, n, d);
    let mut total = 0.0;
    let mut block = vec![0.0f64; br * n];
    let mut start = 0;
    while start < n {
        let end = (start + br).min(n);
        let rows = end - start;
        let out = &mut block[..rows * n];
        matmul(
            MatMut::from_row_major_slice_mut(out, rows, n),
            Accum::Replace,
            all.subrows(start, rows),
            all.transpose(),
            1.0,
            Par::rayon(0),
        );
        total += out
            .par_chunks(n)
            .enumerate()
            .map(|(i, r)| {
                r.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != start + i)
                    .map(|(_, x)| x * x)
                    .sum::<f64>()
            })
            .sum::<f64>();
        start = end;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn brute(w: &Array2<f64>) -> (f64, Vec<f64>) {
        let (v, _) = w.dim();
        let norms: Vec<f64> = (0..v).map(|i| w.row(i).dot(&w.row(i)).sqrt()).collect();
        let mut tot = 0.0;
        let mut dims = vec![];
        for i in 0..v {
            let mut den = 0.0;
            for j in 0..v {
                let dot = w.row(i).dot(&w.row(j));
                den += dot * dot;
                if i != j {
                    tot += (dot / (norms[i] * norms[j])).powi(2);
                }
            }
            dims.push(norms[i].powi(4) / den);
        }
        (tot / (v * (v - 1)) as f64, dims)
    }

    fn sample(v: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut s = seed;
        Array2::from_shape_fn((v, d), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
    }

    #[test]
    fn both_overlap_paths_match_brute_force() {
        for (v, d) in [(5, 8), (40, 6)] {
            let w = sample(v, d, 7);
            let st = superposition_stats(w.view(), &[0.5], true).unwrap();
            let (msq, dims) = brute(&w);
            assert!((st.mean_sq_overlap - msq).abs() < 1e-12, "{v}x{d}");
            let mean = dims.iter().sum::<f64>() / dims.len() as f64;
            assert!((st.dimensionality.mean - mean).abs() < 1e-12);
        }
    }

    #[test]
    fn zero_rows_are_left_out() {
        let mut w = sample(6, 3, 9);
        w.row_mut(2).fill(0.0);
        let st = superposition_stats(w.view(), &[], false).unwrap();
        assert_eq!(st.zero_rows, 1);
        assert!(st.mean_sq_overlap.is_finite());
    }
}

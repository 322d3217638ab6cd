//! Interaction statistics of a symmetric matrix (METHOD.md §2.1–2.3, §8 R5).
//!
//! Energies are summed directly over the symmetrised matrix in f64 with tiles that read M and Mᵀ
//! together; the two reference conventions reproduce the reference implementation's arithmetic.

use crate::eig::sym_eigenvalues;
use crate::error::{NilError, Result};
use ndarray::ArrayView2;
use rayon::prelude::*;

/// How AOFE and its ratio are defined.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Convention {
    /// nil: direct f64 off-diagonal sum; NaN plus a flag on a degenerate matrix.
    Exact,
    /// Reference convention A (the sweeps): float32, fro2 = F + 1e-12, AOFE = max(fro2 − Dg, 0).
    ReferenceSweep,
    /// Reference convention B (the scans): direct sum, ratio = AOFE / max(F, 1e-12), zero → 0.
    ReferenceScan,
}

impl Convention {
    /// Parses the names used by the Python API.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "exact" => Ok(Convention::Exact),
            "reference-sweep" => Ok(Convention::ReferenceSweep),
            "reference-scan" => Ok(Convention::ReferenceScan),
            other => Err(NilError::Value(format!(
                "convention: expected one of \"exact\", \"reference-sweep\", \"reference-scan\", found {other:?}"
            ))),
        }
    }
}

/// The statistics of one k×k matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct InteractionStats {
    pub k: usize,
    /// F(M) = Σ M_ij² (convention A: plus its epsilon).
    pub frobenius: f64,
    /// Dg(M) = Σ M_ii².
    pub diagonal: f64,
    /// O(M) = Σ_{i≠j} M_ij².
    pub aofe: f64,
    pub aofe_ratio: f64,
    pub weighted_mean_cos2: f64,
    pub trace: f64,
    /// (tr M)² / F(M).
    pub participation_ratio: f64,
    /// exp of the entropy of the normalised non-negative spectrum.
    pub effective_rank: f64,
    /// λ_max / Σ λ⁺.
    pub top_share: f64,
    /// Zero, empty or non-finite matrix: ratios are NaN.
    pub degenerate: bool,
    /// Whether the eigenvalues were computed (effective_rank and top_share are NaN otherwise).
    pub spectrum: bool,
    /// Expected ratio of a rank-one Gaussian matrix, 1 − 3/(k+2).
    pub null_rank_one: f64,
    /// Expected ratio of M's spectrum in a Haar-random basis, (k − PR)/(k+2).
    pub null_rotation: f64,
    /// aofe_ratio − null_rotation.
    pub excess_over_rotation: f64,
    /// Effective rank r of a sum of Gaussian outer products with this ratio, (k−1)/ratio − (k+1).
    pub gaussian_rank: f64,
}

const TILE: usize = 64;

/// Per-tile partial sums over the symmetrised matrix.
#[derive(Clone, Copy)]
struct Sums {
    off: f64,
    diag: f64,
    finite: bool,
}

/// Σ_{i≠j} sym_ij² and Σ sym_ii² by tiles, with a non-finite flag.
fn energies(m: &ArrayView2<'_, f64>) -> Sums {
    let k = m.nrows();
    let nt = k.div_ceil(TILE);
    let sums = (0..nt)
        .into_par_iter()
        .map(|bi| {
            let mut s = Sums {
                off: 0.0,
                diag: 0.0,
                finite: true,
            };
            let i0 = bi * TILE;
            let i1 = (i0 + TILE).min(k);
            for bj in 0..=bi {
                let j0 = bj * TILE;
                let j1 = (j0 + TILE).min(k);
                for i in i0..i1 {
                    for j in j0..j1.min(i) {
                        let a = m[[i, j]];
                        let b = m[[j, i]];
                        let v = 0.5 * (a + b);
                        s.off += v * v;
                        s.finite &= v.is_finite();
                    }
                }
            }
            for i in i0..i1 {
                let v = m[[i, i]];
                s.diag += v * v;
                s.finite &= v.is_finite();
            }
            s
        })
        .reduce(
            || Sums {
                off: 0.0,
                diag: 0.0,
                finite: true,
            },
            |a, b| Sums {
                off: a.off + b.off,
                diag: a.diag + b.diag,
                finite: a.finite && b.finite,
            },
        );
    // The tiles visit each unordered pair once.
    Sums {
        off: 2.0 * sums.off,
        ..sums
    }
}

/// Σ_{i≠j} d_i d_j computed without cancellation (prefix sums of the diagonal).
fn pair_weight(d: &[f64]) -> f64 {
    let mut prefix = 0.0;
    let mut total = 0.0;
    for &x in d {
        total += x * prefix;
        prefix += x;
    }
    2.0 * total
}

/// Pairwise (cascade) f32 summation, as torch and numpy reduce.
fn sum_f32(v: &[f32]) -> f32 {
    if v.len() <= 8 {
        return v.iter().fold(0.0f32, |a, b| a + b);
    }
    let mid = v.len() / 2;
    sum_f32(&v[..mid]) + sum_f32(&v[mid..])
}

/// Statistics of `m` (k×k, symmetrised first) under `convention`; `spectrum` adds the eigenvalues.
pub fn interaction_stats(
    m: ArrayView2<'_, f64>,
    convention: Convention,
    spectrum: bool,
) -> Result<InteractionStats> {
    let (r, c) = m.dim();
    if r != c {
        return Err(NilError::shape(
            "interaction_stats: matrix",
            "a square matrix",
            format!("{r}x{c}"),
        ));
    }
    let k = r;
    let nan = f64::NAN;
    let diag: Vec<f64> = (0..k).map(|i| m[[i, i]]).collect();
    let trace: f64 = diag.iter().sum();
    let sums = energies(&m);
    let frob_exact = sums.off + sums.diag;
    let degenerate = k == 0 || !sums.finite || !(frob_exact > 0.0);

    let (frobenius, diagonal, aofe, aofe_ratio, wmc2) = match convention {
        Convention::Exact => {
            let ratio = if degenerate {
                nan
            } else {
                sums.off / frob_exact
            };
            let w = pair_weight(&diag);
            let wmc2 = if degenerate || !(w > 0.0) {
                nan
            } else {
                sums.off / w
            };
            (frob_exact, sums.diag, sums.off, ratio, wmc2)
        }
        Convention::ReferenceSweep => {
            let sym32: Vec<f32> = (0..k * k)
                .map(|idx| {
                    let (i, j) = (idx / k, idx % k);
                    ((m[[i, j]] as f32) + (m[[j, i]] as f32)) * 0.5f32
                })
                .collect();
            let sq: Vec<f32> = sym32.iter().map(|v| v * v).collect();
            let f = sum_f32(&sq);
            let d32: Vec<f32> = (0..k).map(|i| sym32[i * k + i]).collect();
            let dsq: Vec<f32> = d32.iter().map(|v| v * v).collect();
            let dg = sum_f32(&dsq);
            let fro2 = f + 1e-12f32;
            let aofe = (fro2 - dg).max(0.0);
            let ratio = aofe / fro2;
            let s = sum_f32(&d32);
            let wmc2 = (f - dg) / (s * s - dg).max(1e-12);
            (
                fro2 as f64,
                dg as f64,
                aofe as f64,
                ratio as f64,
                wmc2 as f64,
            )
        }
        Convention::ReferenceScan => {
            let ratio = sums.off / frob_exact.max(1e-12);
            let dc: Vec<f64> = diag.iter().map(|v| v.max(0.0)).collect();
            let s: f64 = dc.iter().sum();
            let s2: f64 = dc.iter().map(|v| v * v).sum();
            let wmc2 = (frob_exact - s2) / (s * s - s2).max(1e-12);
            (frob_exact, sums.diag, sums.off, ratio, wmc2)
        }
    };

    let pr = if degenerate {
        nan
    } else {
        trace * trace / frob_exact
    };
    let (effective_rank, top_share) = if spectrum && !degenerate {
        let sym: Vec<f64> = (0..k * k)
            .into_par_iter()
            .map(|idx| {
                let (i, j) = (idx / k, idx % k);
                0.5 * (m[[i, j]] + m[[j, i]])
            })
            .collect();
        match sym_eigenvalues(&sym, k) {
            Some(vals) => spectrum_summary(&vals),
            None => (nan, nan),
        }
    } else {
        (nan, nan)
    };
    let kf = k as f64;
    let null_rotation = (kf - pr) / (kf + 2.0);
    Ok(InteractionStats {
        k,
        frobenius,
        diagonal,
        aofe,
        aofe_ratio,
        weighted_mean_cos2: wmc2,
        trace,
        participation_ratio: pr,
        effective_rank,
        top_share,
        degenerate,
        spectrum: spectrum && !degenerate,
        null_rank_one: 1.0 - 3.0 / (kf + 2.0),
        null_rotation,
        excess_over_rotation: aofe_ratio - null_rotation,
        gaussian_rank: if aofe_ratio > 0.0 {
            (kf - 1.0) / aofe_ratio - (kf + 1.0)
        } else {
            nan
        },
    })
}

/// (entropy effective rank, top share) of a spectrum, negative eigenvalues clipped to zero.
pub fn spectrum_summary(vals: &[f64]) -> (f64, f64) {
    let pos: Vec<f64> = vals.iter().map(|v| v.max(0.0)).collect();
    let total: f64 = pos.iter().sum();
    if !(total > 0.0) {
        return (f64::NAN, f64::NAN);
    }
    let entropy: f64 = pos
        .iter()
        .filter(|&&v| v > 0.0)
        .map(|&v| {
            let p = v / total;
            -p * p.ln()
        })
        .sum();
    let top = pos.iter().cloned().fold(0.0, f64::max);
    (entropy.exp(), top / total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr2, Array2};

    #[test]
    fn exact_on_small_matrix() {
        let m = arr2(&[[2.0, 1.0], [1.0, 3.0]]);
        let s = interaction_stats(m.view(), Convention::Exact, true).unwrap();
        assert_eq!(s.frobenius, 15.0);
        assert_eq!(s.diagonal, 13.0);
        assert_eq!(s.aofe, 2.0);
        assert!((s.aofe_ratio - 2.0 / 15.0).abs() < 1e-15);
        assert!((s.weighted_mean_cos2 - 2.0 / 12.0).abs() < 1e-15);
        assert!((s.participation_ratio - 25.0 / 15.0).abs() < 1e-15);
        assert!(!s.degenerate);
        assert!(s.effective_rank > 1.0 && s.effective_rank < 2.0);
    }

    #[test]
    fn asymmetric_input_is_symmetrised() {
        let m = arr2(&[[1.0, 2.0], [0.0, 1.0]]);
        let s = interaction_stats(m.view(), Convention::Exact, false).unwrap();
        assert_eq!(s.aofe, 2.0);
    }

    #[test]
    fn zero_matrix_is_degenerate_in_exact_and_quirky_in_reference() {
        let z = Array2::<f64>::zeros((4, 4));
        let e = interaction_stats(z.view(), Convention::Exact, true).unwrap();
        assert!(e.degenerate && e.aofe_ratio.is_nan() && e.weighted_mean_cos2.is_nan());
        let a = interaction_stats(z.view(), Convention::ReferenceSweep, false).unwrap();
        assert_eq!(a.aofe_ratio, 1.0);
        assert!((a.aofe - 1e-12).abs() < 1e-18);
        let b = interaction_stats(z.view(), Convention::ReferenceScan, false).unwrap();
        assert_eq!(b.aofe_ratio, 0.0);
    }

    #[test]
    fn rank_one_spectrum() {
        let u = [1.0, 2.0, 3.0];
        let m = Array2::from_shape_fn((3, 3), |(i, j)| u[i] * u[j]);
        let s = interaction_stats(m.view(), Convention::Exact, true).unwrap();
        assert!((s.participation_ratio - 1.0).abs() < 1e-12);
        assert!((s.top_share - 1.0).abs() < 1e-12);
        assert!((s.effective_rank - 1.0).abs() < 1e-9);
        assert!((s.weighted_mean_cos2 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn non_square_and_nonfinite() {
        let m = Array2::<f64>::zeros((2, 3));
        assert!(interaction_stats(m.view(), Convention::Exact, false).is_err());
        let mut m = Array2::<f64>::eye(3);
        m[[0, 1]] = f64::INFINITY;
        assert!(
            interaction_stats(m.view(), Convention::Exact, false)
                .unwrap()
                .degenerate
        );
    }
}

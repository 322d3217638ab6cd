//! Neural Feature Ansatz check: how well WᵀW matches AGOP^γ (METHOD.md §2.5, §8 R6).
//!
//! One eigendecomposition G = U Λ Uᵀ and one rotation Ã = UᵀAU make every statistic at any γ an
//! O(d²) sum, so the fit of γ costs little more than one matrix power.

use crate::eig::sym_eigen;
use crate::error::{NilError, Result};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use ndarray::ArrayView2;

/// Agreement between A = WᵀW and G^γ at one γ.
#[derive(Clone, Debug, PartialEq)]
pub struct NfaCorrelation {
    pub gamma: f64,
    /// Uncentred Frobenius cosine ⟨A, G^γ⟩ / (‖A‖·‖G^γ‖).
    pub cosine: f64,
    /// Pearson correlation over all d² entries.
    pub pearson_all: f64,
    /// Pearson correlation over the d(d−1) off-diagonal entries (the reference's proxy at γ = 1).
    pub pearson_offdiag: f64,
}

/// Which statistic the γ fit maximises.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Criterion {
    Cosine,
    PearsonAll,
    PearsonOffdiag,
}

impl Criterion {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cosine" => Ok(Criterion::Cosine),
            "pearson" | "pearson_all" => Ok(Criterion::PearsonAll),
            "pearson_offdiag" => Ok(Criterion::PearsonOffdiag),
            other => Err(NilError::Value(format!(
                "criterion: expected \"cosine\", \"pearson\" or \"pearson_offdiag\", found {other:?}"
            ))),
        }
    }

    fn pick(self, c: &NfaCorrelation) -> f64 {
        match self {
            Criterion::Cosine => c.cosine,
            Criterion::PearsonAll => c.pearson_all,
            Criterion::PearsonOffdiag => c.pearson_offdiag,
        }
    }
}

/// The fitted exponent and the correlations around it.
#[derive(Clone, Debug)]
pub struct NfaPowerFit {
    pub gamma: f64,
    pub criterion: Criterion,
    pub best: NfaCorrelation,
    pub at_half: NfaCorrelation,
    pub at_one: NfaCorrelation,
    /// Slope of log(uᵢᵀAuᵢ) on log λᵢ over G's eigenpairs above the floor (γ exactly when A = c·G^γ).
    pub spectral_gamma: f64,
    /// Eigenpairs used by the spectral slope.
    pub spectral_points: usize,
}

/// Precomputed eigenbasis quantities shared by every γ.
struct Prepared {
    d: usize,
    lam: Vec<f64>,        // floored eigenvalues of G
    a_rot_diag: Vec<f64>, // diag(UᵀAU)
    u_sum2: Vec<f64>,     // (Uᵀ1)ᵢ²
    u_sq: Vec<f64>,       // U_ji², row-major (j, i)
    a_diag: Vec<f64>,
    sum_a: f64,
    sum_aa: f64,
}

fn check_pair(a: &ArrayView2<'_, f64>, g: &ArrayView2<'_, f64>) -> Result<usize> {
    let (ar, ac) = a.dim();
    let (gr, gc) = g.dim();
    if ar != ac || gr != gc || ar != gr || ar == 0 {
        return Err(NilError::shape(
            "nfa: wtw and agop",
            "two square matrices of one size",
            format!("{ar}x{ac} and {gr}x{gc}"),
        ));
    }
    if a.iter().chain(g.iter()).any(|x| !x.is_finite()) {
        return Err(NilError::Value(
            "nfa: wtw or agop holds NaN or infinite entries".into(),
        ));
    }
    Ok(ar)
}

fn prepare(a: ArrayView2<'_, f64>, g: ArrayView2<'_, f64>) -> Result<Prepared> {
    let d = check_pair(&a, &g)?;
    let sym = |m: &ArrayView2<'_, f64>| -> Vec<f64> {
        (0..d * d)
            .map(|idx| 0.5 * (m[[idx / d, idx % d]] + m[[idx % d, idx / d]]))
            .collect()
    };
    let a_s = sym(&a);
    let g_s = sym(&g);
    let (vals, vecs) = sym_eigen(&g_s, d)
        .ok_or_else(|| NilError::Value("nfa: eigendecomposition of agop failed".into()))?;
    let lmax = vals.iter().cloned().fold(0.0, f64::max);
    let lam: Vec<f64> = vals
        .iter()
        .map(|&l| if l > 1e-12 * lmax && l > 0.0 { l } else { 0.0 })
        .collect();
    // Ã = Uᵀ A U, computed as (Uᵀ A) U.
    let u = MatRef::from_column_major_slice(&vecs, d, d);
    let am = MatRef::from_row_major_slice(&a_s, d, d);
    let mut tmp = Mat::<f64>::zeros(d, d);
    matmul(
        tmp.as_mut(),
        Accum::Replace,
        u.transpose(),
        am,
        1.0,
        Par::rayon(0),
    );
    let mut rot = Mat::<f64>::zeros(d, d);
    matmul(
        rot.as_mut(),
        Accum::Replace,
        tmp.as_ref(),
        u,
        1.0,
        Par::rayon(0),
    );
    let a_rot_diag = (0..d).map(|i| rot[(i, i)]).collect();
    let u_sum2 = (0..d)
        .map(|i| (0..d).map(|j| u[(j, i)]).sum::<f64>().powi(2))
        .collect();
    let mut u_sq = vec![0.0; d * d];
    for j in 0..d {
        for i in 0..d {
            u_sq[j * d + i] = u[(j, i)] * u[(j, i)];
        }
    }
    Ok(Prepared {
        d,
        lam,
        a_rot_diag,
        u_sum2,
        u_sq,
        a_diag: (0..d).map(|i| a_s[i * d + i]).collect(),
        sum_a: a_s.iter().sum(),
        sum_aa: a_s.iter().map(|x| x * x).sum(),
    })
}

fn pearson_from_sums(n: f64, sx: f64, sy: f64, sxx: f64, syy: f64, sxy: f64) -> f64 {
    let cov = sxy - sx * sy / n;
    let vx = sxx - sx * sx / n;
    let vy = syy - sy * sy / n;
    // A variance within rounding of zero (relative to the raw second moment) is zero: the
    // correlation is undefined, not a number made of rounding noise.
    if vx > 1e-10 * sxx && vy > 1e-10 * syy {
        (cov / (vx * vy).sqrt()).clamp(-1.0, 1.0)
    } else {
        f64::NAN
    }
}

impl Prepared {
    fn at(&self, gamma: f64) -> NfaCorrelation {
        let d = self.d;
        let lg: Vec<f64> = self
            .lam
            .iter()
            .map(|&l| if l > 0.0 { l.powf(gamma) } else { 0.0 })
            .collect();
        let s_ag: f64 = lg.iter().zip(&self.a_rot_diag).map(|(l, a)| l * a).sum();
        let s_gg: f64 = lg.iter().map(|l| l * l).sum();
        let s_g: f64 = lg.iter().zip(&self.u_sum2).map(|(l, u)| l * u).sum();
        // diag(G^γ)_j = Σᵢ U_ji² λᵢ^γ
        let gdiag: Vec<f64> = (0..d)
            .map(|j| {
                self.u_sq[j * d..(j + 1) * d]
                    .iter()
                    .zip(&lg)
                    .map(|(u, l)| u * l)
                    .sum()
            })
            .collect();
        let cosine = if s_gg > 0.0 && self.sum_aa > 0.0 {
            (s_ag / (self.sum_aa.sqrt() * s_gg.sqrt())).clamp(-1.0, 1.0)
        } else {
            f64::NAN
        };
        let n = (d * d) as f64;
        let pearson_all = pearson_from_sums(n, self.sum_a, s_g, self.sum_aa, s_gg, s_ag);
        let dd_ag: f64 = self.a_diag.iter().zip(&gdiag).map(|(a, g)| a * g).sum();
        let dd_g: f64 = gdiag.iter().sum();
        let dd_gg: f64 = gdiag.iter().map(|g| g * g).sum();
        let dd_a: f64 = self.a_diag.iter().sum();
        let dd_aa: f64 = self.a_diag.iter().map(|a| a * a).sum();
        let pearson_offdiag = if d < 2 {
            f64::NAN
        } else {
            pearson_from_sums(
                n - d as f64,
                self.sum_a - dd_a,
                s_g - dd_g,
                self.sum_aa - dd_aa,
                s_gg - dd_gg,
                s_ag - dd_ag,
            )
        };
        NfaCorrelation {
            gamma,
            cosine,
            pearson_all,
            pearson_offdiag,
        }
    }
}

/// Correlations between `wtw` and `agop`^γ (symmetrised; eigenvalues below 1e-12·λ_max set to zero).
pub fn nfa_correlation(
    wtw: ArrayView2<'_, f64>,
    agop: ArrayView2<'_, f64>,
    gamma: f64,
) -> Result<NfaCorrelation> {
    if !gamma.is_finite() {
        return Err(NilError::Value(format!(
            "nfa_correlation: power must be finite, found {gamma}"
        )));
    }
    Ok(prepare(wtw, agop)?.at(gamma))
}

/// Best γ in [lo, hi] by a grid of step 0.05 and golden-section refinement, plus the spectral slope.
pub fn fit_nfa_power(
    wtw: ArrayView2<'_, f64>,
    agop: ArrayView2<'_, f64>,
    criterion: Criterion,
    lo: f64,
    hi: f64,
) -> Result<NfaPowerFit> {
    if !(lo < hi) || !lo.is_finite() || !hi.is_finite() {
        return Err(NilError::Value(format!(
            "fit_nfa_power: expected lo < hi, found [{lo}, {hi}]"
        )));
    }
    let p = prepare(wtw, agop)?;
    let score = |g: f64| {
        let v = criterion.pick(&p.at(g));
        if v.is_nan() {
            f64::NEG_INFINITY
        } else {
            v
        }
    };
    let steps = ((hi - lo) / 0.05).ceil().max(1.0) as usize;
    let grid: Vec<f64> = (0..=steps)
        .map(|i| lo + (hi - lo) * i as f64 / steps as f64)
        .collect();
    let (mut best_i, mut best_v) = (0, f64::NEG_INFINITY);
    for (i, &g) in grid.iter().enumerate() {
        let v = score(g);
        if v > best_v {
            best_i = i;
            best_v = v;
        }
    }
    let (mut a, mut b) = (
        grid[best_i.saturating_sub(1)],
        grid[(best_i + 1).min(steps)],
    );
    let phi = 0.5 * (5f64.sqrt() - 1.0);
    let mut c = b - phi * (b - a);
    let mut e = a + phi * (b - a);
    let (mut fc, mut fe) = (score(c), score(e));
    while b - a > 1e-7 {
        if fc >= fe {
            b = e;
            e = c;
            fe = fc;
            c = b - phi * (b - a);
            fc = score(c);
        } else {
            a = c;
            c = e;
            fc = fe;
            e = a + phi * (b - a);
            fe = score(e);
        }
    }
    let refined = 0.5 * (a + b);
    let gamma = if score(refined) >= best_v {
        refined
    } else {
        grid[best_i]
    };
    // Spectral slope over eigenpairs with positive λ and positive uᵢᵀAuᵢ.
    let pts: Vec<(f64, f64)> = p
        .lam
        .iter()
        .zip(&p.a_rot_diag)
        .filter(|(l, a)| **l > 0.0 && **a > 0.0)
        .map(|(l, a)| (l.ln(), a.ln()))
        .collect();
    let spectral_gamma = if pts.len() >= 2 {
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        if sxx > 0.0 {
            sxy / sxx
        } else {
            f64::NAN
        }
    } else {
        f64::NAN
    };
    Ok(NfaPowerFit {
        gamma,
        criterion,
        best: p.at(gamma),
        at_half: p.at(0.5),
        at_one: p.at(1.0),
        spectral_gamma,
        spectral_points: pts.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn spd(d: usize, seed: u64) -> Array2<f64> {
        let mut s = seed;
        let x = Array2::from_shape_fn((d + 3, d), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        });
        x.t().dot(&x)
    }

    fn power(g: &Array2<f64>, gamma: f64) -> Array2<f64> {
        let d = g.nrows();
        let (vals, vecs) = sym_eigen(g.as_slice().unwrap(), d).unwrap();
        Array2::from_shape_fn((d, d), |(i, j)| {
            (0..d)
                .map(|k| vecs[k * d + i] * vals[k].max(0.0).powf(gamma) * vecs[k * d + j])
                .sum()
        })
    }

    #[test]
    fn recovers_a_known_exponent() {
        let g = spd(6, 3);
        let a = power(&g, 0.7).mapv(|x| 2.5 * x);
        let fit = fit_nfa_power(a.view(), g.view(), Criterion::PearsonAll, 0.0, 2.0).unwrap();
        assert!((fit.gamma - 0.7).abs() < 1e-4, "{}", fit.gamma);
        assert!((fit.spectral_gamma - 0.7).abs() < 1e-8);
        assert!((fit.best.cosine - 1.0).abs() < 1e-10);
    }

    #[test]
    fn sums_match_direct_pearson() {
        let g = spd(5, 4);
        let a = spd(5, 5);
        let c = nfa_correlation(a.view(), g.view(), 1.0).unwrap();
        let (x, y): (Vec<f64>, Vec<f64>) = a.iter().zip(g.iter()).map(|(p, q)| (*p, *q)).unzip();
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let cov: f64 = x.iter().zip(&y).map(|(p, q)| (p - mx) * (q - my)).sum();
        let r = cov
            / (x.iter().map(|p| (p - mx).powi(2)).sum::<f64>()
                * y.iter().map(|q| (q - my).powi(2)).sum::<f64>())
            .sqrt();
        assert!((c.pearson_all - r).abs() < 1e-10);
    }
}

//! The smooth per-budget estimate (METHOD.md §8 R7): a weighted least-squares quadratic
//! ℓ(u) = c₀ + c₁u + c₂u² of seed-mean loss on u = ln R, made robust to one outlier (the point of
//! largest externally studentised residual is dropped and the fit redone when |t| exceeds a
//! threshold), its vertex u* = −c₁/(2c₂) when c₂ > 0 and inside the sweep, and its ε-band: the
//! piece of {u in the sweep : ℓ(u) ≤ (1 + ε)·min ℓ} that holds the fitted minimum, which is
//! u* ± √(ε·ℓ(u*)/c₂) for an interior vertex and the sweep edge side otherwise.

use super::linalg::inverse3;

/// Where the fitted curve has its minimum.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Vertex {
    /// c₂ > 0 and the vertex lies inside the swept ratios: R̂* is defined.
    Interior,
    /// c₂ > 0 but the vertex lies below the smallest swept ratio.
    BelowSweep,
    /// c₂ > 0 but the vertex lies above the largest swept ratio.
    AboveSweep,
    /// c₂ ≤ 0: the curve has no minimum; the best swept end is used for the band.
    NotConvex,
    /// Fewer than 3 usable shapes, or a singular fit.
    NoFit,
}

/// One smooth fit.
#[derive(Clone, Debug)]
pub struct QuadFit {
    /// c₀, c₁, c₂ in u = ln R.
    pub coef: [f64; 3],
    pub vertex: Vertex,
    /// ln R̂* (NaN unless the vertex is interior).
    pub u_star: f64,
    /// ln of the ratio minimising the fit within the sweep (vertex or an end).
    pub u_fit_min: f64,
    /// Fitted loss at `u_fit_min`.
    pub loss_fit_min: f64,
    /// Smooth ε-band edges in u (NaN without a fit).
    pub band: (f64, f64),
    /// Index of the shape dropped as an outlier.
    pub outlier: Option<usize>,
    /// Points used and weighted residual RMS √(Σw e²/Σw).
    pub n_points: usize,
    pub rms: f64,
}

impl QuadFit {
    fn none(n_points: usize) -> Self {
        QuadFit {
            coef: [f64::NAN; 3],
            vertex: Vertex::NoFit,
            u_star: f64::NAN,
            u_fit_min: f64::NAN,
            loss_fit_min: f64::NAN,
            band: (f64::NAN, f64::NAN),
            outlier: None,
            n_points,
            rms: f64::NAN,
        }
    }
}

struct Raw {
    /// coefficients in v = u − centre
    d: [f64; 3],
    /// (XᵀWX)⁻¹, row-major 3×3
    inv: [f64; 9],
}

fn wls(
    u: &[f64],
    y: &[f64],
    w: &[f64],
    use_pt: &dyn Fn(usize) -> bool,
    centre: f64,
) -> Option<Raw> {
    let mut a = [0.0f64; 9];
    let mut b = [0.0f64; 3];
    for i in 0..u.len() {
        if !use_pt(i) {
            continue;
        }
        let v = u[i] - centre;
        let x = [1.0, v, v * v];
        for r in 0..3 {
            b[r] += w[i] * x[r] * y[i];
            for c in 0..3 {
                a[r * 3 + c] += w[i] * x[r] * x[c];
            }
        }
    }
    let inv = inverse3(&a)?;
    let mut d = [0.0; 3];
    for r in 0..3 {
        d[r] = (0..3).map(|c| inv[r * 3 + c] * b[c]).sum();
    }
    Some(Raw { d, inv })
}

/// Settings of the smooth fit.
#[derive(Copy, Clone, Debug)]
pub struct QuadOptions {
    pub eps: f64,
    /// |externally studentised residual| above which the worst point is dropped (once).
    pub outlier_threshold: f64,
}

/// Fits ℓ(u) to (u, y) with weights w (u sorted ascending) and derives vertex and band.
pub fn fit_quadratic(u: &[f64], y: &[f64], w: &[f64], opts: QuadOptions) -> QuadFit {
    let n = u.len();
    if n < 3 {
        return QuadFit::none(n);
    }
    let (umin, umax) = (u[0], u[n - 1]);
    let centre = 0.5 * (umin + umax);
    let all = |_: usize| true;
    let Some(mut raw) = wls(u, y, w, &all, centre) else {
        return QuadFit::none(n);
    };
    let mut outlier = None;
    if n >= 5 && opts.outlier_threshold.is_finite() {
        let resid = |i: usize| y[i] - eval(&raw.d, u[i] - centre);
        let ssw: f64 = (0..n).map(|i| w[i] * resid(i) * resid(i)).sum();
        let dof = (n - 3) as f64;
        let s2 = ssw / dof;
        let mut worst: Option<(usize, f64)> = None;
        if s2 > 0.0 {
            for i in 0..n {
                let v = u[i] - centre;
                let x = [1.0, v, v * v];
                let mut q = 0.0;
                for r in 0..3 {
                    for c in 0..3 {
                        q += x[r] * raw.inv[r * 3 + c] * x[c];
                    }
                }
                let h = w[i] * q;
                if h >= 1.0 - 1e-10 {
                    continue;
                }
                let e = resid(i);
                let r2 = w[i] * e * e / (s2 * (1.0 - h));
                let denom = dof - r2;
                let t = if denom > 0.0 {
                    (r2 * (dof - 1.0) / denom).sqrt()
                } else {
                    f64::INFINITY
                };
                if worst.is_none_or(|(_, tw)| t > tw) {
                    worst = Some((i, t));
                }
            }
        }
        if let Some((i, t)) = worst {
            if t > opts.outlier_threshold {
                let keep = |k: usize| k != i;
                if let Some(r) = wls(u, y, w, &keep, centre) {
                    raw = r;
                    outlier = Some(i);
                }
            }
        }
    }
    let used = n - outlier.is_some() as usize;
    let (mut ssw, mut sw) = (0.0, 0.0);
    for i in 0..n {
        if Some(i) != outlier {
            let e = y[i] - eval(&raw.d, u[i] - centre);
            ssw += w[i] * e * e;
            sw += w[i];
        }
    }
    let d = raw.d;
    let coef = [
        d[0] - d[1] * centre + d[2] * centre * centre,
        d[1] - 2.0 * d[2] * centre,
        d[2],
    ];
    let (vlo, vhi) = (umin - centre, umax - centre);
    let scale = d[0]
        .abs()
        .max(d[1].abs() * (vhi - vlo))
        .max(f64::MIN_POSITIVE);
    let convex = d[2] * (vhi - vlo).powi(2) > 1e-12 * scale;
    let (vertex, v_min) = if convex {
        let vs = -d[1] / (2.0 * d[2]);
        if vs < vlo {
            (Vertex::BelowSweep, vlo)
        } else if vs > vhi {
            (Vertex::AboveSweep, vhi)
        } else {
            (Vertex::Interior, vs)
        }
    } else {
        let best = if eval(&d, vlo) <= eval(&d, vhi) {
            vlo
        } else {
            vhi
        };
        (Vertex::NotConvex, best)
    };
    let l_min = eval(&d, v_min);
    let level = l_min + opts.eps * l_min.abs();
    let band = sublevel_piece(
        &d,
        v_min,
        level,
        vlo,
        vhi,
        vertex == Vertex::Interior,
        opts.eps * l_min.abs(),
    );
    QuadFit {
        coef,
        vertex,
        u_star: if vertex == Vertex::Interior {
            v_min + centre
        } else {
            f64::NAN
        },
        u_fit_min: v_min + centre,
        loss_fit_min: l_min,
        band: (band.0 + centre, band.1 + centre),
        outlier,
        n_points: used,
        rms: (ssw / sw).sqrt(),
    }
}

#[inline]
fn eval(d: &[f64; 3], v: f64) -> f64 {
    d[0] + v * (d[1] + v * d[2])
}

/// The connected piece of {v in [lo, hi] : q(v) ≤ level} that contains `m` (where q(m) < level).
fn sublevel_piece(
    d: &[f64; 3],
    m: f64,
    level: f64,
    lo: f64,
    hi: f64,
    interior: bool,
    gap: f64,
) -> (f64, f64) {
    if interior {
        // q(v) − q(m) = c₂(v − m)² exactly, so the band is m ± √(gap/c₂): the closed form.
        let half = (gap / d[2]).sqrt();
        return ((m - half).max(lo), (m + half).min(hi));
    }
    // Roots of q(v) = level; the piece around m ends at the nearest root on each side.
    let (a, b, c) = (d[2], d[1], d[0] - level);
    let mut roots: Vec<f64> = Vec::with_capacity(2);
    if a.abs() > 0.0 {
        let disc = b * b - 4.0 * a * c;
        if disc >= 0.0 {
            let q = -0.5 * (b + b.signum() * disc.sqrt());
            if q != 0.0 {
                roots.push(q / a);
                roots.push(c / q);
            } else {
                roots.push(0.0);
            }
        }
    } else if b != 0.0 {
        roots.push(-c / b);
    }
    let left = roots.iter().copied().filter(|&r| r < m).fold(lo, f64::max);
    let right = roots.iter().copied().filter(|&r| r > m).fold(hi, f64::min);
    (left.max(lo), right.min(hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> QuadOptions {
        QuadOptions {
            eps: 0.02,
            outlier_threshold: 4.0,
        }
    }

    #[test]
    fn exact_parabola_gives_vertex_and_closed_form_band() {
        let u: Vec<f64> = (0..9).map(|i| -3.0 + 0.5 * i as f64).collect();
        let y: Vec<f64> = u.iter().map(|v| 2.0 + 0.3 * (v + 1.2).powi(2)).collect();
        let w = vec![1.0; 9];
        let f = fit_quadratic(&u, &y, &w, opts());
        assert_eq!(f.vertex, Vertex::Interior);
        assert!((f.u_star + 1.2).abs() < 1e-10);
        let half = (0.02f64 * 2.0 / 0.3).sqrt();
        assert!((f.band.0 - (-1.2 - half)).abs() < 1e-9);
        assert!((f.band.1 - (-1.2 + half)).abs() < 1e-9);
        assert!(f.outlier.is_none());
    }

    #[test]
    fn one_outlier_is_dropped() {
        let u: Vec<f64> = (0..10).map(|i| i as f64 * 0.4).collect();
        let mut y: Vec<f64> = u
            .iter()
            .enumerate()
            .map(|(i, v)| 1.0 + 0.5 * (v - 2.0).powi(2) + 1e-3 * ((i * 7 % 5) as f64 - 2.0))
            .collect();
        y[3] += 1.0;
        let f = fit_quadratic(&u, &y, &vec![1.0; 10], opts());
        assert_eq!(f.outlier, Some(3));
        assert!((f.u_star - 2.0).abs() < 0.01);
    }

    #[test]
    fn monotone_data_is_a_boundary() {
        let u: Vec<f64> = (0..6).map(|i| i as f64).collect();
        let y: Vec<f64> = u.iter().map(|v| 1.0 + 0.1 * v + 0.01 * v * v).collect();
        let f = fit_quadratic(&u, &y, &vec![1.0; 6], opts());
        assert_eq!(f.vertex, Vertex::BelowSweep);
        assert!(f.u_star.is_nan());
        assert_eq!(f.band.0, 0.0);
        // ℓ(v) = 1.02 solves 0.01v² + 0.1v − 0.02 = 0
        let root = (-0.1 + (0.01f64 + 0.0008).sqrt()) / 0.02;
        assert!((f.band.1 - root).abs() < 1e-12);
        let c = fit_quadratic(
            &u,
            &u.iter().map(|v| 5.0 - v * v * 0.1).collect::<Vec<_>>(),
            &vec![1.0; 6],
            opts(),
        );
        assert_eq!(c.vertex, Vertex::NotConvex);
        assert_eq!(c.u_fit_min, 5.0);
        assert_eq!(
            fit_quadratic(&u[..2], &u[..2], &[1.0, 1.0], opts()).vertex,
            Vertex::NoFit
        );
    }
}

//! Unimodal regression of loss on t (ln R rescaled to [0, 1] over the sweep) with the mode held
//! at a given t₀: a C¹ quadratic spline whose slope is piecewise linear between knots, with knots
//! at every swept ratio, at the midpoints between them (so a cliff between two shapes can be
//! followed without bending the neighbouring pieces) and at t₀. "Mode at t₀" is the set of linear
//! constraints slope ≤ 0 at every knot left of t₀, slope = 0 at t₀ and slope ≥ 0 right of it (at
//! an edge, one sign throughout): a non-negative least-squares problem in the knot slopes, with
//! the intercept free. A robust (Huber) loss is minimised by iteratively reweighted NNLS, and a
//! tiny roughness penalty κ·Σ(Δ slope·spacing)² only breaks ties between equally good fits.
//!
//! Fitting at every t₀ of a grid gives the profile of the objective over the mode's location,
//! which [`super::profile`] turns into the estimate of R* and its confidence set.

use super::nnls::nnls;

/// One budget's data in the fit's coordinates: shape positions t (sorted, distinct, in [0, 1])
/// and each shape's seed losses (rescaled).
#[derive(Clone, Debug)]
pub struct Rows {
    pub t: Vec<f64>,
    pub y: Vec<Vec<f64>>,
}

impl Rows {
    /// The knots every fit uses besides t₀: the shape positions and the midpoints between them.
    pub fn base_knots(&self) -> Vec<f64> {
        let mut k = Vec::with_capacity(2 * self.t.len());
        for (i, &t) in self.t.iter().enumerate() {
            if i > 0 {
                k.push(0.5 * (self.t[i - 1] + t));
            }
            k.push(t);
        }
        k
    }

    /// Total number of seed rows.
    pub fn n_rows(&self) -> usize {
        self.y.iter().map(Vec::len).sum()
    }
}

/// ∫ from knots[0] to t of the hat function of knot j (the slope basis function of that knot).
fn hat_integral(t: f64, knots: &[f64], j: usize) -> f64 {
    let mut out = 0.0;
    if j > 0 {
        let (a, b) = (knots[j - 1], knots[j]);
        let h = b - a;
        let s = (t - a).clamp(0.0, h);
        out += s * s / (2.0 * h);
    }
    if j + 1 < knots.len() {
        let (a, b) = (knots[j], knots[j + 1]);
        let h = b - a;
        let s = (t - a).clamp(0.0, h);
        out += s - s * s / (2.0 * h);
    }
    out
}

/// A fitted curve: ℓ(t) = c₀ + Σ_j slope_j·B_j(t) (slope_j: ℓ' at knot j).
#[derive(Clone, Debug)]
pub struct Spline {
    pub knots: Vec<f64>,
    pub slopes: Vec<f64>,
    pub c0: f64,
}

impl Spline {
    pub fn eval(&self, t: f64) -> f64 {
        self.c0
            + self
                .slopes
                .iter()
                .enumerate()
                .filter(|(_, &d)| d != 0.0)
                .map(|(j, &d)| d * hat_integral(t, &self.knots, j))
                .sum::<f64>()
    }
}

/// The knots of a fit with the mode at `t0`, and for each knot the sign of its slope (−1 left of
/// the mode, +1 right of it, 0 for the mode's own knot, whose slope is fixed at 0).
fn mode_layout(base: &[f64], t0: f64) -> (Vec<f64>, Vec<f64>) {
    let (lo, hi) = (base[0], base[base.len() - 1]);
    if t0 <= lo {
        return (base.to_vec(), vec![1.0; base.len()]);
    }
    if t0 >= hi {
        return (base.to_vec(), vec![-1.0; base.len()]);
    }
    let tol = 1e-9 * (hi - lo);
    let mut knots: Vec<f64> = base.to_vec();
    if !base.iter().any(|&k| (k - t0).abs() <= tol) {
        let at = knots.partition_point(|&k| k < t0);
        knots.insert(at, t0);
    }
    let signs = knots
        .iter()
        .map(|&k| {
            if (k - t0).abs() <= tol {
                0.0
            } else if k < t0 {
                -1.0
            } else {
                1.0
            }
        })
        .collect();
    (knots, signs)
}

/// A fit at one mode location.
#[derive(Clone, Debug)]
pub struct FitAt {
    /// Huber (or half least-squares) objective plus ½κ·Σ(Δ slope·spacing)².
    pub q: f64,
    pub spline: Spline,
    /// Fitted value at each shape.
    pub fitted: Vec<f64>,
    /// The NNLS variables (intercept, then one per signed knot) and the Huber weights of the
    /// seed rows: a warm start for the fit at a nearby mode.
    pub z: Vec<f64>,
    pub w: Vec<Vec<f64>>,
}

/// A warm start for [`fit_at`]: the variables and row weights of a fit at a nearby mode.
pub struct Warm<'a> {
    pub z: &'a [f64],
    pub w: &'a [Vec<f64>],
}

/// Huber's ρ with threshold δ (½r² inside, linear outside); plain ½r² without δ.
pub fn rho(r: f64, delta: Option<f64>) -> f64 {
    match delta {
        Some(d) if r.abs() > d => d * (r.abs() - 0.5 * d),
        _ => 0.5 * r * r,
    }
}

/// Fits the unimodal spline with its mode at `t0` by iteratively reweighted NNLS on the Huber
/// loss with threshold `delta` (None: least squares) and roughness weight `kappa`. `warm`: a fit
/// at a nearby mode (its weights start the reweighting; its variables the NNLS when the layout
/// is the same). None if a subproblem failed.
pub fn fit_at(
    rows: &Rows,
    base: &[f64],
    t0: f64,
    delta: Option<f64>,
    kappa: f64,
    warm: Option<Warm<'_>>,
) -> Option<FitAt> {
    let (knots, signs) = mode_layout(base, t0);
    let vars: Vec<usize> = (0..knots.len()).filter(|&j| signs[j] != 0.0).collect();
    let p = 1 + vars.len();
    // Design rows per shape: [1, sign_j·B_j(t_i) ...].
    let m = rows.t.len();
    let mut x = vec![0.0; m * p];
    for (i, &t) in rows.t.iter().enumerate() {
        x[i * p] = 1.0;
        for (c, &j) in vars.iter().enumerate() {
            x[i * p + 1 + c] = signs[j] * hat_integral(t, &knots, j);
        }
    }
    // Roughness: Σ_j ((d_{j+1} − d_j)·h_j)² over consecutive knots, as a quadratic form in the
    // variables: the change of slope times the knot spacing, in units of loss, so that neither the
    // mode's knot (which can sit arbitrarily close to another) nor an uneven sweep inflates it.
    let mut var_of = vec![usize::MAX; knots.len()];
    for (c, &j) in vars.iter().enumerate() {
        var_of[j] = 1 + c;
    }
    let mut pen = vec![0.0; p * p];
    for j in 0..knots.len() - 1 {
        let h = knots[j + 1] - knots[j];
        let mut r: Vec<(usize, f64)> = Vec::with_capacity(2);
        if var_of[j + 1] != usize::MAX {
            r.push((var_of[j + 1], signs[j + 1] * h));
        }
        if var_of[j] != usize::MAX {
            r.push((var_of[j], -signs[j] * h));
        }
        for &(a, va) in &r {
            for &(b, vb) in &r {
                pen[a * p + b] += va * vb;
            }
        }
    }
    let mut w: Vec<Vec<f64>> = match (&warm, delta) {
        (Some(wm), Some(_)) => wm.w.to_vec(),
        _ => rows.y.iter().map(|s| vec![1.0; s.len()]).collect(),
    };
    let mut z = match &warm {
        Some(v) if v.z.len() == p => v.z.to_vec(),
        _ => vec![0.0; p],
    };
    let mut fitted = vec![0.0; m];
    for _iter in 0..15 {
        let mut g = vec![0.0; p * p];
        let mut hv = vec![0.0; p];
        for i in 0..m {
            let wi: f64 = w[i].iter().sum();
            let si: f64 = w[i].iter().zip(&rows.y[i]).map(|(a, b)| a * b).sum();
            let xi = &x[i * p..(i + 1) * p];
            for a in 0..p {
                hv[a] += si * xi[a];
                let wa = wi * xi[a];
                for b in 0..p {
                    g[a * p + b] += wa * xi[b];
                }
            }
        }
        for (gv, pv) in g.iter_mut().zip(&pen) {
            *gv += kappa * pv;
        }
        if !nnls(&g, &hv, p, 1, &mut z) {
            return None;
        }
        for (i, f) in fitted.iter_mut().enumerate() {
            *f = (0..p).map(|a| x[i * p + a] * z[a]).sum();
        }
        let Some(d) = delta else { break };
        let mut change = 0.0f64;
        for i in 0..m {
            for (wj, &y) in w[i].iter_mut().zip(&rows.y[i]) {
                let r = (y - fitted[i]).abs();
                let nw = if r > d { d / r } else { 1.0 };
                change = change.max((nw - *wj).abs());
                *wj = nw;
            }
        }
        if change < 1e-4 {
            break;
        }
    }
    let mut q = 0.0;
    for (i, ys) in rows.y.iter().enumerate() {
        for &y in ys {
            q += rho(y - fitted[i], delta);
        }
    }
    let roughness: f64 = (0..p)
        .map(|a| z[a] * (0..p).map(|b| pen[a * p + b] * z[b]).sum::<f64>())
        .sum();
    q += 0.5 * kappa * roughness;
    let mut slopes = vec![0.0; knots.len()];
    for (c, &j) in vars.iter().enumerate() {
        slopes[j] = signs[j] * z[1 + c];
    }
    Some(FitAt {
        q,
        spline: Spline {
            knots,
            slopes,
            c0: z[0],
        },
        fitted,
        z,
        w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(t: &[f64], y: &[f64]) -> Rows {
        Rows {
            t: t.to_vec(),
            y: y.iter().map(|&v| vec![v]).collect(),
        }
    }

    #[test]
    fn spline_basis_integrates_the_slope() {
        let knots = [0.0, 0.3, 0.5, 1.0];
        let s = Spline {
            knots: knots.to_vec(),
            slopes: vec![-1.0, 0.0, 2.0, 1.0],
            c0: 3.0,
        };
        // Numerical derivative equals the piecewise-linear slope.
        let slope = |t: f64| {
            let k = knots.partition_point(|&k| k <= t).clamp(1, 3) - 1;
            let f = (t - knots[k]) / (knots[k + 1] - knots[k]);
            s.slopes[k] * (1.0 - f) + s.slopes[k + 1] * f
        };
        for &t in &[0.1, 0.31, 0.45, 0.7, 0.99] {
            let h = 1e-6;
            let num = (s.eval(t + h) - s.eval(t - h)) / (2.0 * h);
            assert!((num - slope(t)).abs() < 1e-6, "{t}: {num} vs {}", slope(t));
        }
        assert_eq!(s.eval(0.0), 3.0);
    }

    #[test]
    fn unimodal_data_are_fitted_exactly_and_the_mode_is_respected() {
        // Unimodal data with a cliff between the second and third shape.
        let t = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
        let y = [1.30, 1.29, 1.05, 1.00, 1.02, 1.08];
        let r = rows(&t, &y);
        let base = r.base_knots();
        let at = |t0: f64| fit_at(&r, &base, t0, None, 0.0, None).unwrap();
        let best = at(0.6);
        assert!(best.q < 1e-12, "{}", best.q);
        for (f, v) in best.fitted.iter().zip(&y) {
            assert!((f - v).abs() < 1e-6);
        }
        // Forcing the mode onto the cliff or to the far right costs a lot more.
        assert!(at(0.1).q > 1e-3);
        assert!(at(1.0).q > 1e-3);
        // The fitted curve is unimodal with its minimum at the mode: slopes change sign there.
        let f = at(0.3);
        for w in f.spline.knots.windows(2).zip(f.spline.slopes.windows(2)) {
            let (k, d) = w;
            if k[1] <= 0.3 {
                assert!(d[0] <= 1e-12 && d[1] <= 1e-12);
            }
            if k[0] >= 0.3 {
                assert!(d[0] >= -1e-12 && d[1] >= -1e-12);
            }
        }
    }

    #[test]
    fn huber_downweights_a_diverged_seed() {
        let t = [0.0, 0.25, 0.5, 0.75, 1.0];
        let mut r = rows(&t, &[1.2, 1.1, 1.0, 1.1, 1.2]);
        for s in r.y.iter_mut() {
            let v = s[0];
            s.push(v + 0.001);
        }
        r.y[0].push(3.0); // one diverged seed at the edge shape
        let base = r.base_knots();
        let ls = fit_at(&r, &base, 0.5, None, 0.0, None).unwrap();
        let hub = fit_at(&r, &base, 0.5, Some(0.005), 0.0, None).unwrap();
        assert!(ls.fitted[0] > 1.7, "{}", ls.fitted[0]);
        assert!((hub.fitted[0] - 1.2).abs() < 0.01, "{}", hub.fitted[0]);
    }
}

//! Correlation statistics between a metric and the loss (METHOD.md §2.6): Pearson (NaN on zero
//! variance, never a silent 0), Spearman with average ranks (scipy's `rankdata(method="average")`),
//! and two-sided permutation p-values from seeded, per-permutation random streams.

use crate::interval::bootstrap::{column_ci, Ci};
use crate::interval::rng::Rng;
use rayon::prelude::*;

/// Pearson, Spearman and their permutation p-values for one pair of columns.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Correlation {
    /// Number of pairs where both values are finite.
    pub n: usize,
    pub pearson: f64,
    pub spearman: f64,
    /// Two-sided permutation p-value of Pearson: (1 + #{|r_perm| ≥ |r|}) / (1 + permutations).
    pub pearson_p: f64,
    /// Two-sided permutation p-value of Spearman, same convention.
    pub spearman_p: f64,
    pub permutations: usize,
}

/// Pearson correlation of two equal-length slices (two-pass, f64); NaN when n < 2 or a column has
/// zero variance.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    if n < 2 || y.len() != n || x.iter().all(|&a| a == x[0]) || y.iter().all(|&b| b == y[0]) {
        return f64::NAN;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    // Deviations are scaled by their largest magnitude so that tiny or huge values neither
    // underflow nor overflow in the products (the correlation is scale-free).
    let sx = x.iter().fold(0.0f64, |m, a| m.max((a - mx).abs()));
    let sy = y.iter().fold(0.0f64, |m, b| m.max((b - my).abs()));
    if !(sx > 0.0 && sy > 0.0 && sx.is_finite() && sy.is_finite()) {
        return f64::NAN;
    }
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = ((a - mx) / sx, (b - my) / sy);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let den = (sxx * syy).sqrt();
    if den > 0.0 && den.is_finite() {
        (sxy / den).clamp(-1.0, 1.0)
    } else {
        f64::NAN
    }
}

/// Which conventions a correlation follows (METHOD.md §2.6, §8 R4).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CorrConvention {
    /// nil: Pearson NaN on zero variance, Spearman on average ranks.
    Nil,
    /// The reference's NTP sweep: Pearson x·y/(‖x‖‖y‖ + 1e-12) of centred columns (0 on a
    /// constant column), Spearman on plain sort-order ranks (ties ranked in order of appearance).
    Reference,
}

impl CorrConvention {
    /// Parses "nil" or "reference".
    pub fn parse(name: &str) -> crate::error::Result<Self> {
        match name {
            "nil" => Ok(CorrConvention::Nil),
            "reference" => Ok(CorrConvention::Reference),
            other => Err(crate::error::NilError::Value(format!(
                "correlation convention: expected \"nil\" or \"reference\", found {other:?}"
            ))),
        }
    }

    fn pearson(self, x: &[f64], y: &[f64]) -> f64 {
        match self {
            CorrConvention::Nil => pearson(x, y),
            CorrConvention::Reference => pearson_reference(x, y),
        }
    }

    fn ranks(self, x: &[f64]) -> Vec<f64> {
        match self {
            CorrConvention::Nil => average_ranks(x),
            CorrConvention::Reference => order_ranks(x),
        }
    }
}

/// The reference's Pearson: centred x·y/(‖x‖‖y‖ + 1e-12); NaN only for fewer than 2 pairs.
pub fn pearson_reference(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    if n < 2 || y.len() != n {
        return f64::NAN;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx.sqrt() * syy.sqrt() + 1e-12)
}

/// 0-based sort-order ranks (a stable sort: tied values ranked in order of appearance).
pub fn order_ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    for (r, &i) in idx.iter().enumerate() {
        ranks[i] = r as f64;
    }
    ranks
}

/// 1-based ranks with ties given the average of the ranks they span.
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman correlation: Pearson of average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Permutation p-values of two correlations (x₁, y₁, r₁) and (x₂, y₂, r₂) whose y's are shuffled
/// together: permutation `i` uses the stream (seed, i), so the result does not depend on the thread
/// count. p = (#{|r_perm| ≥ |r_obs|} + 1)/(permutations + 1), with a relative tolerance so that
/// exact ties of the statistic count; NaN where r is not finite or no permutation is asked for.
fn permutation_p(
    corr: impl Fn(&[f64], &[f64]) -> f64 + Sync,
    first: (&[f64], &[f64], f64),
    second: (&[f64], &[f64], f64),
    permutations: usize,
    seed: u64,
) -> (f64, f64) {
    let ((x1, y1, r1), (x2, y2, r2)) = (first, second);
    if permutations == 0 || !(r1.is_finite() || r2.is_finite()) {
        return (f64::NAN, f64::NAN);
    }
    let tol = 1e-12;
    let (c1, c2) = (0..permutations)
        .into_par_iter()
        .map(|i| {
            let mut rng = Rng::stream(seed, i as u64);
            let mut order: Vec<usize> = (0..y1.len()).collect();
            rng.shuffle(&mut order);
            let p1: Vec<f64> = order.iter().map(|&k| y1[k]).collect();
            let p2: Vec<f64> = order.iter().map(|&k| y2[k]).collect();
            let a = corr(x1, &p1).abs() >= r1.abs() * (1.0 - tol) - tol;
            let b = corr(x2, &p2).abs() >= r2.abs() * (1.0 - tol) - tol;
            (a as usize, b as usize)
        })
        .reduce(|| (0, 0), |p, q| (p.0 + q.0, p.1 + q.1));
    let denom = (permutations + 1) as f64;
    let p = |c: usize, r: f64| {
        if r.is_finite() {
            (c + 1) as f64 / denom
        } else {
            f64::NAN
        }
    };
    (p(c1, r1), p(c2, r2))
}

/// Pearson and Spearman of the finite pairs of (x, y) with permutation p-values; permutation `i`
/// shuffles y with the stream (seed, i), so the result does not depend on the thread count.
pub fn correlate(x: &[f64], y: &[f64], permutations: usize, seed: u64) -> Correlation {
    correlate_with(x, y, permutations, seed, CorrConvention::Nil)
}

/// [`correlate`] under a chosen convention.
pub fn correlate_with(
    x: &[f64],
    y: &[f64],
    permutations: usize,
    seed: u64,
    conv: CorrConvention,
) -> Correlation {
    let (xs, ys): (Vec<f64>, Vec<f64>) = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .unzip();
    let r = conv.pearson(&xs, &ys);
    let rx = conv.ranks(&xs);
    let ry = conv.ranks(&ys);
    let rho = conv.pearson(&rx, &ry);
    let (pp, ps) = permutation_p(
        |u, v| conv.pearson(u, v),
        (&xs, &ys, r),
        (&rx, &ry, rho),
        permutations,
        seed,
    );
    Correlation {
        n: xs.len(),
        pearson: r,
        spearman: rho,
        pearson_p: pp,
        spearman_p: ps,
        permutations,
    }
}

/// Residuals of an OLS regression of `v` on `z` with an intercept (v itself when z is constant).
fn residualise(v: &[f64], z: &[f64]) -> Vec<f64> {
    let n = v.len() as f64;
    let (mv, mz) = (v.iter().sum::<f64>() / n, z.iter().sum::<f64>() / n);
    let szz: f64 = z.iter().map(|a| (a - mz) * (a - mz)).sum();
    let szv: f64 = z.iter().zip(v).map(|(a, b)| (a - mz) * (b - mv)).sum();
    let slope = if szz > 0.0 { szv / szz } else { 0.0 };
    v.iter()
        .zip(z)
        .map(|(b, a)| b - mv - slope * (a - mz))
        .collect()
}

/// Partial correlation of x and y controlling for z (e.g. ln N): Pearson of the residuals of x and
/// of y after OLS on z, over the triples where all three are finite; the Spearman form does the
/// same on average ranks of x, y and z. Permutation p-values shuffle y's residuals (seeded streams).
pub fn partial_correlate(
    x: &[f64],
    y: &[f64],
    z: &[f64],
    permutations: usize,
    seed: u64,
) -> Correlation {
    let keep: Vec<usize> = (0..x.len())
        .filter(|&i| x[i].is_finite() && y[i].is_finite() && z[i].is_finite())
        .collect();
    let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let (xs, ys, zs) = (pick(x), pick(y), pick(z));
    let (rx, ry) = (residualise(&xs, &zs), residualise(&ys, &zs));
    let rz = average_ranks(&zs);
    let (kx, ky) = (
        residualise(&average_ranks(&xs), &rz),
        residualise(&average_ranks(&ys), &rz),
    );
    let r = pearson(&rx, &ry);
    let rho = pearson(&kx, &ky);
    let (pp, ps) = permutation_p(pearson, (&rx, &ry, r), (&kx, &ky, rho), permutations, seed);
    Correlation {
        n: xs.len(),
        pearson: r,
        spearman: rho,
        pearson_p: pp,
        spearman_p: ps,
        permutations,
    }
}

/// Pairs-bootstrap percentile intervals (level `ci`) of Pearson and Spearman over the finite pairs:
/// replicate i resamples pairs with the stream (seed, i) and re-ranks them. Replicates where a
/// statistic is undefined (a constant resample) count against both ends (`Ci::defined` says how many
/// were defined; too many and the interval is NaN).
pub fn correlation_ci(x: &[f64], y: &[f64], replicates: usize, seed: u64, ci: f64) -> (Ci, Ci) {
    let pairs: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .collect();
    let n = pairs.len();
    if replicates == 0 || n < 3 {
        return (Ci::none(), Ci::none());
    }
    let rows: Vec<f64> = (0..replicates)
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut rng = Rng::stream(seed, i as u64);
            let (xs, ys): (Vec<f64>, Vec<f64>) = (0..n).map(|_| pairs[rng.below(n)]).unzip();
            [pearson(&xs, &ys), spearman(&xs, &ys)]
        })
        .collect();
    (
        column_ci(&rows, 2, 0, None, ci),
        column_ci(&rows, 2, 1, None, ci),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_known_values_and_nan_on_constant() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-15);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-15);
        assert!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
        assert!(pearson(&[1.0, 2.0, 3.0], &[0.1, 0.1, 0.1]).is_nan());
        assert!(pearson(&[1.0], &[1.0]).is_nan());
        assert!((pearson(&[0.0, 0.0, 1.0], &[0.0, 0.0, 1e-299]) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn partial_correlation_removes_the_shared_driver() {
        // x and y both follow z; their own parts are unrelated (orthogonal patterns).
        let z: Vec<f64> = (0..8).map(|i| i as f64).collect();
        let ex = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0];
        let ey = [1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0];
        let x: Vec<f64> = z.iter().zip(&ex).map(|(a, e)| 2.0 * a + 0.1 * e).collect();
        let y: Vec<f64> = z.iter().zip(&ey).map(|(a, e)| -a + 0.1 * e).collect();
        assert!(pearson(&x, &y) < -0.99);
        let p = partial_correlate(&x, &y, &z, 0, 0);
        assert!(p.pearson.abs() < 0.2, "{p:?}");
    }

    #[test]
    fn reference_convention() {
        assert_eq!(
            order_ranks(&[10.0, 20.0, 10.0, 5.0]),
            vec![1.0, 3.0, 2.0, 0.0]
        );
        assert_eq!(pearson_reference(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), 0.0);
        let c = correlate_with(
            &[1.0, 2.0, 2.0, 4.0],
            &[1.0, 3.0, 2.0, 5.0],
            0,
            0,
            CorrConvention::Reference,
        );
        assert!((c.spearman - 0.8).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn average_ranks_split_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0]),
            vec![1.5, 3.0, 1.5, 4.0]
        );
    }

    #[test]
    fn permutation_p_is_small_for_perfect_order_and_reproducible() {
        let x: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let y: Vec<f64> = x.iter().map(|v| v * v).collect();
        let c = correlate(&x, &y, 2000, 3);
        assert!((c.spearman - 1.0).abs() < 1e-15);
        assert!(c.spearman_p < 0.01);
        assert_eq!(c, correlate(&x, &y, 2000, 3));
        let (p, r) = correlation_ci(&x, &y, 500, 1, 0.95);
        assert!(p.lo > 0.8 && p.hi <= 1.0 && r.lo > 0.8 && r.defined == 1.0);
        assert_eq!(correlation_ci(&x, &y, 500, 1, 0.95), (p, r));
    }
}

//! Correlation statistics between a metric and the loss (METHOD.md §2.6): Pearson (NaN on zero
//! variance, never a silent 0), Spearman with average ranks (scipy's `rankdata(method="average")`),
//! and two-sided permutation p-values from seeded, per-permutation random streams.

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

/// Pearson and Spearman of the finite pairs of (x, y) with permutation p-values; permutation `i`
/// shuffles y with the stream (seed, i), so the result does not depend on the thread count.
pub fn correlate(x: &[f64], y: &[f64], permutations: usize, seed: u64) -> Correlation {
    let (xs, ys): (Vec<f64>, Vec<f64>) = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .unzip();
    let r = pearson(&xs, &ys);
    let rx = average_ranks(&xs);
    let ry = average_ranks(&ys);
    let rho = pearson(&rx, &ry);
    let (mut pp, mut ps) = (f64::NAN, f64::NAN);
    if permutations > 0 && (r.is_finite() || rho.is_finite()) {
        // Count |r_perm| ≥ |r_obs| with a relative tolerance so exact ties of the statistic count.
        let tol = 1e-12;
        let (cp, cs) = (0..permutations)
            .into_par_iter()
            .map(|i| {
                let mut rng = Rng::stream(seed, i as u64);
                let mut order: Vec<usize> = (0..ys.len()).collect();
                rng.shuffle(&mut order);
                let yp: Vec<f64> = order.iter().map(|&k| ys[k]).collect();
                let rp: Vec<f64> = order.iter().map(|&k| ry[k]).collect();
                let a = pearson(&xs, &yp).abs() >= r.abs() * (1.0 - tol) - tol;
                let b = pearson(&rx, &rp).abs() >= rho.abs() * (1.0 - tol) - tol;
                (a as usize, b as usize)
            })
            .reduce(|| (0, 0), |p, q| (p.0 + q.0, p.1 + q.1));
        let denom = (permutations + 1) as f64;
        if r.is_finite() {
            pp = (cp + 1) as f64 / denom;
        }
        if rho.is_finite() {
            ps = (cs + 1) as f64 / denom;
        }
    }
    Correlation {
        n: xs.len(),
        pearson: r,
        spearman: rho,
        pearson_p: pp,
        spearman_p: ps,
        permutations,
    }
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
    }
}

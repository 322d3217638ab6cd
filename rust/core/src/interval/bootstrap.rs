//! Stratified bootstrap of the per-budget analysis: in replicate r every shape's seeds are drawn
//! with replacement (as many as it has) from the random stream (seed, r), the whole per-budget and
//! cross-budget analysis is redone, and one row of numbers is written. A shape with a single seed
//! has nothing to resample; where its budget has a smooth fit it is resampled from the fit instead
//! (residual bootstrap: fitted value plus a residual drawn from that budget's fit). Replicates run on
//! rayon into disjoint rows of one buffer, so the result is the same for any number of threads.

use super::rng::Rng;
use super::table::Grouped;
use rayon::prelude::*;

/// Residual-bootstrap material of one budget: fitted loss per shape and the residual pool.
#[derive(Clone, Debug)]
pub struct ResidualPool {
    pub fitted: Vec<f64>,
    pub residuals: Vec<f64>,
}

/// Runs `replicates` replicates; `analyse(resampled_losses, row)` fills one row of `width` numbers
/// from the resampled seed losses (indexed like the grouped table: budget → shape → seeds).
/// `pools[b]`, when present, resamples budget b's single-seed shapes from its fit.
pub fn run<F>(
    g: &Grouped,
    pools: &[Option<ResidualPool>],
    replicates: usize,
    seed: u64,
    width: usize,
    analyse: F,
) -> Vec<f64>
where
    F: Fn(&[Vec<Vec<f64>>], &mut [f64]) + Sync,
{
    let mut out = vec![f64::NAN; replicates * width];
    if width == 0 {
        return out;
    }
    out.par_chunks_mut(width).enumerate().for_each_init(
        || {
            g.budgets
                .iter()
                .map(|b| b.shapes.iter().map(|s| s.losses.clone()).collect())
                .collect::<Vec<Vec<Vec<f64>>>>()
        },
        |buf, (r, row)| {
            let mut rng = Rng::stream(seed, r as u64);
            for (bi, b) in g.budgets.iter().enumerate() {
                for (si, s) in b.shapes.iter().enumerate() {
                    let dst = &mut buf[bi][si];
                    let k = s.losses.len();
                    match &pools[bi] {
                        Some(p) if k == 1 => {
                            dst[0] = p.fitted[si] + p.residuals[rng.below(p.residuals.len())];
                        }
                        _ => {
                            for d in dst.iter_mut() {
                                *d = s.losses[rng.below(k)];
                            }
                        }
                    }
                }
            }
            analyse(buf, row);
        },
    );
    out
}

/// A percentile interval of one bootstrapped quantity.
#[derive(Copy, Clone, Debug, PartialEq, serde::Serialize)]
pub struct Ci {
    pub lo: f64,
    pub hi: f64,
    /// Fraction of replicates in which the quantity was defined (finite).
    pub defined: f64,
}

/// Quantile q of sorted finite values with linear interpolation (numpy's default, "type 7").
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let h = (v.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// Quantile q (type 7) of unsorted finite values, by selection (O(n)); reorders `v`.
pub fn quantile_select(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let h = (v.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let (_, &mut a, right) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let b = right.iter().copied().fold(f64::INFINITY, f64::min);
    if lo + 1 >= v.len() || h == lo as f64 {
        a
    } else {
        a + (h - lo as f64) * (b - a)
    }
}

/// Percentile interval at level `ci` of column `col` of the replicate rows.
pub fn column_ci(rows: &[f64], width: usize, col: usize, ci: f64) -> Ci {
    let total = rows.len() / width.max(1);
    if total == 0 {
        return Ci {
            lo: f64::NAN,
            hi: f64::NAN,
            defined: f64::NAN,
        };
    }
    let mut v: Vec<f64> = rows
        .chunks(width)
        .map(|r| r[col])
        .filter(|x| x.is_finite())
        .collect();
    let a = (1.0 - ci) / 2.0;
    Ci {
        lo: quantile_select(&mut v, a),
        hi: quantile_select(&mut v, 1.0 - a),
        defined: v.len() as f64 / total as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_type7() {
        let v = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 8.0);
        assert!((quantile_sorted(&v, 0.5) - 3.0).abs() < 1e-15);
        assert!((quantile_sorted(&v, 0.25) - 1.75).abs() < 1e-15);
        let mut rng = crate::interval::rng::Rng::stream(3, 1);
        for n in [1usize, 2, 7, 100] {
            let mut w: Vec<f64> = (0..n).map(|_| (rng.next_u64() % 50) as f64).collect();
            let mut sorted = w.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.025, 0.5, 0.975, 1.0] {
                assert_eq!(quantile_select(&mut w, q), quantile_sorted(&sorted, q));
            }
        }
    }
}

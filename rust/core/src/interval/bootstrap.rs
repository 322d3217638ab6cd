//! Stratified bootstrap of the per-budget analysis. In replicate r, from the random stream
//! (seed, r), every shape with n ≥ 2 seeds is redrawn from its own seeds with replacement,
//! spread about its mean by √(n/(n−1)) so that the resampled mean has the variance s²/n of the
//! real one (plain resampling of 2–3 seeds shrinks it by (n−1)/n); a single-seed shape is redrawn
//! by a wild bootstrap around its budget's unimodal fit (fitted value ± a residual, random sign).
//! The whole analysis is then redone and one row of numbers written. Replicates run on rayon into
//! disjoint rows of one buffer, so the result is the same for any number of threads.

use super::rng::Rng;
use super::table::Grouped;
use rayon::prelude::*;

/// Wild-bootstrap material of one budget: fitted loss and residual per shape (the residuals of
/// single-seed shapes, raised to the budget's noise scale where the fit absorbed part of it).
#[derive(Clone, Debug)]
pub struct WildPool {
    pub fitted: Vec<f64>,
    pub residuals: Vec<f64>,
}

/// Runs `replicates` replicates; `analyse(resampled_losses, row)` fills one row of `width` numbers
/// from the resampled seed losses (indexed like the grouped table: budget → shape → seeds).
/// `pools[b]`, when present, redraws budget b's single-seed shapes around its fit; without one
/// they stay fixed.
pub fn run<F>(
    g: &Grouped,
    pools: &[Option<WildPool>],
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
    // Seed means, for the variance-corrected redraws.
    let means: Vec<Vec<f64>> = g
        .budgets
        .iter()
        .map(|b| {
            b.shapes
                .iter()
                .map(|s| s.losses.iter().sum::<f64>() / s.losses.len() as f64)
                .collect()
        })
        .collect();
    // Replicates are grouped in runs of ≥ 16 so the per-job scratch buffers are built rarely.
    out.par_chunks_mut(width)
        .enumerate()
        .with_min_len(16)
        .for_each_init(
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
                        if k == 1 {
                            if let Some(p) = &pools[bi] {
                                dst[0] = p.fitted[si] + rng.sign() * p.residuals[si];
                            }
                            continue;
                        }
                        let m = means[bi][si];
                        let c = (k as f64 / (k as f64 - 1.0)).sqrt();
                        for d in dst.iter_mut() {
                            *d = m + c * (s.losses[rng.below(k)] - m);
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
    /// NaN when too many replicates left the quantity undefined for the interval to exist.
    pub lo: f64,
    pub hi: f64,
    /// Fraction of replicates in which the quantity was defined (finite).
    pub defined: f64,
    /// Fraction of replicates in which it sat at a bound of the sweep (a censored value).
    pub at_bound: f64,
}

impl Ci {
    /// The interval of a quantity that was not bootstrapped.
    pub fn none() -> Ci {
        Ci {
            lo: f64::NAN,
            hi: f64::NAN,
            defined: f64::NAN,
            at_bound: f64::NAN,
        }
    }
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

/// Percentile interval at level `ci` of column `col` of the replicate rows; `flag`, when given,
/// is the column holding 1 where the value sat at a sweep bound. Replicates in which the quantity
/// is undefined count against both ends (as −∞ for the lower and +∞ for the upper percentile),
/// so a quantity undefined in more than (1 − ci)/2 of the replicates gets no interval (NaN)
/// instead of percentiles of the defined replicates alone.
pub fn column_ci(rows: &[f64], width: usize, col: usize, flag: Option<usize>, ci: f64) -> Ci {
    let total = rows.len() / width.max(1);
    if total == 0 {
        return Ci::none();
    }
    let mut v: Vec<f64> = rows
        .chunks(width)
        .map(|r| r[col])
        .filter(|x| x.is_finite())
        .collect();
    let at_bound = match flag {
        Some(f) => rows.chunks(width).filter(|r| r[f] == 1.0).count() as f64 / total as f64,
        None => 0.0,
    };
    let defined = v.len() as f64 / total as f64;
    v.sort_by(f64::total_cmp);
    let a = (1.0 - ci) / 2.0;
    let missing = total - v.len();
    // Type-7 position in the full sample of `total`, undefined values placed at the far end.
    let at = |q: f64, low: bool| -> f64 {
        let h = (total - 1) as f64 * q;
        let (i, frac) = (h.floor() as usize, h - h.floor());
        let get = |k: usize| -> f64 {
            let k = k.min(total - 1);
            if low {
                if k < missing {
                    f64::NAN
                } else {
                    v[k - missing]
                }
            } else if k >= v.len() {
                f64::NAN
            } else {
                v[k]
            }
        };
        let (x, y) = (get(i), get(i + 1));
        if frac == 0.0 {
            x
        } else {
            x + frac * (y - x)
        }
    };
    Ci {
        lo: at(a, true),
        hi: at(1.0 - a, false),
        defined,
        at_bound,
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
        // All replicates defined: the plain type-7 percentiles.
        let rows: Vec<f64> = (0..101).flat_map(|i| [i as f64, 0.0]).collect();
        let c = column_ci(&rows, 2, 0, Some(1), 0.9);
        assert!(
            (c.lo - 5.0).abs() < 1e-9 && (c.hi - 95.0).abs() < 1e-9,
            "{c:?}"
        );
        assert_eq!((c.defined, c.at_bound), (1.0, 0.0));
        // 3 % undefined: they count at both tails; 10 % undefined at a 0.9 level: no interval.
        let rows: Vec<f64> = (0..100)
            .flat_map(|i| {
                [
                    if i < 3 { f64::NAN } else { i as f64 },
                    (i == 99) as u8 as f64,
                ]
            })
            .collect();
        let c = column_ci(&rows, 2, 0, Some(1), 0.9);
        assert!((c.defined - 0.97).abs() < 1e-12 && (c.at_bound - 0.01).abs() < 1e-12);
        assert!(
            (c.lo - 4.95).abs() < 1e-9 && (c.hi - 97.05).abs() < 1e-9,
            "{c:?}"
        );
        let rows: Vec<f64> = (0..100)
            .flat_map(|i| [if i < 10 { f64::NAN } else { i as f64 }, 0.0])
            .collect();
        assert!(column_ci(&rows, 2, 0, None, 0.9).lo.is_nan());
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

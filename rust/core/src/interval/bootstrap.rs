//! Stratified bootstrap of the per-budget analysis: in replicate r every shape's seeds are drawn
//! with replacement (as many as it has) from the random stream (seed, r), the whole per-budget and
//! cross-budget analysis is redone, and one row of numbers is written. Replicates run on rayon into
//! disjoint rows of one buffer, so the result is the same for any number of threads.

use super::rng::Rng;
use super::table::Grouped;
use rayon::prelude::*;

/// Runs `replicates` replicates; `analyse(resampled_losses, row)` fills one row of `width` numbers
/// from the resampled seed losses (indexed like the grouped table: budget → shape → seeds).
pub fn run<F>(g: &Grouped, replicates: usize, seed: u64, width: usize, analyse: F) -> Vec<f64>
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
                    for d in dst.iter_mut() {
                        *d = s.losses[rng.below(k)];
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

/// Percentile interval at level `ci` of column `col` of the replicate rows.
pub fn column_ci(rows: &[f64], width: usize, col: usize, ci: f64) -> Ci {
    let total = rows.len() / width.max(1);
    let mut v: Vec<f64> = rows
        .chunks(width)
        .map(|r| r[col])
        .filter(|x| x.is_finite())
        .collect();
    if total == 0 {
        return Ci {
            lo: f64::NAN,
            hi: f64::NAN,
            defined: f64::NAN,
        };
    }
    v.sort_by(f64::total_cmp);
    let a = (1.0 - ci) / 2.0;
    Ci {
        lo: quantile_sorted(&v, a),
        hi: quantile_sorted(&v, 1.0 - a),
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
    }
}

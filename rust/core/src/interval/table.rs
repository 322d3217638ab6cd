//! Groups a runs table (one row per budget × shape × seed) into budgets of shapes with their seed
//! losses, and turns seed losses into the means and floored standard errors the fits weigh by.

use crate::error::{NilError, Result};

/// One shape of one budget: its ratio R (and u = ln R), the finite seed losses and the seed means
/// of every metric column.
#[derive(Clone, Debug)]
pub struct Shape {
    pub ratio: f64,
    pub u: f64,
    pub losses: Vec<f64>,
    pub metric_means: Vec<f64>,
}

/// All shapes of one budget, sorted by ratio.
#[derive(Clone, Debug)]
pub struct Budget {
    pub n: f64,
    pub shapes: Vec<Shape>,
}

/// A grouped runs table.
#[derive(Clone, Debug)]
pub struct Grouped {
    pub budgets: Vec<Budget>,
    /// Rows dropped because their loss was NaN or infinite.
    pub dropped_nonfinite: usize,
}

/// Two ratios are the same shape when they agree to this relative tolerance (CSV round trips).
const SAME_RATIO: f64 = 1e-9;

/// Validates and groups the columns; rows with a non-finite loss are dropped and counted.
pub fn group(budget: &[f64], ratio: &[f64], loss: &[f64], metrics: &[Vec<f64>]) -> Result<Grouped> {
    let n = budget.len();
    if ratio.len() != n || loss.len() != n || metrics.iter().any(|m| m.len() != n) {
        return Err(NilError::shape(
            "fit_interval: runs table columns",
            format!("{n} rows in every column (the budget column's length)"),
            format!(
                "ratio {}, loss {}, metrics {:?}",
                ratio.len(),
                loss.len(),
                metrics.iter().map(|m| m.len()).collect::<Vec<_>>()
            ),
        ));
    }
    for i in 0..n {
        if !(budget[i].is_finite() && budget[i] > 0.0) {
            return Err(NilError::Value(format!(
                "fit_interval: row {i}: budget must be a finite positive number, found {}",
                budget[i]
            )));
        }
        if !(ratio[i].is_finite() && ratio[i] > 0.0) {
            return Err(NilError::Value(format!(
                "fit_interval: row {i}: ratio must be a finite positive number, found {}",
                ratio[i]
            )));
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        budget[a]
            .total_cmp(&budget[b])
            .then(ratio[a].total_cmp(&ratio[b]))
    });
    let mut budgets: Vec<Budget> = Vec::new();
    let mut dropped = 0usize;
    // metric sums and counts of the shape being built
    let mut sums: Vec<(f64, usize)> = vec![(0.0, 0); metrics.len()];
    let flush =
        |shape: &mut Option<Shape>, sums: &mut Vec<(f64, usize)>, budgets: &mut Vec<Budget>| {
            if let Some(mut s) = shape.take() {
                s.metric_means = sums
                    .iter()
                    .map(|&(t, c)| if c > 0 { t / c as f64 } else { f64::NAN })
                    .collect();
                if !s.losses.is_empty() {
                    budgets.last_mut().expect("budget opened").shapes.push(s);
                }
            }
            sums.iter_mut().for_each(|v| *v = (0.0, 0));
        };
    let mut current: Option<Shape> = None;
    for &i in &order {
        let new_budget = budgets.last().is_none_or(|b| b.n != budget[i]);
        let same_shape = !new_budget
            && current
                .as_ref()
                .is_some_and(|s| (ratio[i] - s.ratio).abs() <= SAME_RATIO * s.ratio);
        if !same_shape {
            flush(&mut current, &mut sums, &mut budgets);
            if new_budget {
                budgets.push(Budget {
                    n: budget[i],
                    shapes: Vec::new(),
                });
            }
            current = Some(Shape {
                ratio: ratio[i],
                u: ratio[i].ln(),
                losses: Vec::new(),
                metric_means: Vec::new(),
            });
        }
        if !loss[i].is_finite() {
            dropped += 1;
            continue;
        }
        let s = current.as_mut().expect("shape opened");
        s.losses.push(loss[i]);
        for (k, m) in metrics.iter().enumerate() {
            if m[i].is_finite() {
                sums[k].0 += m[i];
                sums[k].1 += 1;
            }
        }
    }
    flush(&mut current, &mut sums, &mut budgets);
    budgets.retain(|b| !b.shapes.is_empty());
    if budgets.is_empty() {
        return Err(NilError::Value(format!(
            "fit_interval: no run has a finite loss ({n} rows, {dropped} with NaN or infinite loss)"
        )));
    }
    Ok(Grouped {
        budgets,
        dropped_nonfinite: dropped,
    })
}

/// Mean and sample variance (ddof 1; NaN for one value) of a slice.
pub fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, f64::NAN);
    }
    let ss: f64 = v.iter().map(|x| (x - m) * (x - m)).sum();
    (m, ss / (n - 1.0))
}

/// Weights 1/se² of the shapes of one budget from seed counts and sample variances.
///
/// se_i = sd_i/√n_i where a shape has ≥ 2 seeds; `se_ref` = the median of those. Each se is
/// floored at `floor_frac`·se_ref, and a single-seed shape gets se_ref. With no replicated shape or
/// se_ref = 0 every weight is 1 (an unweighted fit). Returns (weights, weighted).
pub fn weights(counts: &[usize], vars: &[f64], floor_frac: f64, out: &mut Vec<f64>) -> bool {
    out.clear();
    let mut ses: Vec<f64> = counts
        .iter()
        .zip(vars)
        .filter(|(&c, v)| c >= 2 && v.is_finite())
        .map(|(&c, &v)| (v / c as f64).sqrt())
        .collect();
    if ses.is_empty() {
        out.resize(counts.len(), 1.0);
        return false;
    }
    ses.sort_by(f64::total_cmp);
    let m = ses.len();
    let se_ref = if m % 2 == 1 {
        ses[m / 2]
    } else {
        0.5 * (ses[m / 2 - 1] + ses[m / 2])
    };
    if !(se_ref > 0.0) {
        out.resize(counts.len(), 1.0);
        return false;
    }
    let floor = floor_frac * se_ref;
    for (&c, &v) in counts.iter().zip(vars) {
        let se = if c >= 2 && v.is_finite() {
            (v / c as f64).sqrt().max(floor)
        } else {
            se_ref
        };
        out.push(1.0 / (se * se));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_seeds_and_drops_nan() {
        let b = [2.0, 1.0, 1.0, 1.0, 2.0];
        let r = [0.5, 0.1, 0.2, 0.1, 0.5];
        let l = [3.0, 1.0, 2.0, 5.0, f64::NAN];
        let g = group(&b, &r, &l, &[vec![1.0, 2.0, 3.0, 4.0, 5.0]]).unwrap();
        assert_eq!(g.dropped_nonfinite, 1);
        assert_eq!(g.budgets.len(), 2);
        assert_eq!(g.budgets[0].shapes.len(), 2);
        assert_eq!(g.budgets[0].shapes[0].losses, vec![1.0, 5.0]);
        assert_eq!(g.budgets[0].shapes[0].metric_means, vec![3.0]);
        assert_eq!(g.budgets[1].shapes[0].losses, vec![3.0]);
        assert!(group(&[1.0], &[-1.0], &[1.0], &[]).is_err());
        assert!(group(&[1.0], &[1.0], &[f64::NAN], &[]).is_err());
    }

    #[test]
    fn weights_floor_and_fallback() {
        let mut w = Vec::new();
        assert!(weights(&[3, 3, 1], &[0.03, 0.0, f64::NAN], 0.5, &mut w));
        let se_ref: f64 = 0.5 * (0.1 + 0.0); // median of se = [0, 0.1]
        assert!((w[0] - 1.0 / 0.01).abs() < 1e-9);
        assert!((w[1] - 1.0 / (0.5 * se_ref).powi(2)).abs() < 1e-6);
        assert!((w[2] - 1.0 / se_ref.powi(2)).abs() < 1e-6);
        assert!(!weights(&[1, 1], &[f64::NAN, f64::NAN], 0.5, &mut w));
        assert_eq!(w, vec![1.0, 1.0]);
    }
}

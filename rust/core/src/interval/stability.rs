//! Stability of the optimum across budgets: the slope s of ln R*(N) = A + s·ln N, estimated from
//! a joint model of all budgets — every budget's unimodal fit with its mode held on the line —
//! whose deviance is the sum of the per-budget profile statistics Λ_b(ln R). The profile over s
//! (minimised over the line's level) gives the estimate and a profile-likelihood confidence set.
//! Only budgets with an uncensored optimum enter; with fewer than [`MIN_BUDGETS`] the slope is not
//! estimable. A line that leaves a budget's sweep is charged that budget's Λ at the sweep edge.

use serde::Serialize;

/// Budgets with an uncensored optimum needed for a slope.
pub const MIN_BUDGETS: usize = 4;

/// One budget's profile: ln N, the grid of ln R (ascending) and Λ on it.
pub struct BudgetProfile<'a> {
    pub ln_n: f64,
    pub u: &'a [f64],
    pub stat: &'a [f64],
}

/// The slope of ln R* on ln N with its profile confidence set.
#[derive(Clone, Debug, Serialize)]
pub struct Stability {
    pub slope: f64,
    /// A of ln R* = A + s·ln N at the estimate.
    pub intercept: f64,
    /// Confidence set for s at `level` (its hull); NaN on a side where it does not close within
    /// the searched range (`lo_unbounded` / `hi_unbounded`).
    pub slope_lo: f64,
    pub slope_hi: f64,
    pub lo_unbounded: bool,
    pub hi_unbounded: bool,
    pub level: f64,
    pub crit: f64,
    /// Budgets in the joint model (those with an uncensored optimum).
    pub n: usize,
    pub budgets: Vec<f64>,
    /// Why the slope is not estimated, when it is not.
    pub note: Option<String>,
}

impl Stability {
    pub fn not_estimable(budgets: Vec<f64>, level: f64, note: String) -> Stability {
        Stability {
            slope: f64::NAN,
            intercept: f64::NAN,
            slope_lo: f64::NAN,
            slope_hi: f64::NAN,
            lo_unbounded: false,
            hi_unbounded: false,
            level,
            crit: f64::NAN,
            n: budgets.len(),
            budgets,
            note: Some(note),
        }
    }
}

/// Λ_b at ln R = x, linear between grid points, constant beyond the sweep's edges.
fn stat_at(p: &BudgetProfile<'_>, x: f64) -> f64 {
    let (u, s) = (p.u, p.stat);
    if x <= u[0] {
        return s[0];
    }
    if x >= u[u.len() - 1] {
        return s[s.len() - 1];
    }
    let i = u.partition_point(|&v| v <= x).clamp(1, u.len() - 1);
    let f = (x - u[i - 1]) / (u[i] - u[i - 1]);
    s[i - 1] + f * (s[i] - s[i - 1])
}

/// Minimises Σ_b Λ_b(a + s·x_b) over the level a (grid, then golden section); returns (min, a).
fn best_level(ps: &[BudgetProfile<'_>], x: &[f64], s: f64, a_lo: f64, a_hi: f64) -> (f64, f64) {
    let j = |a: f64| -> f64 {
        ps.iter()
            .zip(x)
            .map(|(p, &xb)| stat_at(p, a + s * xb))
            .sum()
    };
    const N: usize = 400;
    let step = (a_hi - a_lo) / N as f64;
    let (mut ka, mut kv) = (0usize, f64::INFINITY);
    for k in 0..=N {
        let v = j(a_lo + step * k as f64);
        if v < kv {
            kv = v;
            ka = k;
        }
    }
    let (mut lo, mut hi) = (
        a_lo + step * ka.saturating_sub(1) as f64,
        a_lo + step * (ka + 1).min(N) as f64,
    );
    let g = 0.5 * (5f64.sqrt() - 1.0);
    let (mut c, mut d) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut fc, mut fd) = (j(c), j(d));
    for _ in 0..40 {
        if fc < fd {
            hi = d;
            d = c;
            fd = fc;
            c = hi - g * (hi - lo);
            fc = j(c);
        } else {
            lo = c;
            c = d;
            fc = fd;
            d = lo + g * (hi - lo);
            fd = j(d);
        }
    }
    let (mut best, mut at) = (kv, a_lo + step * ka as f64);
    for (v, a) in [(fc, c), (fd, d)] {
        if v < best {
            best = v;
            at = a;
        }
    }
    (best, at)
}

/// The joint-profile slope over the given budgets (each with an uncensored optimum).
pub fn joint_slope(
    ps: &[BudgetProfile<'_>],
    budgets: Vec<f64>,
    level: f64,
    crit: f64,
) -> Stability {
    if ps.len() < MIN_BUDGETS {
        return Stability::not_estimable(
            budgets,
            level,
            format!(
                "not estimable: {} budget(s) with an uncensored optimum, at least {MIN_BUDGETS} needed",
                ps.len()
            ),
        );
    }
    let mean_ln = ps.iter().map(|p| p.ln_n).sum::<f64>() / ps.len() as f64;
    let x: Vec<f64> = ps.iter().map(|p| p.ln_n - mean_ln).collect();
    let xr = x.iter().fold(0.0f64, |a, &v| a.max(v.abs()));
    if !(xr > 0.0) {
        return Stability::not_estimable(budgets, level, "not estimable: all budgets equal".into());
    }
    let (ulo, uhi) = ps
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.u[0]), b.max(p.u[p.u.len() - 1]))
        });
    // Slopes that move the optimum by up to four times the widest sweep across the budgets.
    let smax = 4.0 * (uhi - ulo) / xr;
    const NS: usize = 800;
    let slopes: Vec<f64> = (0..=NS)
        .map(|k| -smax + 2.0 * smax * k as f64 / NS as f64)
        .collect();
    let prof: Vec<(f64, f64)> = slopes
        .iter()
        .map(|&s| best_level(ps, &x, s, ulo - s.abs() * xr, uhi + s.abs() * xr))
        .collect();
    let jmin = prof.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let d: Vec<f64> = prof.iter().map(|p| p.0 - jmin).collect();
    // Estimate: the middle of the grid points attaining the minimum.
    let zero: Vec<usize> = (0..=NS).filter(|&k| d[k] <= 1e-12 * (1.0 + jmin)).collect();
    let k_mid = zero[zero.len() / 2];
    let slope = if zero.len() > 1 {
        0.5 * (slopes[zero[0]] + slopes[zero[zero.len() - 1]])
    } else {
        slopes[k_mid]
    };
    let a = prof[k_mid].1;
    let inside: Vec<bool> = d.iter().map(|&v| v <= crit).collect();
    let first = inside
        .iter()
        .position(|&b| b)
        .expect("the minimum is inside");
    let last = inside
        .iter()
        .rposition(|&b| b)
        .expect("the minimum is inside");
    let cross = |i: usize, j: usize| {
        slopes[i] + (slopes[j] - slopes[i]) * ((crit - d[i]) / (d[j] - d[i])).clamp(0.0, 1.0)
    };
    let (lo_unb, hi_unb) = (first == 0, last == NS);
    Stability {
        slope,
        intercept: a - slope * mean_ln,
        slope_lo: if lo_unb {
            f64::NAN
        } else {
            cross(first, first - 1)
        },
        slope_hi: if hi_unb {
            f64::NAN
        } else {
            cross(last, last + 1)
        },
        lo_unbounded: lo_unb,
        hi_unbounded: hi_unb,
        level,
        crit,
        n: ps.len(),
        budgets,
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_through_parabolic_profiles_is_recovered() {
        // Λ_b(u) = (u − u*_b)²/0.01 with u*_b on the line −4 + 0.1·(ln N − 14).
        let ln_n = [12.0, 13.0, 14.0, 15.0, 16.0];
        let grid: Vec<f64> = (0..=200).map(|k| -6.0 + 4.0 * k as f64 / 200.0).collect();
        let stats: Vec<Vec<f64>> = ln_n
            .iter()
            .map(|&l| {
                let us = -4.0 + 0.1 * (l - 14.0);
                grid.iter().map(|&u| (u - us).powi(2) / 0.01).collect()
            })
            .collect();
        let ps: Vec<BudgetProfile<'_>> = ln_n
            .iter()
            .zip(&stats)
            .map(|(&l, s)| BudgetProfile {
                ln_n: l,
                u: &grid,
                stat: s,
            })
            .collect();
        let st = joint_slope(&ps, ln_n.iter().map(|l| l.exp()).collect(), 0.95, 3.84);
        assert!((st.slope - 0.1).abs() < 0.01, "{st:?}");
        assert!(st.slope_lo < 0.1 && 0.1 < st.slope_hi);
        // Σ x² = 10: Λ(s) = 10 (s − 0.1)²/0.01, so the set is 0.1 ± √(0.0384/10).
        let half = (3.84f64 * 0.01 / 10.0).sqrt();
        assert!((st.slope_hi - 0.1 - half).abs() < 0.01, "{st:?}");
        assert!((st.intercept + 4.0 - 0.1 * -14.0).abs() < 0.05, "{st:?}");
        let few = joint_slope(&ps[..3], vec![1.0, 2.0, 3.0], 0.95, 3.84);
        assert!(few.slope.is_nan() && few.note.unwrap().contains("not estimable"));
    }
}

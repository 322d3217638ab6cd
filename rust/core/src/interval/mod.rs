//! Efficient-interval fitting (METHOD.md §5, §8 R7; DESIGN.md §7; docs/interval.md): from a runs
//! table (budget N, depth/width ratio R, loss, optional metric columns; one row per shape × seed)
//! compute per budget the reference's argmin and ε-bands and nil's smooth answer — a unimodal,
//! robust spline fit in ln R profiled over the optimum's location, with a confidence set that never
//! leaves the sweep and censoring at its edges — and across budgets the interval (intersection of
//! bands), the stability of R* from a joint profile, frontier power laws, the joint law L(N, R)
//! and metric–loss correlations.
//!
//! - [`table`]: grouping into budgets, shapes and seeds.
//! - [`bands`]: argmin, span and contiguous ε-bands (the reference's definitions).
//! - [`nnls`], [`unimodal`]: the shape-constrained spline with its mode held at a given place.
//! - [`profile`]: per-budget R̂*, confidence set, censoring, smooth band, anomalous shapes.
//! - [`stability`]: slope of ln R* on ln N from the joint profile of all budgets.
//! - [`powerlaw`]: frontier power laws.
//! - [`joint`]: the joint law by multi-start robust Levenberg–Marquardt.
//! - [`bootstrap`]: stratified, variance-corrected, thread-count-independent bootstrap.

pub mod bands;
pub mod bootstrap;
pub mod joint;
pub mod nnls;
pub mod powerlaw;
pub mod profile;
pub mod rng;
pub mod stability;
pub mod table;
pub mod unimodal;

use crate::corr::{correlate_with, correlation_ci, partial_correlate, CorrConvention, Correlation};
use crate::error::{NilError, Result};
use bootstrap::{column_ci, Ci, WildPool};
use joint::JointLaw;
pub use profile::{ModeOptions, SigmaSource, SmoothFit, Status};
use serde::Serialize;
pub use stability::Stability;
use statrs::distribution::{ContinuousCDF, FisherSnedecor};
use table::{group, mean_var, Grouped};

/// Columns of a runs table; every slice has one entry per run.
pub struct RunsTable<'a> {
    pub budget: &'a [f64],
    pub ratio: &'a [f64],
    pub loss: &'a [f64],
    /// Named metric columns (correlations, frontier x).
    pub metrics: Vec<(String, &'a [f64])>,
}

/// Settings of [`fit_interval`].
#[derive(Clone, Debug)]
pub struct IntervalOptions {
    /// Relative loss tolerance ε of every band.
    pub eps: f64,
    /// Bootstrap replicates for the band, interval and frontier CIs (0: none).
    pub bootstrap: usize,
    pub seed: u64,
    /// Confidence level of the sets and intervals.
    pub ci: f64,
    /// Budgets whose bands are intersected into the interval (None: all).
    pub interval_budgets: Option<Vec<f64>>,
    /// Metric columns to fit loss* = a·x^b against, besides the budget.
    pub frontier_x: Vec<String>,
    /// Permutations per correlation p-value.
    pub permutations: usize,
    /// Robust (Huber) loss in the smooth fit.
    pub huber: bool,
    /// |standardised residual| above which a shape is flagged (and the fit also reported without it).
    pub anomaly_threshold: f64,
    /// Conventions of the per-budget Pearson and Spearman (nil's, or the reference's).
    pub correlation: CorrConvention,
}

impl Default for IntervalOptions {
    fn default() -> Self {
        IntervalOptions {
            eps: 0.02,
            bootstrap: 500,
            seed: 0,
            ci: 0.95,
            interval_budgets: None,
            frontier_x: Vec::new(),
            permutations: 10_000,
            huber: true,
            anomaly_threshold: 4.0,
            correlation: CorrConvention::Nil,
        }
    }
}

impl IntervalOptions {
    fn mode(&self) -> ModeOptions {
        ModeOptions {
            eps: self.eps,
            level: self.ci,
            huber: self.huber,
            anomaly_threshold: self.anomaly_threshold,
            ..ModeOptions::default()
        }
    }
}

/// Everything computed for one budget.
#[derive(Clone, Debug, Serialize)]
pub struct BudgetResult {
    pub budget: f64,
    pub ratios: Vec<f64>,
    pub mean_loss: Vec<f64>,
    /// Standard error of each mean (NaN for a single seed).
    pub se: Vec<f64>,
    pub seeds: Vec<usize>,
    pub argmin_ratio: f64,
    pub argmin_loss: f64,
    pub argmin_tie: bool,
    /// Fraction of bootstrap replicates whose argmin is this shape.
    pub argmin_repeat: f64,
    pub span_lo: f64,
    pub span_hi: f64,
    pub contiguous_lo: f64,
    pub contiguous_hi: f64,
    pub span_is_contiguous: bool,
    /// (L − L*)/L* of the smallest and the largest swept ratio.
    pub edge_excess_low: f64,
    pub edge_excess_high: f64,
    /// nil's smooth fit on every shape.
    pub smooth: SmoothFit,
    /// The same fit without the shape `smooth.anomalous_ratio`, when one was flagged.
    pub without_anomalous: Option<SmoothFit>,
    pub band_lo_ci: Ci,
    pub band_hi_ci: Ci,
    pub span_lo_ci: Ci,
    pub span_hi_ci: Ci,
}

/// An interval across budgets: the intersection of their bands.
#[derive(Clone, Debug, Serialize)]
pub struct CrossInterval {
    /// NaN when the bands do not intersect or one is missing.
    pub lo: f64,
    pub hi: f64,
    /// Every band exists and they do not intersect.
    pub empty: bool,
    /// Budgets of `budgets` without a band (no fit): the intersection is not estimable.
    pub missing: Vec<f64>,
    /// The edge is set by a band that reaches the end of its budget's sweep (a censored edge).
    pub lo_at_bound: bool,
    pub hi_at_bound: bool,
    pub budgets: Vec<f64>,
    pub lo_ci: Ci,
    pub hi_ci: Ci,
}

/// Summary of the argmin ratios over the interval budgets (the reference's item (i)).
#[derive(Clone, Debug, Serialize)]
pub struct ArgminSummary {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub median: f64,
    /// Mean over those budgets of the edge excesses (the reference's "benefit of the optimum").
    pub mean_edge_excess_low: f64,
    pub mean_edge_excess_high: f64,
}

/// loss* = a·x^b over budgets.
#[derive(Clone, Debug, Serialize)]
pub struct Frontier {
    pub x: String,
    pub a: f64,
    pub b: f64,
    pub r2: f64,
    pub n: usize,
    pub a_ci: Ci,
    pub b_ci: Ci,
    /// Why the law is not given (fewer than 3 budgets with x > 0 and loss* > 0).
    pub note: Option<String>,
}

/// One metric–loss correlation within one budget (across shapes, seed means).
#[derive(Clone, Debug, Serialize)]
pub struct BudgetCorrelation {
    pub budget: f64,
    pub metric: String,
    #[serde(flatten)]
    pub stats: Correlation,
    /// Pairs-bootstrap percentile intervals (shapes resampled), `bootstrap` replicates.
    pub pearson_ci: Ci,
    pub spearman_ci: Ci,
}

/// The full answer of [`fit_interval`].
#[derive(Clone, Debug, Serialize)]
pub struct IntervalResult {
    pub eps: f64,
    pub ci: f64,
    pub bootstrap: usize,
    pub seed: u64,
    pub dropped_nonfinite: usize,
    pub budgets: Vec<BudgetResult>,
    pub interval: CrossInterval,
    pub smooth_interval: CrossInterval,
    pub argmin_summary: ArgminSummary,
    pub stability: Stability,
    pub frontier: Vec<Frontier>,
    pub joint: JointLaw,
    pub correlations: Vec<BudgetCorrelation>,
    /// Per metric, pooled over every shape of every budget: association with loss controlling
    /// for ln N (partial Pearson and Spearman, METHOD.md §5).
    pub partial_correlations: Vec<PartialCorrelation>,
}

/// A metric against loss over all shapes of all budgets, controlling for ln N.
#[derive(Clone, Debug, Serialize)]
pub struct PartialCorrelation {
    pub metric: String,
    #[serde(flatten)]
    pub stats: Correlation,
}

/// Fewest budgets for a frontier power law.
pub const MIN_FRONTIER_BUDGETS: usize = 3;

fn frontier_law(x: &str, xs: &[f64], loss_star: &[f64], a_ci: Ci, b_ci: Ci) -> Frontier {
    let p = powerlaw::fit_power_law(xs, loss_star);
    if p.n < MIN_FRONTIER_BUDGETS {
        return Frontier {
            x: x.to_string(),
            a: f64::NAN,
            b: f64::NAN,
            r2: f64::NAN,
            n: p.n,
            a_ci: Ci::none(),
            b_ci: Ci::none(),
            note: Some(format!(
                "not fitted: {} budget(s) with x > 0 and loss* > 0, at least {MIN_FRONTIER_BUDGETS} needed",
                p.n
            )),
        };
    }
    Frontier {
        x: x.to_string(),
        a: p.a,
        b: p.b,
        r2: p.r2,
        n: p.n,
        a_ci,
        b_ci,
        note: None,
    }
}

/// Intersection of bands; NaN when one is missing or they are disjoint. Also returns whether the
/// winning lower / upper edge sits at its budget's sweep bound.
fn intersect(bands: impl Iterator<Item = (f64, f64, bool, bool)>) -> (f64, f64, bool, bool) {
    let (mut lo, mut hi, mut lb, mut hb) = (f64::NEG_INFINITY, f64::INFINITY, false, false);
    for (a, b, ab, bb) in bands {
        if !(a.is_finite() && b.is_finite()) {
            return (f64::NAN, f64::NAN, false, false);
        }
        if a > lo {
            lo = a;
            lb = ab;
        } else if a == lo {
            lb |= ab;
        }
        if b < hi {
            hi = b;
            hb = bb;
        } else if b == hi {
            hb |= bb;
        }
    }
    if lo <= hi && lo.is_finite() {
        (lo, hi, lb, hb)
    } else {
        (f64::NAN, f64::NAN, false, false)
    }
}

/// Per-replicate row layout: per budget [band lo, flag, band hi, flag, span lo, flag, span hi,
/// flag, argmin, loss*], then [ref lo, flag, ref hi, flag, smooth lo, flag, smooth hi, flag],
/// then (a, b) per frontier law.
const PER_BUDGET: usize = 10;
const CROSS: usize = 8;

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Wild-bootstrap residuals of a budget's single-seed shapes around its fit, raised to the noise
/// scale σ where the shape-constrained fit absorbed part of the noise (all σ when it interpolates).
fn wild_pool(losses: &[Vec<f64>], model: &profile::PointModel) -> Option<WildPool> {
    if !model.sigma.is_finite() {
        return None;
    }
    let r: Vec<f64> = losses
        .iter()
        .zip(&model.fitted)
        .map(|(s, f)| if s.len() == 1 { s[0] - f } else { 0.0 })
        .collect();
    let singles = losses.iter().filter(|s| s.len() == 1).count();
    if singles == 0 {
        return None;
    }
    let rms = (r.iter().map(|v| v * v).sum::<f64>() / singles as f64).sqrt();
    let residuals = if rms >= model.sigma {
        r
    } else if rms > 0.0 {
        r.iter().map(|v| v * model.sigma / rms).collect()
    } else {
        vec![model.sigma; r.len()]
    };
    Some(WildPool {
        fitted: model.fitted.clone(),
        residuals,
    })
}

/// Fits the efficient interval of a runs table; see the module documentation.
pub fn fit_interval(runs: &RunsTable<'_>, opts: &IntervalOptions) -> Result<IntervalResult> {
    if !(opts.eps >= 0.0 && opts.eps.is_finite()) {
        return Err(NilError::Value(format!(
            "fit_interval: eps must be a finite number ≥ 0, found {}",
            opts.eps
        )));
    }
    if !(opts.ci > 0.0 && opts.ci < 1.0) {
        return Err(NilError::Value(format!(
            "fit_interval: ci must lie in (0, 1), found {}",
            opts.ci
        )));
    }
    let metric_cols: Vec<Vec<f64>> = runs.metrics.iter().map(|(_, c)| c.to_vec()).collect();
    let g = group(runs.budget, runs.ratio, runs.loss, &metric_cols)?;
    let nb = g.budgets.len();
    // A budget with fewer shapes than a shape-constrained fit needs has no band and no best
    // shape to speak of (its one run is not its optimum): by default it is left out of the
    // intersections and the frontier, which would otherwise call the bands disjoint or fit a
    // point that is not a best loss. It stays in the per-budget table with its note.
    let fittable: Vec<bool> = g
        .budgets
        .iter()
        .map(|b| b.shapes.len() >= profile::MIN_SHAPES)
        .collect();
    let keep: Vec<bool> = if fittable.iter().any(|&k| k) {
        fittable
    } else {
        vec![true; nb]
    };
    let in_interval: Vec<bool> = match &opts.interval_budgets {
        None => keep.clone(),
        Some(sel) if sel.is_empty() => {
            return Err(NilError::Value(
                "fit_interval: budgets is empty; give at least one budget to intersect, or None for all".into(),
            ))
        }
        Some(sel) => {
            let mut flags = vec![false; nb];
            for &want in sel {
                let hit = g
                    .budgets
                    .iter()
                    .position(|b| (b.n - want).abs() <= 1e-9 * want.abs());
                match hit {
                    Some(i) => flags[i] = true,
                    None => {
                        return Err(NilError::Value(format!(
                            "fit_interval: budget {want} is not in the runs table; its budgets are {:?}",
                            g.budgets.iter().map(|b| b.n).collect::<Vec<_>>()
                        )))
                    }
                }
            }
            flags
        }
    };
    let frontier_idx: Vec<usize> = opts
        .frontier_x
        .iter()
        .map(|name| {
            runs.metrics
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| {
                    NilError::Value(format!(
                        "fit_interval: frontier column {name:?} is not among the metric columns {:?}",
                        runs.metrics.iter().map(|(n, _)| n).collect::<Vec<_>>()
                    ))
                })
        })
        .collect::<Result<_>>()?;
    let mode = opts.mode();
    let us: Vec<Vec<f64>> = g
        .budgets
        .iter()
        .map(|b| b.shapes.iter().map(|s| s.u).collect())
        .collect();
    let observed: Vec<Vec<Vec<f64>>> = g
        .budgets
        .iter()
        .map(|b| b.shapes.iter().map(|s| s.losses.clone()).collect())
        .collect();

    // Point estimates, one budget per task.
    use rayon::prelude::*;
    let points: Vec<(SmoothFit, Option<profile::PointModel>, Option<SmoothFit>)> = (0..nb)
        .into_par_iter()
        .map(|bi| {
            let (fit, model) = profile::analyse(&us[bi], &observed[bi], &mode);
            let without = fit.anomalous_ratio.map(|r| {
                let keep: Vec<usize> = (0..us[bi].len())
                    .filter(|&i| (us[bi][i].exp() - r).abs() > 1e-12 * r)
                    .collect();
                let u: Vec<f64> = keep.iter().map(|&i| us[bi][i]).collect();
                let l: Vec<Vec<f64>> = keep.iter().map(|&i| observed[bi][i].clone()).collect();
                profile::analyse(&u, &l, &mode).0
            });
            (fit, model, without)
        })
        .collect();
    let pools: Vec<Option<WildPool>> = points
        .iter()
        .zip(&observed)
        .map(|((_, m, _), l)| m.as_ref().and_then(|m| wild_pool(l, m)))
        .collect();

    let width = nb * PER_BUDGET + CROSS + 2 * (1 + frontier_idx.len());
    // Budgets of the frontier laws (NaN: left out, see `keep`).
    let ns: Vec<f64> = g
        .budgets
        .iter()
        .zip(&keep)
        .map(|(b, &k)| if k { b.n } else { f64::NAN })
        .collect();
    // One bootstrap replicate from resampled seed losses, written into `row`.
    let analyse = |losses: &[Vec<Vec<f64>>], row: &mut [f64]| {
        let mut loss_star = vec![f64::NAN; nb];
        let mut best_shape = vec![0usize; nb];
        for bi in 0..nb {
            let r = &mut row[bi * PER_BUDGET..(bi + 1) * PER_BUDGET];
            let shapes = &g.budgets[bi].shapes;
            let (first, last) = (shapes[0].ratio, shapes[shapes.len() - 1].ratio);
            if let Some((lo, hi)) =
                profile::replicate_band(&us[bi], &losses[bi], &mode, points[bi].1.as_ref())
            {
                r[0] = lo;
                r[1] = flag(lo <= first * (1.0 + 1e-12));
                r[2] = hi;
                r[3] = flag(hi >= last * (1.0 - 1e-12));
            }
            let means: Vec<f64> = losses[bi]
                .iter()
                .map(|s| s.iter().sum::<f64>() / s.len() as f64)
                .collect();
            let bd = bands::bands(&means, opts.eps);
            r[4] = shapes[bd.span.0].ratio;
            r[5] = flag(bd.span.0 == 0);
            r[6] = shapes[bd.span.1].ratio;
            r[7] = flag(bd.span.1 == shapes.len() - 1);
            r[8] = bd.argmin as f64;
            r[9] = bd.min_loss;
            loss_star[bi] = bd.min_loss;
            best_shape[bi] = bd.argmin;
        }
        let (rowc, tail) = row.split_at_mut(nb * PER_BUDGET);
        let rowc: &[f64] = rowc;
        let sel = |k: usize| {
            (0..nb).filter(|&b| in_interval[b]).map(move |b| {
                let o = b * PER_BUDGET + k;
                (rowc[o], rowc[o + 2], rowc[o + 1] == 1.0, rowc[o + 3] == 1.0)
            })
        };
        let (rl, rh, rlb, rhb) = intersect(sel(4));
        let (sl, sh, slb, shb) = intersect(sel(0));
        tail[..CROSS].copy_from_slice(&[
            rl,
            flag(rlb),
            rh,
            flag(rhb),
            sl,
            flag(slb),
            sh,
            flag(shb),
        ]);
        let p = powerlaw::fit_power_law(&ns, &loss_star);
        tail[CROSS] = p.a;
        tail[CROSS + 1] = p.b;
        for (k, &mi) in frontier_idx.iter().enumerate() {
            let x: Vec<f64> = (0..nb)
                .map(|b| {
                    if keep[b] {
                        g.budgets[b].shapes[best_shape[b]].metric_means[mi]
                    } else {
                        f64::NAN
                    }
                })
                .collect();
            let p = powerlaw::fit_power_law(&x, &loss_star);
            tail[CROSS + 2 + 2 * k] = p.a;
            tail[CROSS + 3 + 2 * k] = p.b;
        }
    };
    let reps = bootstrap::run(&g, &pools, opts.bootstrap, opts.seed, width, analyse);
    let ci = |col: usize, fl: Option<usize>| {
        if opts.bootstrap == 0 {
            Ci::none()
        } else {
            column_ci(&reps, width, col, fl, opts.ci)
        }
    };
    let fraction = |pred: &dyn Fn(&[f64]) -> bool| -> f64 {
        if opts.bootstrap == 0 {
            return f64::NAN;
        }
        reps.chunks(width).filter(|r| pred(r)).count() as f64 / opts.bootstrap as f64
    };

    let mut budgets = Vec::with_capacity(nb);
    for ((bi, b), (smooth, _, without)) in g.budgets.iter().enumerate().zip(points) {
        let ratios: Vec<f64> = b.shapes.iter().map(|s| s.ratio).collect();
        let seeds: Vec<usize> = b.shapes.iter().map(|s| s.losses.len()).collect();
        let (means, vars): (Vec<f64>, Vec<f64>) =
            b.shapes.iter().map(|s| mean_var(&s.losses)).unzip();
        let se: Vec<f64> = vars
            .iter()
            .zip(&seeds)
            .map(|(v, &c)| (v / c as f64).sqrt())
            .collect();
        let bd = bands::bands(&means, opts.eps);
        let am = bd.argmin;
        let star = bd.min_loss;
        let base = bi * PER_BUDGET;
        budgets.push(BudgetResult {
            budget: b.n,
            argmin_ratio: ratios[am],
            argmin_loss: star,
            argmin_tie: bd.tie,
            argmin_repeat: fraction(&|r| r[base + 8] == am as f64),
            span_lo: ratios[bd.span.0],
            span_hi: ratios[bd.span.1],
            contiguous_lo: ratios[bd.contiguous.0],
            contiguous_hi: ratios[bd.contiguous.1],
            span_is_contiguous: bd.span == bd.contiguous,
            edge_excess_low: (means[0] - star) / star,
            edge_excess_high: (means[means.len() - 1] - star) / star,
            smooth,
            without_anomalous: without,
            band_lo_ci: ci(base, Some(base + 1)),
            band_hi_ci: ci(base + 2, Some(base + 3)),
            span_lo_ci: ci(base + 4, Some(base + 5)),
            span_hi_ci: ci(base + 6, Some(base + 7)),
            mean_loss: means,
            se,
            seeds,
            ratios,
        });
    }
    let t = nb * PER_BUDGET;
    let chosen: Vec<f64> = (0..nb)
        .filter(|&b| in_interval[b])
        .map(|b| g.budgets[b].n)
        .collect();
    let cross =
        |(lo, hi, lb, hb): (f64, f64, bool, bool), col: usize, missing: Vec<f64>| CrossInterval {
            lo,
            hi,
            empty: !lo.is_finite() && missing.is_empty(),
            missing,
            lo_at_bound: lb,
            hi_at_bound: hb,
            budgets: chosen.clone(),
            lo_ci: ci(col, Some(col + 1)),
            hi_ci: ci(col + 2, Some(col + 3)),
        };
    let selected = || {
        budgets
            .iter()
            .zip(&in_interval)
            .filter(|(_, &k)| k)
            .map(|(b, _)| b)
    };
    let interval = cross(
        intersect(selected().map(|b| {
            let n = b.ratios.len() - 1;
            (
                b.span_lo,
                b.span_hi,
                b.span_lo == b.ratios[0],
                b.span_hi == b.ratios[n],
            )
        })),
        t,
        Vec::new(), // a span band always exists
    );
    let smooth_interval = cross(
        intersect(selected().map(|b| {
            let s = &b.smooth;
            (s.band_lo, s.band_hi, s.band_lo_at_bound, s.band_hi_at_bound)
        })),
        t + 4,
        selected()
            .filter(|b| !(b.smooth.band_lo.is_finite() && b.smooth.band_hi.is_finite()))
            .map(|b| b.budget)
            .collect(),
    );

    let sel_budgets: Vec<&BudgetResult> = selected().collect();
    let mut am: Vec<f64> = sel_budgets.iter().map(|b| b.argmin_ratio).collect();
    am.sort_by(f64::total_cmp);
    let mean_of = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let argmin_summary = ArgminSummary {
        min: am[0],
        max: am[am.len() - 1],
        mean: mean_of(am.clone()),
        median: bootstrap::quantile_sorted(&am, 0.5),
        mean_edge_excess_low: mean_of(sel_budgets.iter().map(|b| b.edge_excess_low).collect()),
        mean_edge_excess_high: mean_of(sel_budgets.iter().map(|b| b.edge_excess_high).collect()),
    };

    // Stability: joint profile over the budgets with an uncensored optimum.
    let uncensored: Vec<&BudgetResult> = budgets
        .iter()
        .filter(|b| b.smooth.status == Status::Interior && b.smooth.crit.is_finite())
        .collect();
    let lnu: Vec<Vec<f64>> = uncensored
        .iter()
        .map(|b| b.smooth.profile_ratio.iter().map(|r| r.ln()).collect())
        .collect();
    let profiles: Vec<stability::BudgetProfile<'_>> = uncensored
        .iter()
        .zip(&lnu)
        .map(|(b, u)| stability::BudgetProfile {
            ln_n: b.budget.ln(),
            u,
            stat: &b.smooth.profile_stat,
        })
        .collect();
    let min_df = uncensored
        .iter()
        .map(|b| b.smooth.sigma_df)
        .min()
        .unwrap_or(0);
    let crit = FisherSnedecor::new(1.0, min_df.max(1) as f64)
        .map(|f| f.inverse_cdf(opts.ci))
        .unwrap_or(f64::NAN);
    let stability = stability::joint_slope(
        &profiles,
        uncensored.iter().map(|b| b.budget).collect(),
        opts.ci,
        crit,
    );

    let loss_star: Vec<f64> = budgets.iter().map(|b| b.argmin_loss).collect();
    let mut frontier = vec![frontier_law(
        "budget",
        &ns,
        &loss_star,
        ci(t + CROSS, None),
        ci(t + CROSS + 1, None),
    )];
    for (k, &mi) in frontier_idx.iter().enumerate() {
        let x: Vec<f64> = g
            .budgets
            .iter()
            .zip(&budgets)
            .zip(&keep)
            .map(|((gb, b), &k)| {
                if !k {
                    return f64::NAN;
                }
                let am = b
                    .ratios
                    .iter()
                    .position(|&r| r == b.argmin_ratio)
                    .unwrap_or(0);
                gb.shapes[am].metric_means[mi]
            })
            .collect();
        frontier.push(frontier_law(
            &runs.metrics[mi].0,
            &x,
            &loss_star,
            ci(t + CROSS + 2 + 2 * k, None),
            ci(t + CROSS + 3 + 2 * k, None),
        ));
    }

    let (mut jn, mut ju, mut jy) = (Vec::new(), Vec::new(), Vec::new());
    for b in &budgets {
        for (r, m) in b.ratios.iter().zip(&b.mean_loss) {
            jn.push(b.budget);
            ju.push(r.ln());
            jy.push(*m);
        }
    }
    let joint = joint::fit_joint_law(&jn, &ju, &jy);

    let correlations = correlations(&g, &budgets, runs, opts);
    let partial_correlations = runs
        .metrics
        .iter()
        .enumerate()
        .map(|(mi, (name, _))| {
            let (mut x, mut y, mut z) = (Vec::new(), Vec::new(), Vec::new());
            for (gb, b) in g.budgets.iter().zip(&budgets) {
                for (s, m) in gb.shapes.iter().zip(&b.mean_loss) {
                    x.push(s.metric_means[mi]);
                    y.push(*m);
                    z.push(gb.n.ln());
                }
            }
            let seed = opts.seed.wrapping_add(0x9A27_1A10 + mi as u64);
            PartialCorrelation {
                metric: name.clone(),
                stats: partial_correlate(&x, &y, &z, opts.permutations, seed),
            }
        })
        .collect();
    Ok(IntervalResult {
        eps: opts.eps,
        ci: opts.ci,
        bootstrap: opts.bootstrap,
        seed: opts.seed,
        dropped_nonfinite: g.dropped_nonfinite,
        budgets,
        interval,
        smooth_interval,
        argmin_summary,
        stability,
        frontier,
        joint,
        correlations,
        partial_correlations,
    })
}

/// Metric vs seed-mean loss across the shapes of each budget; permutation streams are seeded by
/// (seed + 1 + budget index · metrics + metric index) so each pair has its own.
fn correlations(
    g: &Grouped,
    budgets: &[BudgetResult],
    runs: &RunsTable<'_>,
    opts: &IntervalOptions,
) -> Vec<BudgetCorrelation> {
    let nm = runs.metrics.len();
    let mut out = Vec::new();
    for (bi, (gb, b)) in g.budgets.iter().zip(budgets).enumerate() {
        for (mi, (name, _)) in runs.metrics.iter().enumerate() {
            let x: Vec<f64> = gb.shapes.iter().map(|s| s.metric_means[mi]).collect();
            let stream_seed = opts
                .seed
                .wrapping_add(1 + (bi * nm + mi) as u64)
                .wrapping_mul(0x2545_F491_4F6C_DD1D);
            let (pearson_ci, spearman_ci) = correlation_ci(
                &x,
                &b.mean_loss,
                opts.bootstrap,
                stream_seed ^ 0xB007_5742_0000_0000,
                opts.ci,
            );
            out.push(BudgetCorrelation {
                budget: b.budget,
                metric: name.clone(),
                stats: correlate_with(
                    &x,
                    &b.mean_loss,
                    opts.permutations,
                    stream_seed,
                    opts.correlation,
                ),
                pearson_ci,
                spearman_ci,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three seeds per shape; an asymmetric convex loss in ln R with its optimum at R = 0.01 for
    /// every budget, falling with N.
    fn synthetic(noise: f64, budgets: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut b, mut r, mut l, mut m) = (vec![], vec![], vec![], vec![]);
        let mut rng = rng::Rng::stream(11, 0);
        for &n in budgets {
            for k in 0..9 {
                let ratio = 0.002 * f64::powf(2.0, k as f64 * 0.75);
                for _ in 0..3 {
                    b.push(n);
                    r.push(ratio);
                    let lu = ratio.ln() - 0.01f64.ln();
                    let arm = if lu < 0.0 { 0.12 } else { 0.04 };
                    l.push(2.0 + 30.0 * f64::powf(n, -0.25) + arm * lu * lu + noise * rng.normal());
                    m.push(lu * lu);
                }
            }
        }
        (b, r, l, m)
    }

    #[test]
    fn recovers_known_optimum_and_is_thread_count_independent() {
        let (b, r, l, m) = synthetic(0.002, &[1e6, 2e6, 4e6, 8e6]);
        let runs = RunsTable {
            budget: &b,
            ratio: &r,
            loss: &l,
            metrics: vec![("m".into(), &m)],
        };
        let opts = IntervalOptions {
            bootstrap: 64,
            permutations: 200,
            frontier_x: vec!["m".into()],
            ..Default::default()
        };
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| fit_interval(&runs, &opts).unwrap())
        };
        let (one, many) = (run(1), run(3));
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            serde_json::to_string(&many).unwrap()
        );
        for br in &one.budgets {
            let s = &br.smooth;
            assert_eq!(s.status, Status::Interior, "{s:?}");
            assert!(
                (s.ratio_star.ln() - 0.01f64.ln()).abs() < 0.45,
                "{}",
                s.ratio_star
            );
            assert!(s.set_lo <= 0.01 && 0.01 <= s.set_hi, "{s:?}");
            assert!(s.set_lo >= br.ratios[0] && s.set_hi <= br.ratios[8]);
            assert_eq!(s.sigma_source, SigmaSource::PureError);
            assert!(br.band_lo_ci.lo <= s.band_lo && s.band_lo <= br.band_lo_ci.hi);
        }
        assert!(!one.interval.empty);
        assert!(one.interval.lo <= 0.01 && 0.01 <= one.interval.hi);
        let st = &one.stability;
        assert_eq!(st.n, 4);
        assert!(st.slope_lo <= 0.0 && 0.0 <= st.slope_hi, "{st:?}");
        assert!((one.joint.beta - 0.25).abs() < 0.1, "{:?}", one.joint);
        assert_eq!(one.frontier.len(), 2);
        assert_eq!(one.correlations.len(), 4);
    }

    #[test]
    fn few_budgets_give_no_slope_and_no_frontier() {
        let (b, r, l, _) = synthetic(0.002, &[1e6, 2e6]);
        let runs = RunsTable {
            budget: &b,
            ratio: &r,
            loss: &l,
            metrics: vec![],
        };
        let opts = IntervalOptions {
            bootstrap: 0,
            permutations: 0,
            ..Default::default()
        };
        let f = fit_interval(&runs, &opts).unwrap();
        assert!(f.stability.slope.is_nan());
        assert!(f
            .stability
            .note
            .as_deref()
            .unwrap()
            .contains("not estimable"));
        assert!(f.frontier[0].a.is_nan() && f.frontier[0].note.is_some());
        assert!(f.joint.note.is_some());
    }

    #[test]
    fn unknown_budget_and_frontier_column_are_errors() {
        let (b, r, l, _) = synthetic(0.0, &[1e6, 2e6, 4e6]);
        let runs = RunsTable {
            budget: &b,
            ratio: &r,
            loss: &l,
            metrics: vec![],
        };
        let mut opts = IntervalOptions {
            bootstrap: 0,
            interval_budgets: Some(vec![5e6]),
            ..Default::default()
        };
        let e = fit_interval(&runs, &opts).unwrap_err().to_string();
        assert!(e.contains("5000000"), "{e}");
        opts.interval_budgets = None;
        opts.frontier_x = vec!["aofe".into()];
        assert!(fit_interval(&runs, &opts).is_err());
    }
}

//! Efficient-interval fitting (METHOD.md §5, §8 R7; DESIGN.md §7): from a runs table (budget N,
//! depth/width ratio R, loss, optional metric columns; one row per shape × seed) compute per budget
//! the reference's argmin and ε-bands and nil's smooth quadratic estimate with bootstrap CIs, and
//! across budgets the interval (intersection of bands), its stability, frontier power laws, the
//! joint law L(N, R) and metric–loss correlations.
//!
//! - [`table`]: grouping into budgets, shapes and seeds; seed means and weights.
//! - [`bands`]: argmin, span and contiguous ε-bands (the reference's definitions).
//! - [`quadfit`]: robust weighted quadratic in ln R, vertex and smooth band.
//! - [`powerlaw`]: frontier power laws and the stability line.
//! - [`joint`]: the joint law by multi-start robust Levenberg–Marquardt.
//! - [`bootstrap`]: stratified, thread-count-independent bootstrap and percentile intervals.

pub mod bands;
pub mod bootstrap;
pub mod joint;
pub mod linalg;
pub mod powerlaw;
pub mod quadfit;
pub mod rng;
pub mod table;

use crate::corr::{correlate, Correlation};
use crate::error::{NilError, Result};
use bootstrap::{column_ci, Ci};
use joint::JointLaw;
use quadfit::{fit_quadratic, QuadFit, QuadOptions, Vertex};
use serde::Serialize;
use table::{group, mean_var, weights, Grouped};

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
    /// Bootstrap replicates (0: no CIs).
    pub bootstrap: usize,
    pub seed: u64,
    /// Confidence level of the percentile intervals.
    pub ci: f64,
    /// Budgets whose bands are intersected into the interval (None: all).
    pub interval_budgets: Option<Vec<f64>>,
    /// Metric columns to fit loss* = a·x^b against, besides the budget.
    pub frontier_x: Vec<String>,
    /// Permutations per correlation p-value.
    pub permutations: usize,
    /// Standard errors are floored at this fraction of the budget's median standard error.
    pub se_floor: f64,
    /// |externally studentised residual| above which one point is dropped from a smooth fit.
    pub outlier_threshold: f64,
    /// Half-width, in shapes, of the window fit around the argmin.
    pub window: usize,
    /// Resample single-seed shapes from their budget's fit residuals (else they stay fixed).
    pub residual_bootstrap: bool,
}

impl Default for IntervalOptions {
    fn default() -> Self {
        IntervalOptions {
            eps: 0.02,
            bootstrap: 10_000,
            seed: 0,
            ci: 0.95,
            interval_budgets: None,
            frontier_x: Vec::new(),
            permutations: 10_000,
            se_floor: 0.5,
            outlier_threshold: 4.0,
            window: 3,
            residual_bootstrap: true,
        }
    }
}

/// A smooth fit as reported (ratios, not logs).
#[derive(Clone, Debug, Serialize)]
pub struct SmoothFit {
    /// c₀, c₁, c₂ of ℓ(u) = c₀ + c₁u + c₂u², u = ln R.
    pub coef: [f64; 3],
    pub vertex: Vertex,
    /// R̂* = exp(−c₁/2c₂) (NaN unless `vertex` is interior).
    pub ratio_star: f64,
    /// Ratio minimising the fit within the sweep, and the fitted loss there.
    pub ratio_fit_min: f64,
    pub loss_fit_min: f64,
    pub band_lo: f64,
    pub band_hi: f64,
    /// Ratio of the shape dropped as an outlier, if one was.
    pub outlier_ratio: Option<f64>,
    pub n_points: usize,
    pub rms: f64,
}

impl SmoothFit {
    fn from(q: &QuadFit, ratios: &[f64], offset: usize) -> Self {
        SmoothFit {
            coef: q.coef,
            vertex: q.vertex,
            ratio_star: q.u_star.exp(),
            ratio_fit_min: q.u_fit_min.exp(),
            loss_fit_min: q.loss_fit_min,
            band_lo: q.band.0.exp(),
            band_hi: q.band.1.exp(),
            outlier_ratio: q.outlier.map(|i| ratios[offset + i]),
            n_points: q.n_points,
            rms: q.rms,
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
    /// Whether the smooth fit was weighted by 1/se² (false without replicated shapes).
    pub weighted: bool,
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
    pub smooth: SmoothFit,
    /// The same fit on the shapes within `window` places of the argmin.
    pub window: SmoothFit,
    pub ratio_star_ci: Ci,
    pub band_lo_ci: Ci,
    pub band_hi_ci: Ci,
    pub span_lo_ci: Ci,
    pub span_hi_ci: Ci,
    /// Fraction of replicates without an interior vertex.
    pub boundary_fraction: f64,
}

/// An interval across budgets: the intersection of their bands.
#[derive(Clone, Debug, Serialize)]
pub struct CrossInterval {
    /// NaN when the bands do not intersect.
    pub lo: f64,
    pub hi: f64,
    pub empty: bool,
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

/// Slope of ln R̂* on ln N over budgets with an interior vertex.
#[derive(Clone, Debug, Serialize)]
pub struct Stability {
    pub slope: f64,
    pub intercept: f64,
    pub slope_se: f64,
    pub n: usize,
    pub slope_ci: Ci,
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
}

/// One metric–loss correlation within one budget (across shapes, seed means).
#[derive(Clone, Debug, Serialize)]
pub struct BudgetCorrelation {
    pub budget: f64,
    pub metric: String,
    #[serde(flatten)]
    pub stats: Correlation,
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
}

/// Per-budget analysis of one set of seed losses (used for the estimate and every replicate).
struct BudgetAnalysis {
    bands: bands::Bands,
    fit: QuadFit,
    weighted: bool,
}

/// Reusable buffers of [`analyse_budget`]: seed means, variances, counts and weights per shape.
#[derive(Default)]
struct Scratch {
    means: Vec<f64>,
    vars: Vec<f64>,
    counts: Vec<usize>,
    w: Vec<f64>,
}

fn analyse_budget(
    u: &[f64],
    seeds: &[Vec<f64>],
    opts: &IntervalOptions,
    sc: &mut Scratch,
) -> BudgetAnalysis {
    sc.means.clear();
    sc.vars.clear();
    sc.counts.clear();
    for s in seeds {
        let (m, v) = mean_var(s);
        sc.means.push(m);
        sc.vars.push(v);
        sc.counts.push(s.len());
    }
    let weighted = weights(&sc.counts, &sc.vars, opts.se_floor, &mut sc.w);
    let qopts = QuadOptions {
        eps: opts.eps,
        outlier_threshold: opts.outlier_threshold,
    };
    let fit = fit_quadratic(u, &sc.means, &sc.w, qopts);
    let bands = bands::bands(&sc.means, opts.eps);
    BudgetAnalysis {
        bands,
        fit,
        weighted,
    }
}

/// Fitted values and dof-scaled, centred residuals of a budget's point fit (residual bootstrap of
/// single-seed shapes); None without a fit or without more points than coefficients.
fn residual_pool(u: &[f64], means: &[f64], fit: &QuadFit) -> Option<bootstrap::ResidualPool> {
    if fit.vertex == Vertex::NoFit || fit.n_points <= 3 {
        return None;
    }
    let c = fit.coef;
    let fitted: Vec<f64> = u.iter().map(|x| c[0] + c[1] * x + c[2] * x * x).collect();
    let mut residuals: Vec<f64> = (0..u.len())
        .filter(|&i| fit.outlier != Some(i))
        .map(|i| means[i] - fitted[i])
        .collect();
    let n = residuals.len() as f64;
    let mean = residuals.iter().sum::<f64>() / n;
    let scale = (n / (n - 3.0)).sqrt();
    residuals.iter_mut().for_each(|r| *r = (*r - mean) * scale);
    Some(bootstrap::ResidualPool { fitted, residuals })
}

fn intersect(bands: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    for (a, b) in bands {
        if !(a.is_finite() && b.is_finite()) {
            return (f64::NAN, f64::NAN);
        }
        lo = lo.max(a);
        hi = hi.min(b);
    }
    if lo <= hi && lo.is_finite() {
        (lo, hi)
    } else {
        (f64::NAN, f64::NAN)
    }
}

/// Per-replicate row: per budget [R̂*, smooth lo, smooth hi, span lo, span hi, argmin, loss*],
/// then [ref lo, ref hi, smooth lo, smooth hi, stability slope], then (a, b) per frontier x.
const PER_BUDGET: usize = 7;

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
    let in_interval: Vec<bool> = match &opts.interval_budgets {
        None => vec![true; nb],
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

    let us: Vec<Vec<f64>> = g
        .budgets
        .iter()
        .map(|b| b.shapes.iter().map(|s| s.u).collect())
        .collect();
    let ln_n: Vec<f64> = g.budgets.iter().map(|b| b.n.ln()).collect();
    let width = nb * PER_BUDGET + 5 + 2 * (1 + frontier_idx.len());

    // One replicate (or the point estimate) from seed losses, written into `row`.
    let ns: Vec<f64> = g.budgets.iter().map(|b| b.n).collect();
    let analyse = |losses: &[Vec<Vec<f64>>], row: &mut [f64]| {
        let mut sc = Scratch::default();
        let mut loss_star = vec![f64::NAN; nb];
        let mut best_shape = vec![0usize; nb];
        for bi in 0..nb {
            let a = analyse_budget(&us[bi], &losses[bi], opts, &mut sc);
            let r = &mut row[bi * PER_BUDGET..(bi + 1) * PER_BUDGET];
            let ratios = &g.budgets[bi].shapes;
            r[0] = a.fit.u_star.exp();
            r[1] = a.fit.band.0.exp();
            r[2] = a.fit.band.1.exp();
            r[3] = ratios[a.bands.span.0].ratio;
            r[4] = ratios[a.bands.span.1].ratio;
            r[5] = a.bands.argmin as f64;
            r[6] = a.bands.min_loss;
            loss_star[bi] = a.bands.min_loss;
            best_shape[bi] = a.bands.argmin;
        }
        let (rowc, tail) = row.split_at_mut(nb * PER_BUDGET);
        let rowc: &[f64] = rowc;
        let sel = |k: usize| (0..nb).filter(|&b| in_interval[b]).map(move |b| (b, k));
        let per = |b: usize, k: usize, row: &[f64]| row[b * PER_BUDGET + k];
        let (rl, rh) = intersect(sel(3).map(|(b, _)| (per(b, 3, rowc), per(b, 4, rowc))));
        let (sl, sh) = intersect(sel(1).map(|(b, _)| (per(b, 1, rowc), per(b, 2, rowc))));
        let ln_star: Vec<f64> = (0..nb).map(|b| per(b, 0, rowc).ln()).collect();
        let stab = powerlaw::ols_line(&ln_n, &ln_star);
        tail[0] = rl;
        tail[1] = rh;
        tail[2] = sl;
        tail[3] = sh;
        tail[4] = stab.slope;
        let p = powerlaw::fit_power_law(&ns, &loss_star);
        tail[5] = p.a;
        tail[6] = p.b;
        for (k, &mi) in frontier_idx.iter().enumerate() {
            let x: Vec<f64> = (0..nb)
                .map(|b| g.budgets[b].shapes[best_shape[b]].metric_means[mi])
                .collect();
            let p = powerlaw::fit_power_law(&x, &loss_star);
            tail[7 + 2 * k] = p.a;
            tail[8 + 2 * k] = p.b;
        }
    };

    let observed: Vec<Vec<Vec<f64>>> = g
        .budgets
        .iter()
        .map(|b| b.shapes.iter().map(|s| s.losses.clone()).collect())
        .collect();
    let mut point = vec![f64::NAN; width];
    analyse(&observed, &mut point);
    let mut sc = Scratch::default();
    let points: Vec<(BudgetAnalysis, Vec<f64>, Vec<f64>, Vec<f64>)> = (0..nb)
        .map(|bi| {
            let a = analyse_budget(&us[bi], &observed[bi], opts, &mut sc);
            (a, sc.means.clone(), sc.vars.clone(), sc.w.clone())
        })
        .collect();
    let pools: Vec<Option<bootstrap::ResidualPool>> = points
        .iter()
        .enumerate()
        .map(|(bi, (a, means, _, _))| {
            if opts.residual_bootstrap {
                residual_pool(&us[bi], means, &a.fit)
            } else {
                None
            }
        })
        .collect();
    let reps = bootstrap::run(&g, &pools, opts.bootstrap, opts.seed, width, analyse);
    let ci = |col: usize| column_ci(&reps, width, col, opts.ci);
    let fraction = |pred: &dyn Fn(&[f64]) -> bool| -> f64 {
        if opts.bootstrap == 0 {
            return f64::NAN;
        }
        reps.chunks(width).filter(|r| pred(r)).count() as f64 / opts.bootstrap as f64
    };

    let mut budgets = Vec::with_capacity(nb);
    for ((bi, b), (a, means, vars, w)) in g.budgets.iter().enumerate().zip(points) {
        let weighted = a.weighted;
        let ratios: Vec<f64> = b.shapes.iter().map(|s| s.ratio).collect();
        let seeds: Vec<usize> = b.shapes.iter().map(|s| s.losses.len()).collect();
        let se: Vec<f64> = vars
            .iter()
            .zip(&seeds)
            .map(|(v, &c)| (v / c as f64).sqrt())
            .collect();
        let am = a.bands.argmin;
        let lo = am.saturating_sub(opts.window);
        let hi = (am + opts.window + 1).min(ratios.len());
        let qopts = QuadOptions {
            eps: opts.eps,
            outlier_threshold: opts.outlier_threshold,
        };
        let wfit = fit_quadratic(&us[bi][lo..hi], &means[lo..hi], &w[lo..hi], qopts);
        let star = a.bands.min_loss;
        let base = bi * PER_BUDGET;
        budgets.push(BudgetResult {
            budget: b.n,
            argmin_ratio: ratios[am],
            argmin_loss: star,
            argmin_tie: a.bands.tie,
            argmin_repeat: fraction(&|r| r[base + 5] == am as f64),
            span_lo: ratios[a.bands.span.0],
            span_hi: ratios[a.bands.span.1],
            contiguous_lo: ratios[a.bands.contiguous.0],
            contiguous_hi: ratios[a.bands.contiguous.1],
            span_is_contiguous: a.bands.span == a.bands.contiguous,
            edge_excess_low: (means[0] - star) / star,
            edge_excess_high: (means[means.len() - 1] - star) / star,
            smooth: SmoothFit::from(&a.fit, &ratios, 0),
            window: SmoothFit::from(&wfit, &ratios, lo),
            ratio_star_ci: ci(base),
            band_lo_ci: ci(base + 1),
            band_hi_ci: ci(base + 2),
            span_lo_ci: ci(base + 3),
            span_hi_ci: ci(base + 4),
            boundary_fraction: fraction(&|r| !r[base].is_finite()),
            weighted,
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
    let cross = |lo: f64, hi: f64, col: usize| CrossInterval {
        lo,
        hi,
        empty: !lo.is_finite(),
        budgets: chosen.clone(),
        lo_ci: ci(col),
        hi_ci: ci(col + 1),
    };
    let interval = cross(point[t], point[t + 1], t);
    let smooth_interval = cross(point[t + 2], point[t + 3], t + 2);

    let sel_budgets: Vec<&BudgetResult> = budgets
        .iter()
        .zip(&in_interval)
        .filter(|(_, &k)| k)
        .map(|(b, _)| b)
        .collect();
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

    let ln_star: Vec<f64> = budgets.iter().map(|b| b.smooth.ratio_star.ln()).collect();
    let line = powerlaw::ols_line(&ln_n, &ln_star);
    let stability = Stability {
        slope: line.slope,
        intercept: line.intercept,
        slope_se: line.slope_se,
        n: line.n,
        slope_ci: ci(t + 4),
    };

    let ns: Vec<f64> = budgets.iter().map(|b| b.budget).collect();
    let loss_star: Vec<f64> = budgets.iter().map(|b| b.argmin_loss).collect();
    let mut frontier = Vec::new();
    let p = powerlaw::fit_power_law(&ns, &loss_star);
    frontier.push(Frontier {
        x: "budget".into(),
        a: p.a,
        b: p.b,
        r2: p.r2,
        n: p.n,
        a_ci: ci(t + 5),
        b_ci: ci(t + 6),
    });
    for (k, &mi) in frontier_idx.iter().enumerate() {
        let x: Vec<f64> = g
            .budgets
            .iter()
            .zip(&budgets)
            .map(|(gb, b)| {
                let am = b
                    .ratios
                    .iter()
                    .position(|&r| r == b.argmin_ratio)
                    .unwrap_or(0);
                gb.shapes[am].metric_means[mi]
            })
            .collect();
        let p = powerlaw::fit_power_law(&x, &loss_star);
        frontier.push(Frontier {
            x: runs.metrics[mi].0.clone(),
            a: p.a,
            b: p.b,
            r2: p.r2,
            n: p.n,
            a_ci: ci(t + 7 + 2 * k),
            b_ci: ci(t + 8 + 2 * k),
        });
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
            out.push(BudgetCorrelation {
                budget: b.budget,
                metric: name.clone(),
                stats: correlate(&x, &b.mean_loss, opts.permutations, stream_seed),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(noise: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut b, mut r, mut l, mut m) = (vec![], vec![], vec![], vec![]);
        let mut rng = rng::Rng::stream(11, 0);
        for &n in &[1e6, 2e6, 4e6] {
            for k in 0..9 {
                let ratio = 0.002 * f64::powf(2.0, k as f64 * 0.75);
                for _ in 0..3 {
                    let z = (rng.next_u64() as f64 / u64::MAX as f64) - 0.5;
                    b.push(n);
                    r.push(ratio);
                    let lu = ratio.ln() - 0.01f64.ln();
                    l.push(2.0 + 30.0 * f64::powf(n, -0.25) + 0.05 * lu * lu + noise * z);
                    m.push(lu * lu);
                }
            }
        }
        (b, r, l, m)
    }

    #[test]
    fn recovers_known_optimum_and_is_thread_count_independent() {
        let (b, r, l, m) = synthetic(0.002);
        let runs = RunsTable {
            budget: &b,
            ratio: &r,
            loss: &l,
            metrics: vec![("m".into(), &m)],
        };
        let opts = IntervalOptions {
            bootstrap: 300,
            permutations: 200,
            frontier_x: vec!["m".into()],
            ..Default::default()
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| fit_interval(&runs, &opts).unwrap());
        let many = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(|| fit_interval(&runs, &opts).unwrap());
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            serde_json::to_string(&many).unwrap()
        );
        for br in &one.budgets {
            assert_eq!(br.smooth.vertex, Vertex::Interior);
            assert!((br.smooth.ratio_star.ln() - 0.01f64.ln()).abs() < 0.15);
            assert!(
                br.ratio_star_ci.lo <= 0.01 && 0.01 <= br.ratio_star_ci.hi,
                "{br:?}"
            );
        }
        assert!(!one.interval.empty);
        assert!(one.interval.lo <= 0.01 && 0.01 <= one.interval.hi);
        assert!(one.stability.slope.abs() < 0.2);
        assert!((one.joint.beta - 0.25).abs() < 0.1, "{:?}", one.joint);
        assert_eq!(one.frontier.len(), 2);
        assert_eq!(one.correlations.len(), 3);
    }

    #[test]
    fn unknown_budget_and_frontier_column_are_errors() {
        let (b, r, l, _) = synthetic(0.0);
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

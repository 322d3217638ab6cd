"""nil.fit_interval and ``nil interval`` against numpy/scipy references, simulated sweeps with a
known optimum, degenerate tables, every input container, and the CLI on a reference-format CSV."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

import nil
from nil import _core
from nil.errors import NilValueError
from hypothesis_profiles import examples

FAST = dict(bootstrap=0, permutations=0)


# ---------------------------------------------------------------- references written with numpy


def reference_budget(ratios: np.ndarray, losses: list[np.ndarray], eps: float) -> dict:
    """The reference's per-budget definitions of docs/interval.md, written plainly with numpy."""
    means = np.array([l.mean() for l in losses])
    am = int(np.argmin(means))
    thr = (1 + eps) * means[am]
    inside = np.flatnonzero(means <= thr)
    lo = hi = am
    while lo > 0 and means[lo - 1] <= thr:
        lo -= 1
    while hi + 1 < len(means) and means[hi + 1] <= thr:
        hi += 1
    return dict(means=means, argmin=ratios[am], span=(ratios[inside[0]], ratios[inside[-1]]),
                contiguous=(ratios[lo], ratios[hi]))


def _hat_integral(t: np.ndarray, knots: np.ndarray, j: int) -> np.ndarray:
    out = np.zeros_like(t)
    if j > 0:
        h = knots[j] - knots[j - 1]
        x = np.clip(t - knots[j - 1], 0, h)
        out += x * x / (2 * h)
    if j < len(knots) - 1:
        h = knots[j + 1] - knots[j]
        x = np.clip(t - knots[j], 0, h)
        out += x - x * x / (2 * h)
    return out


def reference_profile_q(t: np.ndarray, y: list[np.ndarray], t0: float) -> float:
    """Half the residual sum of squares of the least-squares unimodal quadratic spline with its
    minimum at t0 (knots at the shapes, their midpoints and t0; slopes ≤ 0 left of t0, = 0 at t0,
    ≥ 0 right of it), by scipy's bounded least squares: an independent reading of docs/interval.md."""
    import scipy.optimize

    base = np.sort(np.concatenate([t, (t[1:] + t[:-1]) / 2]))
    if 0 < t0 < 1 and not np.any(np.abs(base - t0) <= 1e-9):
        knots = np.sort(np.append(base, t0))
    else:
        knots = base
    rows_t = np.concatenate([np.full(len(v), ti) for ti, v in zip(t, y)])
    rows_y = np.concatenate(y)
    cols = []
    for j, k in enumerate(knots):
        if 0 < t0 < 1 and abs(k - t0) <= 1e-9:
            continue
        sign = 1.0 if (t0 <= 0 or (t0 < 1 and k > t0)) else -1.0
        cols.append(sign * _hat_integral(rows_t, knots, j))
    x = np.stack(cols, 1)
    xc, yc = x - x.mean(0), rows_y - rows_y.mean()
    r = scipy.optimize.lsq_linear(xc, yc, bounds=(0, np.inf), method="bvls", tol=1e-14, max_iter=10_000)
    return 0.5 * float(np.sum((xc @ r.x - yc) ** 2))


def linear_r2(y: np.ndarray, yhat: np.ndarray) -> float:
    return 1 - ((y - yhat) ** 2).sum() / (((y - y.mean()) ** 2).sum() + 1e-12)


def simulate(seed: int = 0, budgets=(3e5, 1e6, 3e6, 1e7), depths=(1, 2, 3, 4, 6, 8, 12, 16, 24), seeds: int = 3,
             noise: float = 0.004, r_star: float = 0.02) -> dict[str, np.ndarray]:
    """Runs from L(N, R) = 1.5 + 30·N^-0.25 + 0.05·(ln R − ln R*)² with Gaussian seed noise."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list[float]] = {k: [] for k in ("budget", "depth", "width", "ratio", "seed", "test_loss", "aofe_ratio")}
    for n in budgets:
        for d in depths:
            w = max(8, int(round(math.sqrt(n / (12 * d)))))
            for s in range(seeds):
                r = d / w
                loss = 1.5 + 30 * n**-0.25 + 0.05 * (math.log(r) - math.log(r_star)) ** 2 + noise * rng.standard_normal()
                for k, v in zip(cols, (n, d, w, r, s, loss, 0.2 + 0.01 * math.log(r) ** 2 + 0.001 * rng.standard_normal())):
                    cols[k].append(v)
    return {k: np.asarray(v, dtype=float) for k, v in cols.items()}


# ---------------------------------------------------------------- correlations


@settings(max_examples=examples(40), deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.sampled_from([0.1, 1e-300, 3.7]) | st.floats(-10, 10, allow_nan=False)),
                min_size=3, max_size=25))
def test_correlations_match_scipy(pairs):
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    c = _core.correlation(x, y, 0, 0)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert c["pearson"] is None and c["spearman"] is None  # NaN, never a silent 0
        return
    assert c["pearson"] == pytest.approx(scipy.stats.pearsonr(x, y)[0], abs=1e-10)
    assert c["spearman"] == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-10)


def test_permutation_p_values_match_exact_enumeration():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([1.2, 1.9, 3.5, 3.1, 5.2, 4.0])
    r0 = scipy.stats.pearsonr(x, y)[0]
    rho0 = scipy.stats.spearmanr(x, y)[0]
    perms = [np.array(p) for p in itertools.permutations(range(6))]
    exact_p = np.mean([abs(scipy.stats.pearsonr(x, y[p])[0]) >= abs(r0) - 1e-12 for p in perms])
    exact_s = np.mean([abs(scipy.stats.spearmanr(x, y[p])[0]) >= abs(rho0) - 1e-12 for p in perms])
    c = _core.correlation(x, y, 20_000, 5)
    assert c["pearson_p"] == pytest.approx(exact_p, abs=0.01)
    assert c["spearman_p"] == pytest.approx(exact_s, abs=0.01)
    assert c == _core.correlation(x, y, 20_000, 5)
    assert c != _core.correlation(x, y, 20_000, 6)


# ---------------------------------------------------------------- per-budget statistics


@st.composite
def random_table(draw):
    n_budgets = draw(st.integers(1, 3))
    rows = []
    for b in range(n_budgets):
        n_shapes = draw(st.integers(3, 9))
        ratios = sorted(draw(st.lists(st.floats(1e-3, 1.0), min_size=n_shapes, max_size=n_shapes, unique=True)))
        if min(np.diff(np.log(ratios)), default=1) < 1e-3:
            ratios = list(np.geomspace(1e-3, 1.0, n_shapes))
        for r in ratios:
            for _ in range(draw(st.integers(1, 3))):
                rows.append((1e6 * (b + 1), r, draw(st.floats(1.0, 3.0))))
    return rows


@settings(max_examples=examples(40), deadline=None)
@given(random_table(), st.sampled_from([0.0, 0.02, 0.1]))
def test_per_budget_statistics_match_numpy(rows, eps):
    table = {"budget": [r[0] for r in rows], "ratio": [r[1] for r in rows], "test_loss": [r[2] for r in rows]}
    fit = nil.fit_interval(table, eps=eps, huber=False, metrics=[], **FAST)
    for b in fit.budgets:
        sel = [r for r in rows if r[0] == b.budget]
        ratios = np.array(sorted({r[1] for r in sel}))
        losses = [np.array([r[2] for r in sel if r[1] == q]) for q in ratios]
        ref = reference_budget(ratios, losses, eps)
        np.testing.assert_allclose(b.ratios, ratios)
        np.testing.assert_allclose(b.mean_loss, ref["means"], rtol=1e-12)
        assert b.argmin_ratio == ref["argmin"]
        assert (b.span_lo, b.span_hi) == ref["span"]
        assert (b.contiguous_lo, b.contiguous_hi) == ref["contiguous"]
        s = b.smooth
        if len(ratios) < 4 or np.ptp(ref["means"]) == 0:
            assert s.status == "no_fit" and math.isnan(s.ratio_star)
            continue
        lo_r, hi_r = ratios[0] * (1 - 1e-9), ratios[-1] * (1 + 1e-9)
        # never outside the sweep; the estimate inside its set; a unimodal curve
        assert lo_r <= s.band_lo <= s.band_hi <= hi_r
        if s.sigma_source != "none":
            assert lo_r <= s.set_lo <= s.set_hi <= hi_r
        if s.status == "interior":
            assert ratios[1] * (1 - 1e-9) <= s.ratio_star <= ratios[-2] * (1 + 1e-9)
            if s.sigma_source != "none":
                assert s.set_lo <= s.ratio_star <= s.set_hi
        else:
            assert math.isnan(s.ratio_star)
        c = np.asarray(s.curve_loss)
        k = int(np.argmin(c))
        assert np.all(np.diff(c[: k + 1]) <= 1e-9) and np.all(np.diff(c[k:]) >= -1e-9)
        # the profile statistic against scipy's NNLS at a few mode locations (normalised units)
        if s.sigma_source == "none":
            continue
        u = np.log(ratios)
        t = (u - u[0]) / (u[-1] - u[0])
        means = ref["means"]
        scale = max(means.max() - means.min(), 1e-300)
        y = [(l - means.mean()) / scale for l in losses]
        grid = (np.log(s.profile_ratio) - u[0]) / (u[-1] - u[0])
        sigma = s.sigma / scale
        q = np.array([reference_profile_q(t, y, g) for g in grid[:: max(1, len(grid) // 9)]])
        lam = 2 * (q - q.min()) / sigma**2
        ours = np.asarray(s.profile_stat)[:: max(1, len(grid) // 9)]
        # (the tie-breaking roughness penalty, 1e-10 in fit units, moves Λ by far less than 1e-3)
        np.testing.assert_allclose(ours - ours.min(), lam - lam.min(), atol=1e-3 + 1e-5 * lam.max())


def test_cross_budget_statistics_match_numpy():
    runs = simulate(seed=3, noise=0.01)
    fit = nil.fit_interval(runs, metrics=["aofe_ratio"], frontier_x=["aofe_ratio"], **FAST)
    spans = np.array([(b.span_lo, b.span_hi) for b in fit.budgets])
    assert (fit.interval.lo, fit.interval.hi) == (spans[:, 0].max(), spans[:, 1].min())
    smooth = np.array([(b.smooth.band_lo, b.smooth.band_hi) for b in fit.budgets])
    assert fit.smooth_interval.lo == pytest.approx(smooth[:, 0].max())
    assert fit.smooth_interval.hi == pytest.approx(smooth[:, 1].min())
    n = np.array([b.budget for b in fit.budgets])
    # stability: the slope minimising the summed per-budget profiles Λ_b(a + s·(ln N_b − mean)),
    # recomputed from the stored profiles on a brute-force grid
    st = fit.stability
    assert st.n == 4 and st.note is None
    x = np.log(n) - np.log(n).mean()
    prof = [(np.log(b.smooth.profile_ratio), np.asarray(b.smooth.profile_stat)) for b in fit.budgets]

    def joint(s_: float) -> float:
        a = np.linspace(-8, 2, 4001)
        return min(sum(np.interp(a + s_ * xb, u_, l_) for xb, (u_, l_) in zip(x, prof)))

    slopes = np.linspace(-1, 1, 401)
    j = np.array([joint(v) for v in slopes])
    assert st.slope == pytest.approx(slopes[np.argmin(j)], abs=0.02)
    inside = slopes[j - j.min() <= st.crit]
    assert st.slope_lo == pytest.approx(inside.min(), abs=0.02) and st.slope_hi == pytest.approx(inside.max(), abs=0.02)
    best = np.array([b.argmin_loss for b in fit.budgets])
    bb, la = np.polyfit(np.log(n), np.log(best), 1)
    f = fit.frontier["budget"]
    assert (f.a, f.b) == (pytest.approx(math.exp(la), rel=1e-9), pytest.approx(bb, rel=1e-9))
    assert f.r2 == pytest.approx(linear_r2(best, math.exp(la) * n**bb), rel=1e-9)
    # metric frontier: x = the argmin shape's seed-mean metric
    xs = []
    for b in fit.budgets:
        sel = (runs["budget"] == b.budget) & (runs["ratio"] == b.argmin_ratio)
        xs.append(runs["aofe_ratio"][sel].mean())
    bm, lm = np.polyfit(np.log(xs), np.log(best), 1)
    assert fit.frontier["aofe_ratio"].b == pytest.approx(bm, rel=1e-9)
    # correlations per budget over seed means
    c = fit.correlations[0]
    sel = runs["budget"] == c.budget
    rs = np.unique(runs["ratio"][sel])
    mx = [runs["aofe_ratio"][sel & (runs["ratio"] == r)].mean() for r in rs]
    my = [runs["test_loss"][sel & (runs["ratio"] == r)].mean() for r in rs]
    assert c.pearson == pytest.approx(scipy.stats.pearsonr(mx, my)[0], abs=1e-12)
    assert c.spearman == pytest.approx(scipy.stats.spearmanr(mx, my)[0], abs=1e-12)


def test_reference_correlation_convention():
    runs = {"budget": [1e6] * 6, "ratio": [0.01, 0.02, 0.04, 0.08, 0.16, 0.32],
            "test_loss": [2.2, 2.0, 2.05, 2.1, 2.3, 2.6], "aofe_ratio": [0.3, 0.2, 0.2, 0.25, 0.2, 0.4],
            "wtw_aofe_ratio": [0.1] * 6}
    fit = nil.fit_interval(runs, correlation="reference", **FAST)
    by = {c.metric: c for c in fit.correlations}
    x, y = np.array(runs["aofe_ratio"]), np.array(runs["test_loss"])

    def ref_pearson(a, b):
        a, b = a - a.mean(), b - b.mean()
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

    def order_ranks(a):
        return np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)

    assert by["aofe_ratio"].pearson == pytest.approx(ref_pearson(x, y), abs=1e-12)
    assert by["aofe_ratio"].spearman == pytest.approx(ref_pearson(order_ranks(x), order_ranks(y)), abs=1e-12)
    # the reference's 1e-12 turns a constant column into (numerically) 0 instead of NaN
    const = np.array(runs["wtw_aofe_ratio"])
    assert by["wtw_aofe_ratio"].pearson == pytest.approx(ref_pearson(const, y), abs=1e-12)
    assert abs(by["wtw_aofe_ratio"].pearson) < 1e-9
    nil_fit = nil.fit_interval(runs, **FAST)
    assert math.isnan({c.metric: c for c in nil_fit.correlations}["wtw_aofe_ratio"].pearson)
    assert {c.metric: c for c in nil_fit.correlations}["aofe_ratio"].spearman == pytest.approx(
        scipy.stats.spearmanr(x, y)[0], abs=1e-12)


def test_partial_correlation_controls_for_log_budget():
    runs = simulate(seed=11, noise=0.01)
    fit = nil.fit_interval(runs, metrics=["aofe_ratio"], bootstrap=0, permutations=500)
    x, y, z = [], [], []
    for b in fit.budgets:
        for r, m in zip(b.ratios, b.mean_loss):
            sel = (runs["budget"] == b.budget) & (runs["ratio"] == r)
            x.append(runs["aofe_ratio"][sel].mean())
            y.append(m)
            z.append(math.log(b.budget))
    x, y, z = map(np.asarray, (x, y, z))
    resid = lambda v, w: v - np.polyval(np.polyfit(w, v, 1), w)  # noqa: E731
    p = fit.partial_correlations[0]
    assert p.metric == "aofe_ratio" and p.n == len(x)
    assert p.pearson == pytest.approx(scipy.stats.pearsonr(resid(x, z), resid(y, z))[0], abs=1e-10)
    rk = scipy.stats.rankdata
    assert p.spearman == pytest.approx(scipy.stats.pearsonr(resid(rk(x), rk(z)), resid(rk(y), rk(z)))[0], abs=1e-10)
    assert 0 < p.pearson_p <= 1


def test_correlation_bootstrap_ci_matches_scipy_bootstrap():
    runs = simulate(seed=4, budgets=(1e6,), noise=0.01)
    fit = nil.fit_interval(runs, metrics=["aofe_ratio"], bootstrap=4000, permutations=0)
    c = fit.correlations[0]
    rs = np.unique(runs["ratio"])
    mx = np.array([runs["aofe_ratio"][runs["ratio"] == r].mean() for r in rs])
    my = np.array([runs["test_loss"][runs["ratio"] == r].mean() for r in rs])
    ref = scipy.stats.bootstrap((mx, my), lambda a, b: scipy.stats.pearsonr(a, b)[0], paired=True,
                                vectorized=False, n_resamples=4000, method="percentile", random_state=0)
    assert c.pearson_ci.lo == pytest.approx(ref.confidence_interval.low, abs=0.03)
    assert c.pearson_ci.hi == pytest.approx(ref.confidence_interval.high, abs=0.03)
    assert c.spearman_ci.lo <= c.spearman <= c.spearman_ci.hi


# ---------------------------------------------------------------- simulated sweeps


def test_simulated_sweep_recovers_optimum_within_its_confidence_set():
    runs = simulate(seed=1)
    fit = nil.fit_interval(runs, bootstrap=400, seed=4, metrics=[])
    covered = 0
    for b in fit.budgets:
        s = b.smooth
        assert s.status == "interior" and s.sigma_source == "pure_error"
        covered += s.set_lo <= 0.02 <= s.set_hi
        assert b.band_lo_ci.lo <= s.band_lo <= b.band_lo_ci.hi and b.band_lo_ci.defined == 1
        assert 0 <= b.argmin_repeat <= 1
    assert covered == 4
    # a shape-constrained estimate on a sweep whose ratios step by ~1.8×: within a ratio step
    assert all(abs(math.log(b.smooth.ratio_star / 0.02)) < 0.45 for b in fit.budgets)
    st = fit.stability
    assert st.slope_lo <= 0 <= st.slope_hi
    j = fit.joint
    assert j.note is None and j.converged and not j.flags
    assert j.ratio_star == pytest.approx(0.02, rel=0.05)
    assert j.beta == pytest.approx(0.25, abs=0.05)
    assert j.b == pytest.approx(0.05, rel=0.1)


def test_bootstrap_is_seeded_and_thread_count_independent(tmp_path):
    runs = simulate(seed=2, budgets=(1e6, 2e6), depths=(1, 2, 4, 8, 16))
    a = nil.fit_interval(runs, bootstrap=300, seed=7, permutations=100).to_dict()
    b = nil.fit_interval(runs, bootstrap=300, seed=7, permutations=100).to_dict()
    c = nil.fit_interval(runs, bootstrap=300, seed=8, permutations=100).to_dict()
    assert json.dumps(a, default=str) == json.dumps(b, default=str)
    assert a["budgets"][0]["band_lo_ci"] != c["budgets"][0]["band_lo_ci"]
    path = tmp_path / "runs.csv"
    _write_csv(path, runs)
    outs = []
    for threads in ("1", "2"):
        env = {**os.environ, "NIL_NUM_THREADS": threads,
               "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "python")}
        p = subprocess.run([sys.executable, "-m", "nil", "interval", str(path), "--bootstrap", "300", "--json"],
                           capture_output=True, text=True, env=env, check=True)
        outs.append(json.loads(p.stdout))
    assert outs[0] == outs[1]


def test_an_anomalous_shape_is_flagged_kept_and_reported_without():
    runs = simulate(seed=5, budgets=(1e6,), seeds=2, noise=0.001)
    k = np.flatnonzero(runs["depth"] == 4)
    runs["test_loss"][k] += 0.08  # both seeds of one shape far above a unimodal curve
    b = nil.fit_interval(runs, **FAST).budgets[0]
    s = b.smooth
    assert s.anomalous_ratio == pytest.approx(runs["ratio"][k[0]]) and abs(s.anomalous_z) > 4, s
    assert s.n_shapes == 9 and len(b.ratios) == 9  # nothing is deleted
    w = b.without_anomalous
    assert w is not None and w.n_shapes == 8 and w.anomalous_ratio is None
    assert w.status == "interior" and w.set_lo <= 0.02 <= w.set_hi
    clean = nil.fit_interval(simulate(seed=5, budgets=(1e6,), seeds=2, noise=0.001), **FAST).budgets[0]
    assert clean.smooth.anomalous_ratio is None and clean.without_anomalous is None


def test_single_seed_tables_get_sets_from_the_difference_noise_estimate():
    runs = simulate(seed=8, seeds=1, noise=0.004)
    fit = nil.fit_interval(runs, bootstrap=300, seed=1, metrics=[])
    for b in fit.budgets:
        assert b.smooth.sigma_source == "differences"
        assert b.smooth.set_hi > b.smooth.set_lo
    assert sum(b.smooth.set_lo <= 0.02 <= b.smooth.set_hi for b in fit.budgets) >= 3
    assert 0 < min(b.argmin_repeat for b in fit.budgets) and max(b.argmin_repeat for b in fit.budgets) <= 1
    assert all(b.band_lo_ci.lo < b.band_lo_ci.hi for b in fit.budgets)  # the wild bootstrap varies


def test_demo_150k_budget_keeps_its_left_shape_and_an_optimum_inside_the_data():
    # nil's own demo sweep at N = 150k (make demo; teacher–student MLP, two seeds per depth): the
    # depth-2 shape's loss is far above the rest. It used to be dropped as an outlier and R̂* then
    # placed left of every retained point. It must be kept, and the optimum lie between shapes.
    ratio = [0.005556, 0.011538, 0.018868, 0.027174, 0.036585, 0.057143]
    loss = [(0.156837, 0.157754), (0.105520, 0.106449), (0.105407, 0.107217), (0.111095, 0.111766),
            (0.115965, 0.116356), (0.122742, 0.123511)]
    runs = {"budget": [150_000] * 12, "ratio": [r for r in ratio for _ in range(2)],
            "test_loss": [v for pair in loss for v in pair]}
    b = nil.fit_interval(runs, bootstrap=200).budgets[0]
    s = b.smooth
    assert s.status == "interior" and s.anomalous_ratio is None
    assert ratio[1] <= s.ratio_star <= ratio[2]
    assert ratio[0] < s.set_lo <= s.ratio_star <= s.set_hi < ratio[4]
    assert ratio[0] < s.band_lo < s.band_hi < ratio[3]
    assert "R* = " in s.describe()


def _two_arm(t: np.ndarray, ts: float, left: float, right: float) -> np.ndarray:
    return np.where(t < ts, left * (t - ts) ** 2, right * (t - ts) ** 2)


@pytest.mark.parametrize("shapes,seeds", [(6, 2), (12, 1)])
def test_confidence_set_covers_an_asymmetric_truth(shapes, seeds):
    # Convex truth with a 4× steeper left arm and its optimum between two swept shapes; 60 tables
    # of 4 budgets. The nominal 95% set must cover the truth in ≥ 93% of budgets, and neither
    # the estimate nor the set may leave the sweep (benches/coverage_interval.py runs more designs).
    rng = np.random.default_rng(2026)
    u = np.linspace(np.log(0.004), np.log(0.4), shapes)
    ts = 0.37
    truth = math.exp(u[0] + ts * (u[-1] - u[0]))
    hits = total = 0
    for rep in range(60):
        cols: dict[str, list[float]] = {"budget": [], "ratio": [], "test_loss": []}
        for n in (1e6, 2e6, 4e6, 8e6):
            t = (u - u[0]) / (u[-1] - u[0])
            mean = 1.0 + 0.1 * _two_arm(t, ts, 4.0, 1.0) / _two_arm(np.array([0.0]), ts, 4.0, 1.0)[0]
            for ui, m in zip(u, mean):
                for _ in range(seeds):
                    cols["budget"].append(n)
                    cols["ratio"].append(math.exp(ui))
                    cols["test_loss"].append(m + 0.005 * rng.standard_normal())
        fit = nil.fit_interval(cols, metrics=[], **FAST)
        for b in fit.budgets:
            s = b.smooth
            assert b.ratios[0] * (1 - 1e-9) <= s.set_lo <= s.set_hi <= b.ratios[-1] * (1 + 1e-9)
            if s.status == "interior":
                assert b.ratios[0] <= s.ratio_star <= b.ratios[-1]
            hits += s.set_lo <= truth <= s.set_hi
            total += 1
    assert hits / total >= 0.93, f"coverage {hits}/{total}"


# ---------------------------------------------------------------- degenerate tables


def test_one_depth_per_budget_is_flagged_not_fitted():
    runs = {"budget": [1e6, 1e6, 2e6], "ratio": [0.02, 0.02, 0.03], "test_loss": [2.0, 2.1, 1.9]}
    fit = nil.fit_interval(runs, bootstrap=50)
    for b in fit.budgets:
        assert b.smooth.status == "no_fit" and math.isnan(b.smooth.ratio_star) and "4" in b.smooth.note
        assert b.span_lo == b.span_hi == b.argmin_ratio
    assert math.isnan(fit.stability.slope) and fit.joint.note is not None
    assert fit.interval.empty  # the two single shapes do not overlap


def test_a_budget_with_too_few_shapes_is_left_out_of_the_cross_budget_answers():
    """A budget still being swept (one finished shape) has no band and no best loss: it must not
    make the intersections 'empty' or add a frontier point that is not an optimum."""
    full = simulate(budgets=(3e5, 1e6, 3e6), seeds=1)
    partial = {k: np.append(v, v[-1]) for k, v in full.items()}
    partial["budget"][-1], partial["depth"][-1], partial["ratio"][-1] = 1e7, 1.0, 1 / 280
    partial["test_loss"][-1] = 1.9  # far above the frontier: the one depth-1 run of a big budget
    a, b = nil.fit_interval(full, **FAST), nil.fit_interval(partial, **FAST)
    assert len(b.budgets) == 4 and b.budgets[-1].smooth.status == "no_fit"
    assert not a.smooth_interval.empty and not b.smooth_interval.empty
    assert (b.smooth_interval.lo, b.smooth_interval.hi) == (a.smooth_interval.lo, a.smooth_interval.hi)
    assert (b.interval.lo, b.interval.hi) == (a.interval.lo, a.interval.hi)
    assert list(b.smooth_interval.budgets) == [3e5, 1e6, 3e6]
    assert b.frontier["budget"].n == 3 and b.frontier["budget"].b == a.frontier["budget"].b
    assert b.argmin_summary.max == a.argmin_summary.max
    assert b.smooth_interval.missing == [] and b.interval.missing == []
    # Asked for by name, the band-less budget makes nil's interval not estimable, never "empty".
    c = nil.fit_interval(partial, budgets=[3e5, 1e6, 3e6, 1e7], **FAST)
    assert c.smooth_interval.missing == [1e7] and not c.smooth_interval.empty
    assert math.isnan(c.smooth_interval.lo) and math.isnan(c.smooth_interval.hi)
    assert c.interval.missing == []  # a span band always exists (a point, for one shape)


def test_cli_says_not_estimable_for_a_named_budget_without_a_band(tmp_path):
    import pandas as pd

    full = simulate(budgets=(3e5, 1e6, 3e6), seeds=1)
    t = pd.DataFrame(full)
    t = pd.concat([t, t.iloc[[-1]].assign(budget=1e7, depth=1.0, ratio=1 / 280, test_loss=1.9)], ignore_index=True)
    t.to_csv(tmp_path / "runs.csv", index=False)
    r = subprocess.run([sys.executable, "-m", "nil", "interval", str(tmp_path / "runs.csv"), "--bootstrap", "0",
                        "--budgets", "300000,1000000,3000000,10000000"],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"})
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "not estimable: no fitted band at 10M" in out, out
    assert "not estimable: no fitted band at 10M" in out[out.index("In short:"):]
    assert "nil interval (∩ smooth bands), 4 budgets │ not estimable: no fitted band at 10M" in out, out


def test_ties_nan_losses_and_single_budget():
    runs = {"budget": [1e6] * 6, "ratio": [0.01, 0.02, 0.04, 0.08, 0.16, 0.32],
            "test_loss": [2.2, 2.0, 2.0, float("nan"), 2.3, 2.6]}
    fit = nil.fit_interval(runs, **FAST)
    b = fit.budgets[0]
    assert b.argmin_tie and b.argmin_ratio == 0.02
    assert fit.dropped_nonfinite == 1 and len(b.ratios) == 5
    assert any("no finite" in n for n in fit.notes)
    assert math.isnan(fit.stability.slope) and "not estimable" in fit.stability.note
    assert math.isnan(fit.frontier["budget"].a) and "3 needed" in fit.frontier["budget"].note
    assert fit.joint.note == "needs at least 3 budgets"


def test_boundary_optimum_is_flagged():
    r = np.geomspace(0.01, 0.3, 8)
    fit = nil.fit_interval({"budget": np.full(8, 1e6), "ratio": r, "test_loss": 2 + 0.05 * np.log(r / 0.005) ** 2}, **FAST)
    s = fit.budgets[0].smooth
    assert s.status == "censored_low" and math.isnan(s.ratio_star) and s.censored
    assert s.set_lo_at_bound and s.set_lo == pytest.approx(0.01) and s.set_hi < r[2]
    assert s.band_lo == pytest.approx(0.01) and s.band_lo_at_bound
    assert s.describe().startswith("R* ≤ ")


def test_clear_errors():
    good = {"budget": [1e6] * 3, "ratio": [0.1, 0.2, 0.3], "test_loss": [1.0, 0.9, 1.1]}
    with pytest.raises(NilValueError, match="no loss column.*test_ce"):
        nil.fit_interval({"budget": good["budget"], "ratio": good["ratio"]}, **FAST)
    with pytest.raises(NilValueError, match="ratio column 'alpha' not found"):
        nil.fit_interval(good, ratio="alpha", **FAST)
    with pytest.raises(NilValueError, match="budget 2000000 is not in the runs table"):
        nil.fit_interval(good, budgets=[2e6], **FAST)
    with pytest.raises(NilValueError, match="budgets is empty"):
        nil.fit_interval(good, budgets=[], **FAST)
    with pytest.raises(NilValueError, match="no run has a finite loss"):
        nil.fit_interval({**good, "test_loss": [math.nan] * 3}, **FAST)
    with pytest.raises(NilValueError, match="row 1: ratio must be a finite positive"):
        nil.fit_interval({**good, "ratio": [0.1, -0.2, 0.3]}, **FAST)
    with pytest.raises(FileNotFoundError):
        nil.fit_interval("/nonexistent/runs.csv", **FAST)


# ---------------------------------------------------------------- containers


def _write_csv(path: Path, runs: dict[str, np.ndarray]) -> None:
    import csv

    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(runs))
        for row in zip(*runs.values()):
            w.writerow([repr(float(v)) for v in row])


def test_every_container_gives_the_same_answer(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    runs = simulate(seed=6, budgets=(1e6, 2e6), depths=(1, 2, 4, 8, 16), seeds=2)
    df = pd.DataFrame(runs)
    _write_csv(tmp_path / "r.csv", runs)
    pq.write_table(pa.Table.from_pandas(df), tmp_path / "r.parquet")
    (tmp_path / "sweep").mkdir()
    pq.write_table(pa.Table.from_pandas(df), tmp_path / "sweep" / "runs.parquet")
    inputs = [runs, df, pa.Table.from_pandas(df), tmp_path / "r.csv", str(tmp_path / "r.parquet"), tmp_path / "sweep"]
    try:
        import polars as pl

        inputs.append(pl.from_pandas(df))
    except ImportError:
        pass
    dicts = [nil.fit_interval(x, bootstrap=100, permutations=50).to_dict() for x in inputs]
    for d in dicts[1:]:
        d.pop("source")
        ref = dict(dicts[0])
        ref.pop("source")
        assert json.dumps(d, default=str) == json.dumps(ref, default=str)


# ---------------------------------------------------------------- CLI on a reference-format CSV


def _reference_csv(path: Path) -> None:
    """A table in the reference's merged NTP format (one seed per shape, empty test_mse)."""
    rng = np.random.default_rng(9)
    lines = ["target_n,depth,d_model,depth_over_d_model,train_ce,test_ce,aofe_ratio,wtw_aofe_ratio,test_mse"]
    for n in (1_000_000, 1_300_000, 2_000_000, 3_000_000):
        for d in (1, 2, 3, 4, 6, 8, 12, 16, 24):
            w = int(math.sqrt(n / (12 * d)) // 4 * 4)
            l = 1.2 + 30 * n**-0.25 + 0.04 * (math.log(d / w) - math.log(0.02)) ** 2 + 0.003 * rng.standard_normal()
            lines.append(f"{n},{d},{w},{d / w:.4f},{l + 0.1:.6f},{l:.6f},{0.3 + 0.1 * rng.random():.5f},"
                         f"{0.1 + 0.5 * d / w:.5f},")
    path.write_text("\n".join(lines) + "\n")


def test_cli_on_reference_csv(run_cli, tmp_path):
    path = tmp_path / "ntp_sweep_merged_by_budget_and_shape.csv"
    _reference_csv(path)
    p = run_cli("interval", str(path), "--budgets", "1e6,1.3e6,2e6,3e6", "--frontier-x", "wtw_aofe_ratio",
                "--bootstrap", "200", "--permutations", "200", "--json", "--plot", str(tmp_path / "figs"), check=True)
    out = json.loads(p.stdout)
    assert out["columns"] == {"budget": "target_n", "ratio": "depth/d_model", "loss": "test_ce",
                              "metrics": ["aofe_ratio", "wtw_aofe_ratio"]}
    assert set(out["interval"]) >= {"lo", "hi"} and out["interval"]["lo"] <= out["interval"]["hi"]
    assert set(out["frontier"]) == {"target_n", "wtw_aofe_ratio"}
    assert set(out["frontier"]["target_n"]) >= {"a", "b", "r2"}
    # the reference's numbers from the file itself: argmin and the span band per budget
    import pandas as pd

    df = pd.read_csv(path)
    for b in out["budgets"]:
        g = df[df.target_n == b["budget"]].sort_values("depth")
        best = g.test_ce.min()
        assert b["argmin_ratio"] == pytest.approx((g.depth / g.d_model)[g.test_ce.idxmin()])
        inside = g[g.test_ce <= 1.02 * best]
        assert b["span_lo"] == pytest.approx((inside.depth / inside.d_model).min())
        assert b["span_hi"] == pytest.approx((inside.depth / inside.d_model).max())
    for name in ("loss_vs_ratio.png", "ratio_star_vs_budget.png", "frontier.png", "metric_vs_loss.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 10_000
    table = run_cli("interval", str(path), "--bootstrap", "100", "--permutations", "100", check=True).stdout
    assert "auto-detected" in table and "span band" in table and "R̂*" in table and "95% set" in table
    assert all(len(line) <= 100 for line in table.splitlines()), "the table must fit 100 columns"
    for b in out["budgets"]:  # one seed per shape: the set comes from the difference noise estimate
        s = b["smooth"]
        assert s["sigma_source"] == "differences"
        if s["status"] == "interior":
            assert s["set_lo"] <= s["ratio_star"] <= s["set_hi"]
    csv_out = run_cli("interval", str(path), "--bootstrap", "0", "--permutations", "0", "--csv", check=True).stdout
    header = csv_out.splitlines()[0].split(",")
    assert header[:2] == ["budget", "shapes"] and "set_lo" in header and len(csv_out.splitlines()) == 5


def test_cli_error_names_the_file_and_columns(run_cli, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("target_n,depth,d_model\n1000000,2,64\n")
    p = run_cli("interval", str(path))
    assert p.returncode == 1
    assert str(path) in p.stderr and "no loss column" in p.stderr


def test_cli_plot_onto_a_file_fails_before_the_fit(run_cli, tmp_path):
    from cli_helpers import one_line_error

    target = tmp_path / "plots"
    target.write_text("not a directory")
    bad = tmp_path / "bad.csv"  # the fit of this table would fail: the plot check must come first
    bad.write_text("target_n,depth,d_model\n1000000,2,64\n")
    line = one_line_error(run_cli("interval", str(bad), "--plot", str(target)), str(target), "directory", "file")
    assert "no loss column" not in line
    assert target.read_text() == "not a directory"
    inner = target / "sub"  # a directory below a file
    one_line_error(run_cli("interval", str(bad), "--plot", str(inner)), str(target), "is a file")


def test_joint_law_matches_scipy_least_squares():
    import scipy.optimize

    runs = simulate(seed=12, noise=0.01)
    fit = nil.fit_interval(runs, metrics=[], **FAST)
    j = fit.joint
    assert j.rejected == 0 and j.converged
    n, u, y = [], [], []
    for b in fit.budgets:
        n += [b.budget] * len(b.ratios)
        u += list(np.log(b.ratios))
        y += b.mean_loss
    n, u, y = map(np.asarray, (n, u, y))
    ln_ref = np.log(n).mean()

    def resid(t):
        return t[0] + t[1] * np.exp(-t[2] * (np.log(n) - ln_ref)) + t[3] * (u - t[4]) ** 2 - y

    best = min((scipy.optimize.least_squares(resid, [y.min(), 0.1, beta, 0.01, us], method="lm", xtol=1e-14,
                                             ftol=1e-14) for beta in (0.1, 0.5, 1.0) for us in (-5.0, -4.0, -3.0)),
               key=lambda r: r.cost)
    l_inf, a_scaled, beta, b, us = best.x
    assert j.l_inf == pytest.approx(l_inf, rel=1e-5)
    assert j.beta == pytest.approx(beta, rel=1e-5)
    assert j.a == pytest.approx(a_scaled * math.exp(beta * ln_ref), rel=1e-4)
    assert j.b == pytest.approx(b, rel=1e-5)
    assert j.ratio_star == pytest.approx(math.exp(us), rel=1e-5)
    assert j.rms == pytest.approx(math.sqrt(2 * best.cost / len(y)), rel=1e-6)

"""Benchmark: stratified bootstrap of the smooth interval fits, nil's Rust core against numpy.

Table: 12 budgets × 12 depths × 3 seeds (432 runs) simulated from a known L(N, R). Each bootstrap
replicate resamples the seeds of every shape, refits every budget's weighted quadratic in ln R
(with the one-outlier check), derives R̂* and the smooth ε-band, the span band and argmin, the
cross-budget intervals, the stability slope and the frontier power law — the quantities
``nil.fit_interval`` bootstraps. Two numpy baselines compute the same replicates:

- ``numpy-loop``: replicate by replicate, budget by budget (``np.linalg.lstsq``), as analysis
  scripts are usually written;
- ``numpy-batched``: every replicate at once, batched 3×3 normal equations (the fastest numpy form
  we could write).

Run:  nice .venv/bin/python benches/bench_interval.py [--replicates 10000] [--loop-replicates 10000]
The numpy point estimate is checked against nil's before timing.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import nil  # noqa: E402
from nil import _core  # noqa: E402

EPS, FLOOR, OUTLIER = 0.02, 0.5, 4.0


def make_table(seed: int = 0) -> dict[str, np.ndarray]:
    """12 budgets × 12 depths × 3 seeds from L = 1.5 + 30·N^-0.25 + 0.05·(ln R − ln 0.02)² + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in np.geomspace(3e5, 1e7, 12):
        for d in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24):
            w = max(8, round(math.sqrt(n / (12 * d))))
            for _ in range(3):
                r = d / w
                rows.append((n, r, 1.5 + 30 * n**-0.25 + 0.05 * math.log(r / 0.02) ** 2 + 0.004 * rng.standard_normal()))
    a = np.array(rows)
    return {k: np.ascontiguousarray(a[:, i]) for i, k in enumerate(("budget", "ratio", "test_loss"))}


def to_cube(t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(budgets, u[b, s], losses[b, s, seed]) for a complete table."""
    budgets = np.unique(t["budget"])
    ratios = [np.unique(t["ratio"][t["budget"] == n]) for n in budgets]
    u = np.log(np.array(ratios))
    cube = np.array([[t["test_loss"][(t["budget"] == n) & (t["ratio"] == r)] for r in rs] for n, rs in zip(budgets, ratios)])
    return budgets, u, cube


# ------------------------------------------------------------------ numpy: one budget at a time


def weights_np(var: np.ndarray, k: int) -> np.ndarray:
    se = np.sqrt(var / k)
    ref = np.median(se, axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        w = 1.0 / np.maximum(se, FLOOR * ref) ** 2
    return np.where(ref > 0, w, 1.0)


def smooth_fit_np(u: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """(R̂*, band lo, band hi) of one budget: WLS quadratic with the one-outlier refit."""
    c = 0.5 * (u[0] + u[-1])
    v = u - c
    X = np.stack([np.ones_like(v), v, v * v], axis=1)
    sw = np.sqrt(w)
    keep = np.ones(len(u), bool)
    d = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
    n = len(u)
    if n >= 5:
        e = y - X @ d
        s2 = (w * e * e).sum() / (n - 3)
        A = (X * w[:, None]).T @ X
        h = w * np.einsum("ij,jk,ik->i", X, np.linalg.inv(A), X)
        r2 = w * e * e / (s2 * (1 - h))
        t = np.sqrt(np.where(n - 3 - r2 > 0, r2 * (n - 4) / np.maximum(n - 3 - r2, 1e-300), np.inf))
        i = int(np.argmax(t))
        if s2 > 0 and t[i] > OUTLIER:
            keep[i] = False
            d = np.linalg.lstsq(X[keep] * sw[keep, None], y[keep] * sw[keep], rcond=None)[0]
    vlo, vhi = v[0], v[-1]
    if d[2] > 0 and vlo <= -d[1] / (2 * d[2]) <= vhi:
        vs = -d[1] / (2 * d[2])
        lmin = d[0] + d[1] * vs + d[2] * vs * vs
        half = math.sqrt(EPS * abs(lmin) / d[2])
        return math.exp(vs + c), math.exp(max(vs - half, vlo) + c), math.exp(min(vs + half, vhi) + c)
    q = np.polynomial.Polynomial(d)
    m = vlo if (d[2] > 0 and -d[1] / (2 * d[2]) < vlo) or (d[2] <= 0 and q(vlo) <= q(vhi)) else vhi
    level = q(m) + EPS * abs(q(m))
    roots = np.real((q - level).roots())
    lo = max([vlo, *roots[roots < m]])
    hi = min([vhi, *roots[roots > m]])
    return math.nan, math.exp(lo + c), math.exp(hi + c)


def cross_np(budgets: np.ndarray, u: np.ndarray, cube: np.ndarray) -> np.ndarray:
    """One replicate's numbers from seed losses cube[b, s, k]."""
    means = cube.mean(axis=2)
    w = weights_np(cube.var(axis=2, ddof=1), cube.shape[2])
    out = []
    spans, smooth, stars = [], [], []
    for b in range(len(budgets)):
        star, blo, bhi = smooth_fit_np(u[b], means[b], w[b])
        am = int(np.argmin(means[b]))
        inside = np.flatnonzero(means[b] <= (1 + EPS) * means[b, am])
        spans.append((math.exp(u[b, inside[0]]), math.exp(u[b, inside[-1]])))
        smooth.append((blo, bhi))
        stars.append(star)
        out += [star, blo, bhi, am]
    spans, smooth = np.array(spans), np.array(smooth)
    ok = np.isfinite(stars)
    slope = np.polyfit(np.log(budgets[ok]), np.log(np.array(stars)[ok]), 1)[0] if ok.sum() >= 2 else math.nan
    b_front = np.polyfit(np.log(budgets), np.log(means.min(axis=1)), 1)[0]
    return np.array(out + [spans[:, 0].max(), spans[:, 1].min(), smooth[:, 0].max(), smooth[:, 1].min(), slope, b_front])


def bootstrap_loop(budgets, u, cube, replicates: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    nb, ns, k = cube.shape
    rows = []
    for _ in range(replicates):
        idx = rng.integers(0, k, size=cube.shape)
        rows.append(cross_np(budgets, u, np.take_along_axis(cube, idx, axis=2)))
    return np.array(rows)


# ------------------------------------------------------------------ numpy: all replicates at once


def bootstrap_batched(budgets, u, cube, replicates: int, seed: int) -> np.ndarray:
    """Interior-vertex path only (no outlier refit), all replicates in batched array operations."""
    rng = np.random.default_rng(seed)
    nb, ns, k = cube.shape
    idx = rng.integers(0, k, size=(replicates, nb, ns, k))
    res = np.take_along_axis(np.broadcast_to(cube, idx.shape), idx, axis=3)
    means = res.mean(axis=3)
    w = weights_np(res.var(axis=3, ddof=1), k)
    c = 0.5 * (u[:, :1] + u[:, -1:])
    v = u - c
    X = np.stack([np.ones_like(v), v, v * v], axis=-1)  # nb, ns, 3
    A = np.einsum("rbs,bsi,bsj->rbij", w, X, X)
    rhs = np.einsum("rbs,bsi,rbs->rbi", w, X, means)
    d = np.linalg.solve(A, rhs[..., None])[..., 0]
    vs = -d[..., 1] / (2 * d[..., 2])
    lmin = d[..., 0] + d[..., 1] * vs + d[..., 2] * vs * vs
    half = np.sqrt(EPS * np.abs(lmin) / d[..., 2])
    inside = (d[..., 2] > 0) & (vs >= v[:, 0]) & (vs <= v[:, -1])
    star = np.where(inside, np.exp(vs + c[:, 0]), np.nan)
    blo = np.exp(np.maximum(vs - half, v[:, 0]) + c[:, 0])
    bhi = np.exp(np.minimum(vs + half, v[:, -1]) + c[:, 0])
    x = np.log(budgets) - np.log(budgets).mean()
    slope = (np.log(star) * x).sum(axis=1) / (x * x).sum()
    return np.stack([star.mean(axis=1), blo.max(axis=1), bhi.min(axis=1), slope], axis=1)


def timed(f, *a, **k):
    t = time.perf_counter()
    out = f(*a, **k)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=10_000)
    ap.add_argument("--loop-replicates", type=int, default=10_000, help="replicates for the numpy loop baseline")
    ap.add_argument("--repeat", type=int, default=3, help="timings of nil taken (best reported)")
    args = ap.parse_args()
    t = make_table()
    budgets, u, cube = to_cube(t)

    # correctness: the numpy point estimate equals nil's
    fit = nil.fit_interval(t, bootstrap=0, permutations=0, metrics=[])
    ref = cross_np(budgets, u, cube)
    ours = np.array(sum(([b.smooth.ratio_star, b.smooth.band_lo, b.smooth.band_hi] for b in fit.budgets), []))
    theirs = ref[: 4 * len(budgets)].reshape(-1, 4)[:, :3].ravel()
    assert np.allclose(ours, theirs, rtol=1e-9), (ours, theirs)
    assert math.isclose(fit.smooth_interval.lo, ref[-4], rel_tol=1e-9)

    call = lambda: _core.fit_interval(  # noqa: E731
        t["budget"], t["ratio"], t["test_loss"], [], eps=EPS, bootstrap=args.replicates, seed=0, ci=0.95,
        interval_budgets=None, frontier_x=[], permutations=0, se_floor=FLOOR, outlier_threshold=OUTLIER, window=3)
    call()
    nil_s = min(timed(call)[0] for _ in range(args.repeat))
    batched_s, _ = timed(bootstrap_batched, budgets, u, cube, args.replicates, 0)
    loop_s, _ = timed(bootstrap_loop, budgets, u, cube, args.loop_replicates, 0)
    loop_full = loop_s * args.replicates / args.loop_replicates
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, nil threads {_core.num_threads()}")
    print(f"table: {len(budgets)} budgets × {cube.shape[1]} depths × {cube.shape[2]} seeds; {args.replicates} replicates")
    print(f"nil (Rust core, full fit_interval)      {nil_s:8.3f} s")
    print(f"numpy batched (interior path, no outlier) {batched_s:6.3f} s   ratio {batched_s / nil_s:6.1f}×")
    print(f"numpy loop ({args.loop_replicates} replicates{'' if args.loop_replicates == args.replicates else ', scaled'})"
          f"      {loop_full:8.3f} s   ratio {loop_full / nil_s:6.1f}×")


if __name__ == "__main__":
    main()

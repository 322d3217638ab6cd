"""Benchmark: nil's smooth interval estimator (Rust core) against the same profile in scipy.

Table: 12 budgets × 12 depths × 3 seeds (432 runs) simulated from an asymmetric convex truth.
Per budget the estimator fits the unimodal spline at every mode location of the profile grid
(16 per gap between swept ratios: 177 least-squares problems under sign constraints), then the
confidence set, censoring, band and the joint stability profile follow; the bootstrap redoes the
band fit on every replicate. The baseline is the point-estimate profile written with scipy
(`scipy.optimize.lsq_linear`, method "bvls", one solve per grid point, least squares), as a user
would write it; its profile is checked against nil's before timing (nil with `huber=False`).

Run:  nice .venv/bin/python benches/bench_interval.py [--replicates 1000] [--repeats 3]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "python"), str(ROOT / "tests")]

import nil  # noqa: E402
from test_interval import reference_profile_q  # noqa: E402


def make_table(seed: int = 0) -> dict[str, np.ndarray]:
    """12 budgets × 12 depths × 3 seeds; the loss rises 4× faster left of R* = 0.02 than right."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in np.geomspace(3e5, 1e7, 12):
        for d in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24):
            w = max(8, round(math.sqrt(n / (12 * d))))
            for _ in range(3):
                r = d / w
                x = math.log(r / 0.02)
                arm = 0.12 if x < 0 else 0.03
                rows.append((n, r, 1.5 + 30 * n**-0.25 + arm * x * x + 0.004 * rng.standard_normal()))
    a = np.array(rows)
    return {k: np.ascontiguousarray(a[:, i]) for i, k in enumerate(("budget", "ratio", "test_loss"))}


def scipy_profiles(t: dict[str, np.ndarray], grids: list[np.ndarray]) -> list[np.ndarray]:
    """Half residual sums of squares of the constrained fits at every grid point, per budget."""
    out = []
    for n, grid in zip(np.unique(t["budget"]), grids):
        sel = t["budget"] == n
        ratios = np.unique(t["ratio"][sel])
        losses = [t["test_loss"][sel & (t["ratio"] == r)] for r in ratios]
        means = np.array([l.mean() for l in losses])
        scale = means.max() - means.min()
        y = [(l - means.mean()) / scale for l in losses]
        u = np.log(ratios)
        tt = (u - u[0]) / (u[-1] - u[0])
        out.append(np.array([reference_profile_q(tt, y, g) for g in grid]))
    return out


def best_of(repeats: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    t = make_table()
    fit = nil.fit_interval(t, bootstrap=0, permutations=0, metrics=[], huber=False)
    grids = []
    for b in fit.budgets:
        u = np.log(b.ratios)
        grids.append((np.log(b.smooth.profile_ratio) - u[0]) / (u[-1] - u[0]))
    ref = scipy_profiles(t, grids)
    for b, q in zip(fit.budgets, ref):  # same profile statistic, up to the tie-breaking penalty
        sigma = b.smooth.sigma / (max(b.mean_loss) - min(b.mean_loss))
        lam = 2 * (q - q.min()) / sigma**2
        ours = np.asarray(b.smooth.profile_stat)
        assert np.allclose(ours - ours.min(), lam - lam.min(), atol=1e-3 + 1e-5 * lam.max()), b.budget
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"nil threads {os.environ.get('NIL_NUM_THREADS', 'all')}; table 12 budgets × 12 depths × 3 seeds")
    nil_ls = best_of(args.repeats, lambda: nil.fit_interval(t, bootstrap=0, permutations=0, metrics=[], huber=False))
    nil_hub = best_of(args.repeats, lambda: nil.fit_interval(t, bootstrap=0, permutations=0, metrics=[]))
    nil_boot = best_of(args.repeats, lambda: nil.fit_interval(t, bootstrap=args.replicates, permutations=0, metrics=[]))
    sp = best_of(1, lambda: scipy_profiles(t, grids))
    print(f"nil point estimates, least squares     {nil_ls:8.3f} s")
    print(f"nil point estimates, Huber (default)   {nil_hub:8.3f} s")
    print(f"nil with {args.replicates} bootstrap replicates {nil_boot:8.3f} s")
    print(f"scipy profile (least squares, bvls)    {sp:8.3f} s   ratio {sp / nil_ls:6.1f}× (vs nil least squares)")


if __name__ == "__main__":
    main()

"""Empirical coverage of nil's bootstrap interval for R̂* on simulated sweeps with a known optimum.

Tables from tests/test_interval.py's ``simulate`` (4 budgets × 9 depths, R* = 0.02, noise 0.004);
prints the fraction of budgets whose 95% interval holds R*.

Run:  nice .venv/bin/python benches/coverage_interval.py --seeds 3 [--tables 25]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "python"), str(ROOT / "tests")]

import nil  # noqa: E402
from test_interval import simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds per shape")
    ap.add_argument("--tables", type=int, default=25)
    ap.add_argument("--replicates", type=int, default=1000)
    args = ap.parse_args()
    hits = total = 0
    for s in range(args.tables):
        fit = nil.fit_interval(simulate(seed=100 + s, seeds=args.seeds), bootstrap=args.replicates, seed=s,
                               metrics=[], permutations=0)
        hits += sum(b.ratio_star_ci.lo <= 0.02 <= b.ratio_star_ci.hi for b in fit.budgets)
        total += len(fit.budgets)
    print(f"coverage of the 95% R̂* interval, {args.seeds} seed(s) per shape: {hits / total:.2f} ({total} budgets)")


if __name__ == "__main__":
    main()

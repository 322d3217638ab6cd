"""``nil demo``: the embedded end-to-end demonstration."""

from __future__ import annotations

import argparse
import time
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Adds the ``demo`` verb."""
    p = sub.add_parser(
        "demo",
        help="run the embedded demonstration and print its tables",
        description="Streams generated gradient rows of known structure through nil's Rust core and "
        "prints their interaction statistics beside null baselines.",
    )
    p.add_argument("--rows", type=int, default=20_000, help="rows per synthetic layer (default 20000)")
    p.add_argument("--dim", type=int, default=256, help="row dimension (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs the demonstration."""
    from ..demo import run_core_demo
    from ._table import print_json, print_table

    t0 = time.perf_counter()
    out = run_core_demo(n=args.rows, d=args.dim, seed=args.seed)
    if args.json:
        print_json(out)
        return 0
    print_table(
        "Per-layer AGOP interaction statistics (synthetic gradient rows)",
        ["layer", "dtype", "rows", "aofe_ratio", "null_rotation", "wmc2", "participation_ratio", "effective_rank", "top_share"],
        out["layers"],
    )
    print_table("Superposition of a random embedding vs its Gaussian null", ["statistic", "observed", "gaussian null"], out["superposition"])
    print_table("NFA exponent fit on WᵀW = 3·AGOP^0.75", list(out["nfa"]), [out["nfa"]])
    print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0

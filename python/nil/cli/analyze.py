"""``nil analyze``: per-layer interaction statistics of a gradient capture (or a partial AGOP file)."""

from __future__ import annotations

import argparse
import time
from typing import Any

__all__ = ["register"]

TABLE_COLUMNS = [
    "layer", "rows", "dim", "nonfinite", "aofe_ratio", "null_rotation", "weighted_mean_cos2",
    "participation_ratio", "effective_rank", "top_share",
]


def register(sub: Any) -> None:
    """Adds the ``analyze`` verb."""
    p = sub.add_parser(
        "analyze",
        help="verify a gradient capture and print per-layer interaction statistics",
        description="Verifies every shard of a capture directory (written by nil.ShardWriter or "
        "`nil capture`) against its manifest's blake3 checksums while reducing it, in one parallel "
        "pass with bounded memory, into one AGOP matrix per layer, then prints each layer's "
        "interaction statistics (AOFE ratio, weighted mean cos², participation ratio, ...). "
        "PATH may also be a partial AGOP file written by --save-agop or `nil merge`. "
        "Nothing in the capture is modified.",
    )
    p.add_argument("path", metavar="PATH", help="capture directory (manifest.json + shards/) or partial AGOP file")
    p.add_argument("--layers", nargs="+", metavar="NAME", help="only these layers (default: all); commas also separate")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help='print {"layers": [{"layer": ..., "aofe_ratio": ..., ...}]}')
    fmt.add_argument("--csv", action="store_true", help="print one CSV row per layer with every statistic")
    p.add_argument(
        "--nonfinite", choices=["raise", "skip"], default="raise",
        help="rows holding NaN/Inf: 'raise' stops with the shard, layer and row (default); 'skip' leaves them out and counts them",
    )
    p.add_argument("--save-agop", metavar="FILE", help="also write the per-layer accumulators to FILE (mergeable with `nil merge`)")
    p.add_argument(
        "--convention", choices=["exact", "reference-sweep", "reference-scan"], default="exact",
        help="epsilon convention of the statistics (default: exact)",
    )
    p.add_argument(
        "--precision", choices=["fast", "exact"], default="fast",
        help="fast: f32 products over blocks of 512 rows, f64 sums (~1e-6 relative error; default); exact: f64 products",
    )
    p.add_argument(
        "--device", default="cpu", metavar="DEVICE",
        help="cpu (default): the Rust core reduces; cuda (or cuda:N): rows stream through pinned buffers "
        "into a GPU Gram, float32 block products and float64 sums (needs torch with CUDA)",
    )
    p.add_argument("--all-metrics", action="store_true",
                   help="also show columns that say nothing here (no row left out: nonfinite all 0; all nan)")
    p.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    p.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="reduce groups of shards as Ray tasks on the cluster at ADDRESS ('local', the default "
        "when no address is given, starts one here); the capture must be on a filesystem every node sees",
    )
    p.set_defaults(func=run)


def _informative(columns: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """The columns without the ones that say nothing: a count that is 0 in every row (nonfinite),
    a statistic that is NaN in every row."""
    import math

    def says_something(c: str) -> bool:
        vals = [r.get(c) for r in rows]
        if c == "nonfinite":
            return any(v for v in vals)
        return not vals or not all(isinstance(v, float) and math.isnan(v) for v in vals)

    return [c for c in columns if c in ("layer", "rows", "dim") or says_something(c)]


def run(args: argparse.Namespace) -> int:
    """Runs the analysis and prints it."""
    from ..shards import analyze
    from ._table import print_csv, print_json, print_table, say

    layers = None
    if args.layers:
        layers = [x for item in args.layers for x in item.split(",") if x]
    t0 = time.perf_counter()
    records = analyze(
        args.path, layers, args.nonfinite, convention=args.convention, precision=args.precision,
        save_agop=args.save_agop,
        progress=not (args.no_progress or args.json or args.csv),
        ray=args.ray, device=args.device,
    )
    rows = [r.to_dict() for r in records]
    if args.json:
        print_json({"path": args.path, "layers": rows})
    elif args.csv:
        print_csv(list(rows[0]) if rows else TABLE_COLUMNS, rows)
    else:
        shown = TABLE_COLUMNS if args.all_metrics else _informative(TABLE_COLUMNS, rows)
        print_table(f"Per-layer interaction statistics of {args.path}", shown, rows)
        if shown != TABLE_COLUMNS:
            say(f"(hidden: {', '.join(c for c in TABLE_COLUMNS if c not in shown)}: all 0 or nan; --all-metrics shows them)")
        say(f"{sum(r['rows'] for r in rows)} rows in {len(rows)} layers, {time.perf_counter() - t0:.2f} s"
              + (f"; accumulators saved to {args.save_agop}" if args.save_agop else ""))
    return 0

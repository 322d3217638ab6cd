"""``nil merge``: exact merge of partial AGOP results from several captures or machines."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Adds the ``merge`` verb."""
    p = sub.add_parser(
        "merge",
        help="merge capture directories and partial AGOP files exactly into one partial file",
        description="Adds the per-layer AGOP sums and row counts of every PATH (capture directories "
        "are verified and reduced first; files are partial AGOP files from `nil analyze --save-agop` "
        "or earlier merges) and writes them to OUT atomically. Inputs must hold the same layers and "
        "dims; a shard counted by two inputs is refused. OUT may not lie inside an input capture (its "
        "manifest, lock or shards/), even with --force. Ctrl-C stops the merge within a block. "
        "Analyse the result with `nil analyze OUT`.",
    )
    p.add_argument("out", metavar="OUT", help="partial AGOP file to write (safetensors)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="capture directories or partial AGOP files")
    p.add_argument("--nonfinite", choices=["raise", "skip"], default="raise",
                   help="rows holding NaN/Inf in capture directories: raise (default) or skip and count")
    p.add_argument("--precision", choices=["fast", "exact"], default="fast",
                   help="products when reducing capture directories: fast (f32 blocks, default) or exact (f64)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--json", action="store_true", help="print the merged layers as JSON")
    p.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Merges and prints what was written."""
    from ..shards import merge
    from ._table import print_json, print_table

    accs = merge(args.out, *args.paths, nonfinite=args.nonfinite, precision=args.precision, overwrite=args.force,
                 progress=not (args.no_progress or args.json))
    rows = [{"layer": n, "rows": a.count, "dim": a.dim, "nonfinite": a.nonfinite} for n, a in accs.items()]
    if args.json:
        print_json({"out": args.out, "layers": rows})
    else:
        print_table(f"Merged {len(args.paths)} input(s) into {args.out}", ["layer", "rows", "dim", "nonfinite"], rows)
    return 0

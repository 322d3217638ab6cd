"""``nil verify``: checks a gradient capture against its manifest and lists every problem."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Adds the ``verify`` verb."""
    p = sub.add_parser(
        "verify",
        help="check every shard of a capture (size, blake3, header, layers); exit 1 on any problem",
        description="Checks a capture directory against its manifest.json: every shard's size and "
        "blake3 checksum, its safetensors header, and each layer's tensor (present, dtype, rows x dim). "
        "Lists every problem found and exits with status 1 if there is any, 0 otherwise. "
        "Never modifies the capture.",
    )
    p.add_argument("path", metavar="PATH", help="capture directory (manifest.json + shards/)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Verifies and reports; the exit status says whether the capture is sound."""
    from ..shards import verify
    from ._table import print_json, say

    report = verify(args.path)
    if args.json:
        print_json(report.to_dict())
        return 0 if report.ok else 1
    for note in report.notes:
        say(f"note: {note}")
    if report.ok:
        rows = ", ".join(f"{n}: {r}" for n, r in report.rows.items())
        say(f"{args.path}: OK — {report.shards} shards, {report.bytes} bytes; rows {rows}")
        return 0
    for p in report.problems:
        where = p.file + (f" [layer {p.layer}]" if p.layer else "")
        say(f"PROBLEM {where} ({p.kind}): {p.message}")
    print(f"{args.path}: {len(report.problems)} problem(s) found", file=sys.stderr)
    return 1

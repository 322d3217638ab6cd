"""``nil llms``: the sourced table of small dense open LLMs and the MMLU-Pro vs interval comparison."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

from ..errors import FormatError, NilValueError

__all__ = ["register"]

EPILOG = """\
examples:
  nil llms --lo 0.01 --hi 0.02                  # shapes, OLL raw scores of base models, comparison
  nil llms --interval interval.json --protocol tiger-5shot-cot --variant instruct
  nil llms --protocol qwen-base-5shot --plot mmlu_pro.png --json > llms.json
  nil llms --list-protocols                     # what each protocol key means, with counts

R_D/W = layers / hidden size. The distance to the interval is log10(lo/R) below it, log10(R/hi)
above it and 0 inside. Scores are compared only within one protocol and one variant (base or
instruct); models scored at chance are listed but left out unless --include-chance. Every number
carries a source key; the keys are resolved at the end of the output (docs/llms.md has the rest).
"""


def register(sub: Any) -> None:
    """Adds the ``llms`` verb."""
    from ..llms import protocols

    p = sub.add_parser(
        "llms",
        help="shapes and MMLU-Pro of small open LLMs against an R_D/W interval",
        description="Prints R_D/W = layers/hidden of every registered small dense open LLM, its "
        "position relative to an interval, and, within one MMLU-Pro protocol, the correlation of "
        "the score with the distance to the interval: raw, controlling for log parameter count, "
        "and within families.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--interval", metavar="FILE", help="JSON written by `nil interval --json` ({\"interval\": {\"lo\", \"hi\"}})")
    src.add_argument("--lo", type=float, help="lower bound of the R_D/W interval (with --hi)")
    p.add_argument("--hi", type=float, help="upper bound of the R_D/W interval (with --lo)")
    p.add_argument("--smooth", action="store_true",
                   help="with --interval: use nil's smooth-fit interval (\"smooth_interval\") instead of the "
                   "reference's (used anyway, with a note, when the reference's is empty)")
    p.add_argument("--protocol", default="oll-raw", choices=sorted(protocols()), metavar="P",
                   help="MMLU-Pro protocol to compare within (default oll-raw; see --list-protocols)")
    p.add_argument("--variant", default="base", choices=["base", "instruct"], help="base or instruct checkpoints (default base)")
    p.add_argument("--include-chance", action="store_true", help="keep models scored at chance in the correlations")
    p.add_argument("--permutations", type=int, default=10_000, help="Monte Carlo permutations for p-values (default 10000; exact for n <= 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutations (default 0)")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of MMLU-Pro vs R_D/W with the interval shaded")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of tables")
    out.add_argument("--csv", action="store_true", help="print the compared checkpoints (one protocol and variant) as CSV")
    p.add_argument("--list-protocols", action="store_true", help="list the protocol keys with their model counts and exit")
    p.set_defaults(func=run, _parser=p)


def _interval(args: argparse.Namespace) -> Any:
    from ..llms import Interval, read_interval

    if args.interval:
        if args.hi is not None:
            args._parser.error("--hi goes with --lo, not with --interval")
        if args.smooth:
            return read_interval(args.interval, "smooth_interval")
        try:
            return read_interval(args.interval, "interval")
        except FormatError:
            if not _empty(args.interval, "interval"):
                raise
            try:
                iv = read_interval(args.interval, "smooth_interval")
            except FormatError:
                raise NilValueError(
                    f"{args.interval}: the reference interval is empty (the per-budget bands do not intersect) "
                    "and there is no non-empty smooth interval either; give one with --lo X --hi Y"
                ) from None
            print(f"nil llms: the reference interval in {args.interval} is empty (its per-budget bands do not "
                  "intersect); using nil's smooth interval instead, as --smooth does", file=sys.stderr)
            return iv
    if args.smooth:
        args._parser.error("--smooth goes with --interval")
    if (args.lo is None) != (args.hi is None):
        args._parser.error("--lo and --hi go together")
    if args.lo is not None:
        return Interval(args.lo, args.hi, source="--lo/--hi")
    return None


def _empty(path: str, key: str) -> bool:
    """Whether ``path`` (valid `nil interval --json` output) marks its ``key`` interval empty."""
    import json

    try:
        iv = json.loads(open(path, encoding="utf-8").read()).get(key)
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(iv, dict) and iv.get("empty") is True


def _protocol_rows() -> list[dict[str, Any]]:
    from ..llms import protocols, scores

    rows = []
    for key, pr in protocols().items():
        rows.append({"key": key, "name": pr.name, "shots": pr.shots,
                     "base": len(scores(key, "base")), "instruct": len(scores(key, "instruct")), "source": pr.source})
    return rows


def _num(v: float, digits: int = 4) -> str:
    return "" if not math.isfinite(v) else f"{v:.{digits}g}"


def _shape_columns(interval: Any) -> list[str]:
    cols = ["name", "L", "d", "R"]
    cols += ["pos", "dist"] if interval else []
    return cols + ["N calc (B)", "N reported (B)", "shape src"]


def _shape_cells(m: dict[str, Any], interval: Any) -> dict[str, Any]:
    rep = m["params_reported_b"]
    cells = {
        "name": m["name"],
        "L": m["layers"],
        "d": m["hidden"],
        "R": f"{m['ratio']:.4f}",
        "N calc (B)": _num(m["params_computed_b"]),
        "N reported (B)": f"{rep:g} [{m['params_reported_source']}]" if math.isfinite(rep) else "",
        "shape src": m["source"],
    }
    if interval:
        cells["pos"], cells["dist"] = m["position"], f"{m['distance']:.3f}"
    return cells


def _score_cells(r: dict[str, Any], interval: Any) -> dict[str, Any]:
    return {
        "name": r["name"],
        "R": f"{r['ratio']:.4f}",
        "pos": r["position"] or "-",
        "dist": f"{r['distance']:.3f}",
        "N (B)": _num(r["params_b"]),
        "score": f"{r['score']:.2f}",
        "src": r["source"],
        "used": "yes" if r["used"] else "no (chance)" if r["at_chance"] else "no",
    }


def _assoc_cells(c: Any, main: bool) -> dict[str, Any]:
    ci = "" if not math.isfinite(c.ci_lo) else f"{c.ci_lo:+.2f} .. {c.ci_hi:+.2f}"
    return {
        "statistic": c.label if main else f"only {c.label}",
        "n": c.n,
        "r": "nan" if not math.isfinite(c.pearson) else f"{c.pearson:+.3f}",
        "95% CI": ci,
        "p(r)": _num(c.p_pearson, 3),
        "rho": "nan" if not math.isfinite(c.spearman) else f"{c.spearman:+.3f}",
        "p(rho)": _num(c.p_spearman, 3),
    }


def run(args: argparse.Namespace) -> int:
    """Runs ``nil llms``."""
    from ..llms import compare, scores, shape_table, sources
    from ._table import print_json, print_table, say

    if args.list_protocols:
        rows = _protocol_rows()
        if args.json:
            print_json({"protocols": rows})
        else:
            print_table("MMLU-Pro protocols (compare only within one)", ["key", "name", "shots", "base", "instruct", "source"], rows)
        return 0
    if args.permutations < 1:
        args._parser.error("--permutations must be positive")
    if args.plot and os.path.isdir(args.plot):
        raise NilValueError(f"{args.plot}: is a directory; --plot takes the path of a PNG file to write")
    interval = _interval(args)
    comp = compare(args.protocol, args.variant, interval, include_chance=args.include_chance,
                   permutations=args.permutations, seed=args.seed)
    models = shape_table(interval)
    by_shape: dict[str, list[dict[str, Any]]] = {}
    for s in scores():
        by_shape.setdefault(s.shape, []).append(
            {"checkpoint": s.checkpoint, "variant": s.variant, "protocol": s.protocol, "score": s.score, "source": s.source}
        )
    for m in models:
        m["scores"] = by_shape.get(m["name"], [])
    if args.plot:
        from ..llms.plot import plot_comparison

        plot_comparison(comp, args.plot)
    used_keys = sorted({k for m in models for k in m["source"].split(";") + m["params_reported_source"].split(";") if k}
                       | {k for r in comp.rows for k in r.source.split(";")})
    if args.csv:
        from ._table import print_csv

        rows = [r.to_dict() | {"protocol": args.protocol} for r in comp.rows]
        print_csv(["name", "shape", "family", "variant", "protocol", "layers", "hidden", "ratio", "position", "distance",
                   "params_b", "score", "at_chance", "used", "source", "shape_source"], rows)
        return 0
    if args.json:
        print_json({
            "interval": interval.to_dict() if interval else None,
            "models": models,
            "comparison": comp.to_dict(),
            "sources": {k: sources()[k] for k in used_keys if k in sources()},
            "plot": args.plot,
        })
        return 0
    title = "Small dense open LLMs: R = layers / hidden"
    if interval:
        title += f" vs interval [{interval.lo:.4g}, {interval.hi:.4g}] ({interval.source})"
    print_table(title, _shape_columns(interval), [_shape_cells(m, interval) for m in models])
    from ..llms import protocols

    print_table(
        f"MMLU-Pro, {protocols()[args.protocol].name}: {args.variant} models",
        ["name", "R", "pos", "dist", "N (B)", "score", "src", "used"],
        [_score_cells(r.to_dict(), interval) for r in comp.rows],
    )
    assoc = [_assoc_cells(c, c in comp.associations) for c in comp.associations + comp.families]
    print_table(
        f"MMLU-Pro vs {comp.x_name}: Pearson r (95% Fisher-z CI), average-rank Spearman, permutation p",
        ["statistic", "n", "r", "95% CI", "p(r)", "rho", "p(rho)"],
        assoc,
    )
    if comp.excluded:
        say("left out: " + ", ".join(f"{v} {k}" for k, v in comp.excluded.items()) + " (use --include-chance to keep them)")
    say(comp.verdict)
    print("sources:")
    for k in used_keys:
        if k in sources():
            say(f"{k}: {sources()[k]}", indent="  ")
    if args.plot:
        say(f"plot written to {args.plot}")
    return 0

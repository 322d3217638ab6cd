"""``nil interval``: the efficient depth/width interval of a runs table (CSV or Parquet)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from ..interval._columns import is_per_layer

__all__ = ["register"]


def _budgets(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1e6,1.3e6, found {text!r}") from e


def register(sub: Any) -> None:
    """Adds the ``interval`` verb."""
    p = sub.add_parser(
        "interval",
        help="fit the loss-optimal depth/width ratio per budget and the interval across budgets",
        description=(
            "Reads a runs table (one row per budget × shape × seed) and prints, per budget, the "
            "reference's answer (the argmin ratio and the ε-band of shapes within (1+ε)·best loss) "
            "beside nil's: a unimodal, robust fit of loss in ln(ratio) with its optimum R̂*, a "
            "confidence set that never leaves the swept ratios (an optimum at or next to a sweep "
            "edge is censored: only a one-sided bound is given) and its ε-band. Across budgets: the "
            "interval (intersection of bands), the stability slope of ln R* on ln N, frontier power "
            "laws, the joint law L(N, R) and metric–loss correlations. Reference CSVs (target_n, "
            "depth, d_model, test_ce or test_mse) are recognised without options. Method: "
            "docs/interval.md."
        ),
        epilog="example: nil interval runs.csv --budgets 1e6,1.3e6,1.6e6,2e6 --frontier-x wtw_aofe_ratio --plot figs/",
    )
    p.add_argument("runs", help="runs table: .csv, .parquet, or a `nil sweep` directory (its runs.parquet)")
    p.add_argument("--budget-col", default="budget", help="budget column (default 'budget'; else target_n, … are tried)")
    p.add_argument("--ratio-col", default="ratio",
                   help="depth/width ratio column (default 'ratio'; else depth/d_model is computed, or "
                        "depth_over_d_model, alpha)")
    p.add_argument("--loss-col", default="test_loss", help="loss column (default 'test_loss'; else test_ce, test_mse, …)")
    p.add_argument("--eps", type=float, default=0.02, help="relative loss tolerance of the bands (default 0.02)")
    p.add_argument("--budgets", type=_budgets, default=None,
                   help="comma-separated budgets whose bands form the interval (default: all)")
    p.add_argument("--metrics", nargs="*", default=None, metavar="COL",
                   help="metric columns to correlate with loss (default: columns named like aofe, cos2, wtw, agop)")
    p.add_argument("--frontier-x", nargs="*", default=[], metavar="COL",
                   help="metric columns x of extra frontier laws best_loss = a·x^b (the budget is always one)")
    p.add_argument("--bootstrap", type=int, default=500,
                   help="bootstrap replicates for the band, interval and correlation CIs (default 500; 0 skips "
                        "them; the set for R* and the stability slope need none)")
    p.add_argument("--permutations", type=int, default=10_000, help="permutations per correlation p-value (default 10000)")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="random seed of bootstrap and permutations (default 0)")
    p.add_argument("--no-huber", action="store_true", help="least squares instead of the robust Huber loss")
    p.add_argument("--reference-correlations", action="store_true",
                   help="per-budget Pearson/Spearman as the reference computed them (1e-12 denominator, "
                        "sort-order ranks) instead of nil's (NaN on zero variance, average ranks)")
    p.add_argument("--all-metrics", action="store_true",
                   help="also list what is hidden by default: correlations that are not estimable (fewer than 4 "
                        "shapes, constant metric), per-layer metric columns (_L0, _L1, ...), and cross-budget laws "
                        "that need more budgets")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the full result as JSON (NaN as null)")
    out.add_argument("--csv", action="store_true", help="print the per-budget table as CSV")
    p.add_argument("--plot", metavar="DIR", default=None, help="write PNG figures into DIR")
    p.set_defaults(func=run)


def _g(v: float, digits: int = 3) -> str:
    """A number to `digits` significant digits, never cut; '—' for NaN."""
    return "—" if not math.isfinite(v) else f"{v:.{digits}g}"


def _n(v: float) -> str:
    """A parameter budget for people: 60k, 1.3M, 10M (up to 4 significant digits)."""
    if not math.isfinite(v):
        return "—"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.4g}{suffix}"
    return f"{v:.4g}"


def _r(v: float) -> str:
    """A correlation to two decimals (no 4.6e-17 for a zero)."""
    return "—" if not math.isfinite(v) else f"{v:.2f}"


def _zeroed(*vs: float) -> list[float]:
    """The values with rounding noise of a zero (below 1e-6 of the largest magnitude, e.g. the
    4.6e-17 of [4.6e-17, 1]) written as 0."""
    scale = max((abs(v) for v in vs if math.isfinite(v)), default=0.0)
    return [0.0 if math.isfinite(v) and abs(v) < 1e-6 * scale else v for v in vs]


def _band(lo: float, hi: float, lo_bound: bool = False, hi_bound: bool = False) -> str:
    """[lo, hi]; an edge at the sweep bound is written ≤lo / ≥hi (the band may extend past it)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "—"
    lo, hi = _zeroed(lo, hi)
    return f"[{'≤' if lo_bound else ''}{_g(lo)}, {'≥' if hi_bound else ''}{_g(hi)}]"


def _pct(f: float) -> str:
    return f"{f:.0%}" if 0.01 <= f <= 0.99 or f in (0.0, 1.0) else f"{f:.1%}"


def _ci(c: Any, num: Any = None) -> str:
    """A bootstrap interval with the fractions that qualify it; 'not estimable' when too many
    replicates had no value (never percentiles of the defined ones alone)."""
    num = num or _g
    if not math.isfinite(c.defined):
        return "—"
    if not (math.isfinite(c.lo) and math.isfinite(c.hi)):
        return f"not estimable (defined in {_pct(c.defined)} of replicates)"
    extra = []
    if c.defined < 1:
        extra.append(f"{_pct(c.defined)} defined")
    if c.at_bound > 0:
        extra.append(f"{_pct(c.at_bound)} at a sweep bound")
    lo, hi = _zeroed(c.lo, c.hi)
    return f"[{num(lo)}, {num(hi)}]" + (f" ({', '.join(extra)})" if extra else "")


def _print(con: Any, title: str, columns: list[str], rows: list[dict[str, str]], left: tuple[str, ...] = ()) -> None:
    """Prints a table fitted to the console: text folds, numbers are never cut, a table too wide
    is split (``nil.cli._table.render_table``)."""
    from ._table import render_table

    for t in render_table(title, columns, [[r.get(c, "") for c in columns] for r in rows], left=left, total=con.width):
        con.print(t)


def _budget_rows(fit: Any) -> list[dict[str, str]]:
    rows = []
    for b in fit.budgets:
        s = b.smooth
        seeds = f"{min(b.seeds)}" if min(b.seeds) == max(b.seeds) else f"{min(b.seeds)}–{max(b.seeds)}"
        if s.status == "interior":
            star = _g(s.ratio_star)
        elif s.status == "censored_low":
            star = f"≤ {_g(s.set_hi)}"
        elif s.status == "censored_high":
            star = f"≥ {_g(s.set_lo)}"
        else:
            star = "—"
        notes = []
        if s.status.startswith("censored"):
            notes.append("censored: optimum at the sweep edge")
        if s.status == "no_fit" and s.note:
            notes.append(s.note)
        if s.anomalous_ratio is not None:
            w = b.without_anomalous
            alt = f"; without it {w.describe()}" if w is not None else ""
            notes.append(f"anomalous shape R={_g(s.anomalous_ratio)} (z={s.anomalous_z:.1f}){alt}")
        if b.argmin_tie:
            notes.append("argmin tie")
        if not b.span_is_contiguous:
            notes.append(f"span has a gap: contiguous {_band(b.contiguous_lo, b.contiguous_hi)}")
        if s.sigma_source == "none":
            notes.append("no noise estimate")
        rows.append({
            "budget": _n(b.budget),
            "shapes": f"{len(b.ratios)}×{seeds}",
            "argmin R": _g(b.argmin_ratio),
            "span band": _band(b.span_lo, b.span_hi, b.span_lo == b.ratios[0], b.span_hi == b.ratios[-1]),
            "R̂*": star,
            f"{fit.ci:.0%} set": _band(s.set_lo, s.set_hi, s.set_lo_at_bound, s.set_hi_at_bound),
            "smooth band": _band(s.band_lo, s.band_hi, s.band_lo_at_bound, s.band_hi_at_bound),
            "notes": "; ".join(notes),
        })
    return rows


def _csv_rows(fit: Any) -> tuple[list[str], list[dict[str, Any]]]:
    cols = ["budget", "shapes", "seeds_min", "seeds_max", "argmin_ratio", "argmin_loss", "span_lo", "span_hi",
            "status", "ratio_star", "set_lo", "set_hi", "set_lo_at_bound", "set_hi_at_bound", "band_lo", "band_hi",
            "band_lo_ci_lo", "band_lo_ci_hi", "band_hi_ci_lo", "band_hi_ci_hi", "sigma", "sigma_source",
            "anomalous_ratio"]
    rows = []
    for b in fit.budgets:
        s = b.smooth
        rows.append({
            "budget": b.budget, "shapes": len(b.ratios), "seeds_min": min(b.seeds), "seeds_max": max(b.seeds),
            "argmin_ratio": b.argmin_ratio, "argmin_loss": b.argmin_loss, "span_lo": b.span_lo, "span_hi": b.span_hi,
            "status": s.status, "ratio_star": s.ratio_star, "set_lo": s.set_lo, "set_hi": s.set_hi,
            "set_lo_at_bound": s.set_lo_at_bound, "set_hi_at_bound": s.set_hi_at_bound,
            "band_lo": s.band_lo, "band_hi": s.band_hi, "band_lo_ci_lo": b.band_lo_ci.lo,
            "band_lo_ci_hi": b.band_lo_ci.hi, "band_hi_ci_lo": b.band_hi_ci.lo, "band_hi_ci_hi": b.band_hi_ci.hi,
            "sigma": s.sigma, "sigma_source": s.sigma_source,
            "anomalous_ratio": "" if s.anomalous_ratio is None else s.anomalous_ratio,
        })
    return cols, [{k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def _across(fit: Any) -> list[tuple[str, str]]:
    """(statistic, value) lines of the cross-budget results."""
    out = []
    n_int = len(fit.interval.budgets)
    for name, iv in (("reference interval (∩ span bands)", fit.interval), ("nil interval (∩ smooth bands)", fit.smooth_interval)):
        if iv.missing:
            val = "not estimable: no fitted band at " + ", ".join(_n(b) for b in iv.missing)
        elif iv.empty:
            val = "empty: the bands do not overlap"
        else:
            val = _band(iv.lo, iv.hi, iv.lo_at_bound, iv.hi_at_bound)
            if math.isfinite(iv.lo_ci.defined):
                val += f"; lo {_ci(iv.lo_ci)}, hi {_ci(iv.hi_ci)}"
        out.append((f"{name}, {n_int} budgets", val))
    a = fit.argmin_summary
    out.append(("argmin R (min, max, median)", f"{_g(a.min)}, {_g(a.max)}, {_g(a.median)}"))
    st = fit.stability
    if st.note:
        out.append(("stability: slope of ln R* on ln N", st.note))
    else:
        s_lo, s_hi = _zeroed(st.slope_lo, st.slope_hi)
        lo = "−∞" if st.lo_unbounded else _g(s_lo)
        hi = "+∞" if st.hi_unbounded else _g(s_hi)
        verdict = "consistent with a stable R*" if (st.lo_unbounded or st.slope_lo <= 0) and (st.hi_unbounded or st.slope_hi >= 0) else "R* moves with N"
        out.append(("stability: slope of ln R* on ln N",
                    f"{_g(st.slope)} {st.level:.0%} set [{lo}, {hi}] from {st.n} budgets ({verdict})"))
    for name, f in fit.frontier.items():
        label = f"frontier: best loss = a·{name}^b"
        if f.note:
            out.append((label, f.note))
        else:
            out.append((label, f"a = {_g(f.a, 4)}, b = {_g(f.b, 4)} (b {_ci(f.b_ci)}), R² = {f.r2:.3f} ({f.n} budgets)"))
    j = fit.joint
    label = "joint law L∞ + a·N^−β + b·(ln R − ln R*)²"
    if j.note:
        out.append((label, f"not fitted: {j.note}"))
    else:
        val = (f"L∞ = {_g(j.l_inf, 4)}, a = {_g(j.a, 4)}, β = {_g(j.beta)}, b = {_g(j.b)}, R* = {_g(j.ratio_star)}, "
               f"rms = {_g(j.rms)}")
        if j.flags:
            val += "; NOT PHYSICAL: " + "; ".join(j.flags)
        out.append((label, val))
    return out


def _check_plot_dir(path: str) -> None:
    """Fails before the fit when ``--plot DIR`` cannot become a directory of PNGs (an existing
    file, a file on its way) or matplotlib is missing, so no minutes of bootstrap are lost."""
    import os

    from .._optional import require
    from ..errors import NilValueError

    require("matplotlib", "--plot")
    p = os.path.abspath(path)
    if os.path.exists(p) and not os.path.isdir(p):
        raise NilValueError(f"{path}: is a file; --plot expected a directory to write PNG figures into (remove "
                            "the file or pass another directory)")
    parent = os.path.dirname(p)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise NilValueError(f"{path}: {parent} is a file; --plot expected a directory to write PNG figures "
                            "into (or a path that can become one)")


def _in_short(con: Any, fit: Any) -> None:
    """One paragraph in words: where the loss-optimal shape is, and how sure that is."""
    iv = fit.smooth_interval
    parts = []
    stars = []
    for b in fit.budgets:
        s = b.smooth
        if s.status == "interior":
            stars.append(f"{_g(s.ratio_star)} at {_n(b.budget)} "
                         f"({fit.ci:.0%} set {_band(s.set_lo, s.set_hi, s.set_lo_at_bound, s.set_hi_at_bound)})")
        elif s.status.startswith("censored"):
            side = "≤" if s.status == "censored_low" else "≥"
            bound = s.set_hi if side == "≤" else s.set_lo
            stars.append(f"{side} {_g(bound)} at {_n(b.budget)} (at the edge of the swept ratios)")
    if stars:
        parts.append("the loss is lowest at depth/width R* ≈ " + ", ".join(stars))
    n = len(iv.budgets)
    every = "both" if n == 2 else f"all {n}"
    fitted = [b for b in fit.budgets if b.smooth.status != "no_fit"]
    if not fitted:
        parts.append("no budget has enough shapes for nil's fit (the notes above say why); sweep more depths")
    elif iv.missing:
        parts.append("nil's interval over the budgets is not estimable: no fitted band at "
                     + ", ".join(_n(b) for b in iv.missing))
    elif iv.empty:
        parts.append(f"the fitted bands of the {n} budgets do not overlap: no one interval of R suits them all")
    else:
        text = (f"the fitted loss is within {fit.eps:.0%} of its minimum for every R in "
                f"{_band(iv.lo, iv.hi, iv.lo_at_bound, iv.hi_at_bound)} at {every} budgets")
        if math.isfinite(iv.lo_ci.defined) and math.isfinite(iv.lo_ci.lo):
            text += f" ({fit.ci:.0%} CI of its edges: lo {_ci(iv.lo_ci)}, hi {_ci(iv.hi_ci)})"
        if fit.interval.empty:
            text += "; the reference's span bands alone do not overlap"
        parts.append(text)
    if parts:
        con.print("In short: " + "; ".join(parts) + ".", markup=False, highlight=False)


def _estimable(c: Any) -> bool:
    return c.n >= 4 and math.isfinite(c.spearman) and math.isfinite(c.pearson)


def run(args: argparse.Namespace) -> int:
    """Runs the fit and prints tables, JSON, CSV and/or plots."""
    from rich.console import Console

    from ..interval import fit_interval, resolve_columns
    from ._table import print_csv, print_json

    err = Console(stderr=True)
    if args.plot:
        _check_plot_dir(args.plot)
    t0 = time.perf_counter()
    with err.status(f"fitting {args.runs} ({args.bootstrap} bootstrap replicates)…"):
        fit = fit_interval(
            args.runs, budget=args.budget_col, ratio=args.ratio_col, loss=args.loss_col, eps=args.eps,
            budgets=args.budgets, bootstrap=args.bootstrap, seed=args.seed, metrics=args.metrics,
            frontier_x=args.frontier_x, ci=args.ci, permutations=args.permutations, huber=not args.no_huber,
            correlation="reference" if args.reference_correlations else "nil",
        )
    figures = []
    if args.plot:
        from ..interval.plots import write_plots

        cols = resolve_columns(args.runs, args.budget_col, args.ratio_col, args.loss_col, args.metrics, args.frontier_x)
        named = set(args.metrics or ()) | set(args.frontier_x or ())
        figures = write_plots(fit, cols, args.plot, all_metrics=args.all_metrics, named=named)
        if args.json or args.csv:
            for path in figures:
                err.print(f"wrote {path}", markup=False, highlight=False)
    if args.json:
        print_json(fit.to_dict())
        return 0
    if args.csv:
        print_csv(*_csv_rows(fit))
        return 0
    from ._table import console

    con = console()
    for note in fit.notes:
        con.print(f"note: {note}", markup=False)
    rows = _budget_rows(fit)
    columns = [c for c in rows[0] if c != "notes"]
    _print(con, f"Per budget (ε = {fit.eps:g}). Reference: argmin R, span band. nil: R̂*, its "
           f"{fit.ci:.0%} set, smooth band; ≤/≥: a sweep bound.", columns, rows)
    for r in rows:
        if r["notes"]:
            con.print(f"  {r['budget']}: {r['notes']}", markup=False)
    across = _across(fit)
    # Laws that need more budgets are hidden by default; the intervals, the central answer, never are.
    unfit = [k for k, v in across if "interval" not in k and v.startswith(("not estimable", "not fitted"))]
    if not args.all_metrics:
        across = [(k, v) for k, v in across if k not in unfit]
    _print(con, "Across budgets", ["statistic", "value"], [{"statistic": k, "value": v} for k, v in across],
           left=("statistic", "value"))
    named = set(args.metrics or ()) | set(args.frontier_x or ())
    shown = [c for c in fit.correlations
             if args.all_metrics or (_estimable(c) and (c.metric in named or not is_per_layer(c.metric)))]
    if shown:
        crow = [{"metric": c.metric, "budget": _n(c.budget), "n": str(c.n),
                 "spearman ρ": f"{_r(c.spearman)} {_ci(c.spearman_ci, _r)}", "p": _g(c.spearman_p, 2),
                 "pearson r": _r(c.pearson), "p ": _g(c.pearson_p, 2)} for c in shown]
        _print(con, f"Metric vs loss across the shapes of a budget (seed means; {fit.ci:.0%} pairs-bootstrap CI, "
               "permutation p)", list(crow[0]), crow, left=("metric",))
    hidden = len([c for c in fit.correlations if not _estimable(c)]) if not args.all_metrics else 0
    layered = sorted({c.metric for c in fit.correlations if c not in shown and _estimable(c)})
    partial = [c for c in fit.partial_correlations if args.all_metrics or (
        c.n >= 4 and math.isfinite(c.spearman) and (c.metric in named or not is_per_layer(c.metric)))]
    if partial:
        prow = [{"metric": c.metric, "n": str(c.n), "partial spearman": _r(c.spearman), "p": _g(c.spearman_p, 2),
                 "partial pearson": _r(c.pearson), "p ": _g(c.pearson_p, 2)} for c in partial]
        _print(con, "Metric vs loss over all budgets, controlling for ln N", list(prow[0]), prow, left=("metric",))
    left_out = []
    if unfit and not args.all_metrics:
        left_out.append(f"{len(unfit)} cross-budget laws that need more budgets ("
                        + ", ".join(k.split(":")[0] if ":" in k else " ".join(k.split()[:2]) for k in unfit) + ")")
    if hidden:
        left_out.append(f"{hidden} correlations not estimable (fewer than 4 shapes or a constant metric)")
    if layered:
        left_out.append(f"the per-layer columns of {len(layered)} metrics ({layered[0]}, …; their means are shown)")
    if left_out:
        con.print(f"(hidden: {'; '.join(left_out)}; --all-metrics shows them)", markup=False)
    _in_short(con, fit)
    if figures:
        first = figures[0]
        con.print(f"figures: {', '.join(p.name for p in figures)} in {first.parent}; open {first} first (loss "
                  "against depth/width per budget, with nil's fit and band)", markup=False, highlight=False)
    print(f"done in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    return 0

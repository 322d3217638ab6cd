"""``nil interval``: the efficient depth/width interval of a runs table (CSV or Parquet)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

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
            "reference's answer — the argmin ratio and the ε-band of shapes within (1+ε)·best loss — "
            "beside nil's smooth answer: a robust quadratic of loss in ln(ratio) with its optimum R̂*, "
            "its ε-band and bootstrap confidence intervals. Across budgets it gives the interval "
            "(intersection of bands), the stability slope of ln R̂* on ln N, frontier power laws, "
            "the joint law L(N, R) and metric–loss correlations. Reference CSVs (target_n, depth, "
            "d_model, test_ce or test_mse) are recognised without options."
        ),
        epilog="example: nil interval runs.csv --budgets 1e6,1.3e6,1.6e6,2e6 --frontier-x wtw_aofe_ratio --plot figs/",
    )
    p.add_argument("runs", help="runs table: .csv, .parquet, or a `nil sweep` directory (its runs.parquet)")
    p.add_argument("--budget-col", default="budget", help="budget column (default 'budget'; else target_n, … are tried)")
    p.add_argument("--ratio-col", default="ratio",
                   help="depth/width ratio column (default 'ratio'; else depth/d_model is computed, or depth_over_d_model, alpha)")
    p.add_argument("--loss-col", default="test_loss", help="loss column (default 'test_loss'; else test_ce, test_mse, …)")
    p.add_argument("--eps", type=float, default=0.02, help="relative loss tolerance of the bands (default 0.02)")
    p.add_argument("--budgets", type=_budgets, default=None,
                   help="comma-separated budgets whose bands form the interval (default: all)")
    p.add_argument("--metrics", nargs="*", default=None, metavar="COL",
                   help="metric columns to correlate with loss (default: columns named like aofe, cos2, wtw, agop)")
    p.add_argument("--frontier-x", nargs="*", default=[], metavar="COL",
                   help="metric columns x of extra frontier laws best_loss = a·x^b (the budget is always one)")
    p.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap replicates (default 10000; 0 skips CIs)")
    p.add_argument("--permutations", type=int, default=10_000, help="permutations per correlation p-value (default 10000)")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="random seed of bootstrap and permutations (default 0)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON (NaN as null)")
    p.add_argument("--plot", metavar="DIR", default=None, help="write PNG figures into DIR")
    p.set_defaults(func=run)


def _band(lo: float, hi: float) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "—"
    return f"[{lo:.4g}, {hi:.4g}]"


def _with_ci(v: float, lo: float, hi: float) -> str:
    if not math.isfinite(v):
        return "—"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{v:.4g}"
    return f"{v:.4g} [{lo:.4g}, {hi:.4g}]"


def _wide_table(title: str, rows: list[dict[str, str]], split_after: str) -> None:
    """A rich table wide enough for bands and CIs, with a rule between reference and nil columns."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for c in rows[0]:
        table.add_column(c, justify="left" if c == "flags" else "right", no_wrap=c != "flags",
                         style="dim" if c == split_after else None)
    for r in rows:
        table.add_row(*r.values())
    Console(width=max(170, Console().width)).print(table)


def run(args: argparse.Namespace) -> int:
    """Runs the fit and prints tables, JSON and/or plots."""
    from rich.console import Console

    from ..interval import fit_interval, resolve_columns
    from ._table import print_json, print_table

    err = Console(stderr=True)
    t0 = time.perf_counter()
    with err.status(f"fitting {args.runs} ({args.bootstrap} bootstrap replicates)…"):
        fit = fit_interval(
            args.runs, budget=args.budget_col, ratio=args.ratio_col, loss=args.loss_col, eps=args.eps,
            budgets=args.budgets, bootstrap=args.bootstrap, seed=args.seed, metrics=args.metrics,
            frontier_x=args.frontier_x, ci=args.ci, permutations=args.permutations,
        )
    if args.plot:
        from ..interval.plots import write_plots

        cols = resolve_columns(args.runs, args.budget_col, args.ratio_col, args.loss_col, args.metrics, args.frontier_x)
        for path in write_plots(fit, cols, args.plot):
            err.print(f"wrote {path}")
    if args.json:
        print_json(fit.to_dict())
        return 0
    for note in fit.notes:
        print(f"note: {note}")
    pct = f"{fit.ci:.0%}"
    if fit.bootstrap and all(max(b.seeds) == 1 for b in fit.budgets):
        print("note: every shape has one seed: CIs come from resampling each budget's fit residuals "
              "(they assume the quadratic holds); ≥ 3 seeds per shape give model-free intervals")
    rows = []
    for b in fit.budgets:
        s = b.smooth
        flags = []
        if b.argmin_tie:
            flags.append("argmin tie")
        if not b.span_is_contiguous:
            flags.append(f"gap: contiguous {_band(b.contiguous_lo, b.contiguous_hi)}")
        if s.vertex != "interior":
            flags.append(s.vertex.replace("_", " "))
        if s.outlier_ratio is not None:
            flags.append(f"outlier R={s.outlier_ratio:.4g} dropped")
        seeds = f"{min(b.seeds)}" if min(b.seeds) == max(b.seeds) else f"{min(b.seeds)}–{max(b.seeds)}"
        rows.append({
            "budget": f"{b.budget:.4g}",
            "shapes×seeds": f"{len(b.ratios)}×{seeds}",
            "argmin R": f"{b.argmin_ratio:.4g}",
            "repeats": "—" if math.isnan(b.argmin_repeat) else f"{b.argmin_repeat:.0%}",
            "span band": _band(b.span_lo, b.span_hi),
            "R̂*": "—" if not math.isfinite(s.ratio_star) else f"{s.ratio_star:.4g}",
            f"{pct} CI": _band(b.ratio_star_ci.lo, b.ratio_star_ci.hi),
            "smooth band": _band(s.band_lo, s.band_hi),
            "flags": "; ".join(flags),
        })
    _wide_table(f"Per budget: reference (argmin, span band) | nil (smooth R̂*, bootstrap CI, band); ε = {fit.eps:g}",
                rows, split_after="span band")
    iv, sv, st = fit.interval, fit.smooth_interval, fit.stability
    summary = [
        {"statistic": "interval, reference (∩ span bands)",
         "value": "empty" if iv.empty else _band(iv.lo, iv.hi),
         f"{pct} CI": f"lo {_band(iv.lo_ci.lo, iv.lo_ci.hi)}, hi {_band(iv.hi_ci.lo, iv.hi_ci.hi)}"},
        {"statistic": "interval, nil (∩ smooth bands)",
         "value": "empty" if sv.empty else _band(sv.lo, sv.hi),
         f"{pct} CI": f"lo {_band(sv.lo_ci.lo, sv.lo_ci.hi)}, hi {_band(sv.hi_ci.lo, sv.hi_ci.hi)}"},
        {"statistic": "argmin R over interval budgets (min, max, mean, median)",
         "value": ", ".join(f"{v:.4g}" for v in (fit.argmin_summary.min, fit.argmin_summary.max,
                                                  fit.argmin_summary.mean, fit.argmin_summary.median)),
         f"{pct} CI": ""},
        {"statistic": "stability: slope of ln R̂* on ln N",
         "value": _with_ci(st.slope, math.nan, math.nan) + (f" ± {st.slope_se:.3g} (s.e.)" if math.isfinite(st.slope_se) else ""),
         f"{pct} CI": _band(st.slope_ci.lo, st.slope_ci.hi)},
    ]
    for name, f in fit.frontier.items():
        summary.append({"statistic": f"frontier: best loss = a·{name}^b (R² linear)",
                        "value": f"a = {f.a:.4g}, b = {f.b:.4g}, R² = {f.r2:.4f}" if math.isfinite(f.a) else f"— ({f.n} points)",
                        f"{pct} CI": f"b {_band(f.b_ci.lo, f.b_ci.hi)}"})
    j = fit.joint
    summary.append({"statistic": "joint law L∞ + a·N^−β + b·(ln R − ln R*)²",
                    "value": (f"L∞ = {j.l_inf:.4g}, a = {j.a:.4g}, β = {j.beta:.4g}, b = {j.b:.4g}, "
                              f"R* = {j.ratio_star:.4g}, rms = {j.rms:.3g}" if j.note is None else f"— ({j.note})"),
                    f"{pct} CI": ""})
    print_table("Across budgets", ["statistic", "value", f"{pct} CI"], summary)
    if fit.correlations:
        crow = [{"budget": f"{c.budget:.4g}", "metric": c.metric, "n": c.n, "pearson": c.pearson,
                 "pearson p": c.pearson_p, "spearman": c.spearman, "spearman p": c.spearman_p}
                for c in fit.correlations]
        print_table("Metric vs loss across shapes (seed means)", list(crow[0]), crow)
    print(f"done in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    return 0

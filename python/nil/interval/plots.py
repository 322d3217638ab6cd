"""Figures of an interval fit, written as PNGs with matplotlib's Agg backend (no display needed).

- ``loss_vs_ratio.png``: per budget, the seeds and their means (± s.e.) against R on a log axis,
  the unimodal fit, its ε-band, R̂* with its confidence set (or the one-sided bound of a censored
  optimum), the argmin and the reference's span band; an anomalous shape is ringed.
- ``ratio_star_vs_budget.png``: R̂* against N with its sets (censored budgets as one-sided bounds),
  the argmins, the stability line from the joint profile, and both cross-budget intervals.
- ``frontier.png``: best loss against N with the fitted power law (only from ≥ 3 budgets).
- ``metric_vs_loss.png``: each estimable metric against seed-mean loss across shapes, coloured by
  budget, at most four panels a row.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ._columns import Columns, is_per_layer
from ..errors import NilValueError
from ._result import IntervalFit

__all__ = ["write_plots"]


def _fmt_budget(n: float) -> str:
    if n >= 1e6:
        return f"N = {n / 1e6:.3g}M"
    if n >= 1e3:
        return f"N = {n / 1e3:.3g}k"
    return f"N = {n:.3g}"


def _plain_log_axis(ax: Any) -> None:
    """Log y-axis labels as plain numbers (2.05, 0.02) instead of mantissa×10^k; minor ticks are
    labelled too when the axis spans less than a decade (else no major tick may be in view)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    lo, hi = ax.get_ylim()
    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    ax.yaxis.set_major_formatter(plain)
    majors = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1 if lo > 0 else 2
    if hi / lo < 10:
        ax.yaxis.set_minor_formatter(plain)
    elif majors < 2:  # one power of ten in view: label the 2s and 5s too, so the scale can be read
        ax.yaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:.3g}" if round(v / 10 ** math.floor(math.log10(v) + 1e-9)) in (2, 5) else ""))
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="both", which="both", labelsize=8)  # one tick font, major and minor, x and y


def _budget_axis_label(fit: IntervalFit) -> str:
    col = fit.columns["budget"]
    return "budget N (parameters)" if col == "budget" else f"budget N ({col})"


def _budget_x(ax: Any, budgets: Any) -> None:
    """Log x-axis of budgets ticked at the swept budgets, labelled 300k, 1M, 3M (the panel
    titles' notation) instead of mantissa×10^k in a larger math font."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ticks = sorted({float(b) for b in budgets})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt_budget(v)[4:]))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _plain_log_x(ax: Any) -> None:
    """Log x-axis ticks at 1, 2, 5 × 10^k labelled as plain numbers (0.005, 0.01, 0.02), no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _loss_vs_ratio(fit: IntervalFit, seeds: dict[float, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib.pyplot as plt

    nb = len(fit.budgets)
    ncol = min(4, nb)
    nrow = math.ceil(nb / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow + 0.6), squeeze=False)
    for ax in axes.flat[nb:]:
        ax.set_visible(False)
    for ax, b in zip(axes.flat, fit.budgets):
        r = np.asarray(b.ratios)
        m = np.asarray(b.mean_loss)
        se = np.nan_to_num(np.asarray(b.se))
        s = b.smooth
        if s.status != "no_fit":
            ax.axvspan(s.set_lo, s.set_hi, color="tab:blue", alpha=0.10, lw=0, label=f"R* {s.level:.0%} set")
            ax.plot(s.curve_ratio, s.curve_loss, color="tab:blue", lw=1.5, label="unimodal fit")
            ax.hlines(s.loss_fit_min + fit.eps * abs(s.loss_fit_min), s.band_lo, s.band_hi, color="tab:blue",
                      lw=5, alpha=0.35, label="smooth ε-band")
        ax.hlines(b.argmin_loss * (1 + fit.eps), b.span_lo, b.span_hi, color="tab:orange", lw=2.0,
                  label="reference span band")
        sr, sl = seeds.get(b.budget, (np.array([]), np.array([])))
        ax.plot(sr, sl, ".", ms=3, color="0.55", label="seeds")
        ax.errorbar(r, m, yerr=se, fmt="o", ms=3.5, color="0.15", ecolor="0.4", capsize=2, label="seed mean ± s.e.")
        ax.plot([b.argmin_ratio], [b.argmin_loss], marker="*", ms=11, color="tab:orange", ls="none", label="argmin")
        if s.status == "interior":
            ax.axvline(s.ratio_star, color="tab:blue", ls="--", lw=1, label="R̂*")
        if s.anomalous_ratio is not None:
            k = int(np.argmin(np.abs(r - s.anomalous_ratio)))
            ax.plot([r[k]], [m[k]], marker="o", ms=11, mfc="none", mec="tab:red", ls="none", label="anomalous shape")
        title = _fmt_budget(b.budget)
        if s.status == "censored_low":
            title += f": R* ≤ {s.set_hi:.3g} (censored)"
        elif s.status == "censored_high":
            title += f": R* ≥ {s.set_lo:.3g} (censored)"
        elif s.status == "interior":
            title += f": R̂* = {s.ratio_star:.3g}"
        else:
            title += ": no fit"
        ax.set_title(title, fontsize=9)
        ax.set_xscale("log")
        _plain_log_x(ax)
        ax.tick_params(labelsize=8)
        ax.tick_params(which="minor", labelsize=7)
        ax.grid(alpha=0.3, which="both", lw=0.5)
    for k, ax in enumerate(axes.flat[:nb]):
        if k >= nb - ncol:
            ax.set_xlabel("depth / width ratio R", fontsize=9)
        if k % ncol == 0:
            ax.set_ylabel(fit.columns["loss"], fontsize=9)
    labels: dict[str, Any] = {}
    for ax in axes.flat[:nb]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(lab, h)
    legend_cols = min(4 if ncol < 3 else 5, len(labels))
    legend_rows = math.ceil(len(labels) / max(legend_cols, 1))
    fig.legend(list(labels.values()), list(labels), loc="lower center", ncol=legend_cols, fontsize=8, frameon=False)
    fig.suptitle(f"Loss against shape per budget (ε = {fit.eps:g})", fontsize=11)
    fig.tight_layout(rect=(0, 0.045 * legend_rows * 2 / (nrow + 1), 1, 0.97))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _ratio_star_vs_budget(fit: IntervalFit, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    if math.isfinite(fit.smooth_interval.lo):  # neither empty nor missing a band
        ax.axhspan(fit.smooth_interval.lo, fit.smooth_interval.hi, color="tab:blue", alpha=0.10, lw=0,
                   label="interval (nil: ∩ smooth bands)")
    if not fit.interval.empty:
        for k, y in enumerate((fit.interval.lo, fit.interval.hi)):
            ax.axhline(y, color="tab:orange", ls="--", lw=1.2,
                       label="interval (reference: ∩ span bands)" if k == 0 else None)
    n = np.array([b.budget for b in fit.budgets])
    first = {"interior": True, "low": True, "high": True, "edge": True}
    for b in fit.budgets:
        s = b.smooth
        if s.status == "interior":
            ax.errorbar([b.budget], [s.ratio_star], yerr=[[s.ratio_star - s.set_lo], [s.set_hi - s.ratio_star]],
                        fmt="o", color="tab:blue", capsize=3, label=f"R̂* ({s.level:.0%} set)" if first["interior"] else None)
            first["interior"] = False
            for edge, at, mark in ((s.set_lo, s.set_lo_at_bound, "v"), (s.set_hi, s.set_hi_at_bound, "^")):
                if at:  # the set runs to the sweep's edge: the data do not bound it there
                    ax.plot([b.budget], [edge], marker=mark, ms=7, mfc="white", color="tab:blue", ls="none",
                            label="set edge at a sweep bound" if first["edge"] else None)
                    first["edge"] = False
        elif s.status == "censored_low":
            ax.plot([b.budget], [s.set_hi], marker="v", ms=8, color="tab:purple", ls="none",
                    label="censored: R* ≤ bound" if first["low"] else None)
            ax.vlines(b.budget, s.set_lo, s.set_hi, color="tab:purple", lw=1, alpha=0.6)
            first["low"] = False
        elif s.status == "censored_high":
            ax.plot([b.budget], [s.set_lo], marker="^", ms=8, color="tab:purple", ls="none",
                    label="censored: R* ≥ bound" if first["high"] else None)
            ax.vlines(b.budget, s.set_lo, s.set_hi, color="tab:purple", lw=1, alpha=0.6)
            first["high"] = False
    cross = _cross_budgets(fit)
    ax.plot([b.budget for b in cross], [b.argmin_ratio for b in cross], marker="*", ms=9, ls="none", color="tab:orange",
            label="argmin R")
    st = fit.stability
    if math.isfinite(st.slope):
        used = np.array(st.budgets)
        g = np.geomspace(used.min(), used.max(), 50)
        lo = "−∞" if st.lo_unbounded else f"{st.slope_lo:.2f}"
        hi = "+∞" if st.hi_unbounded else f"{st.slope_hi:.2f}"
        ax.plot(g, np.exp(st.intercept + st.slope * np.log(g)), color="0.3", lw=1,
                label=f"ln R* = A + s ln N: s = {st.slope:.2f} [{lo}, {hi}]")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axis(ax)
    _budget_x(ax, n)
    ax.set_xlabel(_budget_axis_label(fit))
    ax.set_ylabel("depth / width ratio R")
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    note = "" if math.isfinite(st.slope) else f" (stability {st.note})" if st.note else ""
    import textwrap

    sub = "\n".join(textwrap.wrap(note.strip(), 70))
    ax.set_title("Optimal shape against budget" + ("" if not note else "\n" + sub), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _cross_budgets(fit: IntervalFit) -> list[Any]:
    """The budgets the cross-budget answers use, as the fit does: those with enough shapes for a
    fit (all when none has); a budget's one or few runs are not its optimum."""
    from .. import _core

    enough = [b for b in fit.budgets if len(b.ratios) >= _core.MIN_SHAPES]
    return enough or list(fit.budgets)


def _frontier(fit: IntervalFit, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    used = _cross_budgets(fit)
    n = np.array([b.budget for b in used])
    best = np.array([b.argmin_loss for b in used])
    ax.plot(n, best, "o", color="0.2", label="best loss per budget")
    f = fit.frontier.get(fit.columns["budget"])
    if f is not None and math.isfinite(f.a) and f.note is None:
        g = np.geomspace(n.min(), n.max(), 50)
        ax.plot(g, f.a * g**f.b, color="tab:blue",
                label=f"${f.a:.3g}\\cdot N^{{{f.b:.3f}}}$, R² = {f.r2:.3f} ({f.n} budgets)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axis(ax)
    _budget_x(ax, n)
    ax.set_xlabel(_budget_axis_label(fit))
    ax.set_ylabel(f"best {fit.columns['loss']}")
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.legend(fontsize=8)
    ax.set_title("Frontier power law", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _estimable_metrics(fit: IntervalFit, metrics: list[str]) -> list[str]:
    """Metrics with at least one estimable per-budget correlation (≥ 4 shapes, not constant)."""
    ok = {c.metric for c in fit.correlations if c.n >= 4 and math.isfinite(c.spearman)}
    return [m for m in metrics if m in ok]


def _metric_vs_loss(fit: IntervalFit, cols: Columns, metrics: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt

    ncol = min(4, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.8 * ncol, 3.2 * nrow + 0.4), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    a = cols.arrays
    b_all, r_all, l_all = a[cols.budget], a[cols.ratio], a[cols.loss]
    cmap = plt.get_cmap("viridis")
    budgets = [b.budget for b in fit.budgets]
    for ax, metric in zip(axes.flat, metrics):
        for k, n in enumerate(budgets):
            sel = (b_all == n) & np.isfinite(l_all)
            xs, ys = [], []
            for r in np.unique(r_all[sel]):
                rows = sel & (r_all == r)
                xs.append(np.nanmean(a[metric][rows]) if np.isfinite(a[metric][rows]).any() else np.nan)
                ys.append(l_all[rows].mean())
            rho = next((c.spearman for c in fit.correlations if c.budget == n and c.metric == metric), math.nan)
            ax.plot(xs, ys, "o", ms=4, alpha=0.85, color=cmap(k / max(1, len(budgets) - 1)),
                    label=f"{_fmt_budget(n)}, ρ = {rho:.2f}")
        ax.set_xlabel(metric, fontsize=8)
        ax.set_ylabel(cols.loss, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize=6)
    fig.suptitle("Metric against loss across shapes (seed means; ρ: Spearman)", fontsize=11,
                 y=1 - 0.1 / fig.get_figheight())
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # keep the title clear of the top row
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _seed_points(cols: Columns) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Per budget, the ratio and loss of every run with a finite loss (the seeds behind the means)."""
    a = cols.arrays
    b, r, l = a[cols.budget], a[cols.ratio], a[cols.loss]
    ok = np.isfinite(l)
    return {float(n): (r[ok & (b == n)], l[ok & (b == n)]) for n in np.unique(b[ok])}


def write_plots(fit: IntervalFit, cols: Columns, directory: str | Path, *, all_metrics: bool = False,
                named: set[str] | frozenset[str] = frozenset()) -> list[Path]:
    """Writes the figures of ``fit`` into ``directory`` (created if needed); returns their paths.
    ``metric_vs_loss.png`` has a panel per metric with an estimable correlation, per-layer columns
    only when ``all_metrics`` or ``named`` (as the CLI's tables)."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("loss_vs_ratio.png", "ratio_star_vs_budget.png", "frontier.png", "metric_vs_loss.png"):
        if (out / name).is_dir():
            raise NilValueError(f"{out / name}: is a directory; --plot needs to write a PNG there")
    paths = [out / "loss_vs_ratio.png", out / "ratio_star_vs_budget.png"]
    _loss_vs_ratio(fit, _seed_points(cols), paths[0])
    _ratio_star_vs_budget(fit, paths[1])
    f = fit.frontier.get(fit.columns["budget"])
    if f is not None and f.note is None:
        paths.append(out / "frontier.png")
        _frontier(fit, paths[-1])
    metrics = [m for m in _estimable_metrics(fit, list(cols.metrics))
               if all_metrics or m in named or not is_per_layer(m)]
    if metrics:
        paths.append(out / "metric_vs_loss.png")
        _metric_vs_loss(fit, cols, metrics, paths[-1])
    return paths

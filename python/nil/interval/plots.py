"""Figures of an interval fit, written as PNGs with matplotlib's Agg backend (no display needed).

- ``loss_vs_ratio.png``: per budget, seed-mean loss (± s.e.) against R on a log axis, the smooth
  fit, its ε-band (shaded), R̂* with its bootstrap CI, the argmin and the reference's span band.
- ``ratio_star_vs_budget.png``: R̂* against N with CIs, the argmins, the stability line and both
  cross-budget intervals.
- ``frontier.png``: best loss against N with the fitted power law.
- ``metric_vs_loss.png``: each metric against seed-mean loss across shapes, coloured by budget.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ._columns import Columns
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
    ax.yaxis.set_minor_formatter(plain if hi / lo < 10 else NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=8)


def _loss_vs_ratio(fit: IntervalFit, path: Path) -> None:
    import matplotlib.pyplot as plt

    nb = len(fit.budgets)
    ncol = min(4, nb)
    nrow = math.ceil(nb / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.9 * nrow), squeeze=False, sharex=True)
    for ax in axes.flat[nb:]:
        ax.set_visible(False)
    for ax, b in zip(axes.flat, fit.budgets):
        r = np.asarray(b.ratios)
        m = np.asarray(b.mean_loss)
        se = np.nan_to_num(np.asarray(b.se))
        s = b.smooth
        if math.isfinite(s.band_lo):
            ax.axvspan(s.band_lo, s.band_hi, color="tab:blue", alpha=0.12, lw=0, label=f"smooth ε-band")
        ax.hlines(b.argmin_loss * (1 + fit.eps), b.span_lo, b.span_hi, color="tab:orange", lw=2.5,
                  label="reference span band")
        ax.errorbar(r, m, yerr=se, fmt="o", ms=3.5, color="0.2", ecolor="0.5", capsize=2, label="seed mean ± s.e.")
        ax.plot([b.argmin_ratio], [b.argmin_loss], marker="*", ms=11, color="tab:orange", ls="none", label="argmin")
        if s.vertex != "no_fit":
            grid = np.exp(np.linspace(math.log(r.min()), math.log(r.max()), 200))
            u = np.log(grid)
            ax.plot(grid, s.coef[0] + s.coef[1] * u + s.coef[2] * u * u, color="tab:blue", lw=1.5, label="quadratic in ln R")
        if math.isfinite(s.ratio_star):
            ax.axvline(s.ratio_star, color="tab:blue", ls="--", lw=1)
            ci = b.ratio_star_ci
            if math.isfinite(ci.lo):
                ax.axvspan(ci.lo, ci.hi, color="tab:blue", alpha=0.25, lw=0)
        if s.outlier_ratio is not None:
            k = int(np.argmin(np.abs(r - s.outlier_ratio)))
            ax.plot([r[k]], [m[k]], marker="x", ms=9, color="tab:red", ls="none", label="dropped outlier")
        flag = "" if s.vertex == "interior" else f" ({s.vertex.replace('_', ' ')})"
        ax.set_title(_fmt_budget(b.budget) + flag, fontsize=10)
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both", lw=0.5)
    for ax in axes[-1]:
        ax.set_xlabel("depth / width ratio R")
    for ax in axes[:, 0]:
        ax.set_ylabel(fit.columns["loss"])
    handles, labels = axes.flat[0].get_legend_handles_labels()
    legend_cols = min(3 if nb < 3 else 6, len(labels))  # narrow figures get a taller legend
    legend_rows = math.ceil(len(labels) / max(legend_cols, 1))
    fig.legend(handles, labels, loc="lower center", ncol=legend_cols, fontsize=8, frameon=False)
    fig.suptitle(f"Loss against shape per budget (ε = {fit.eps:g}; shaded: R̂* {fit.ci:.0%} CI)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06 * legend_rows / nrow, 1, 0.96))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _ratio_star_vs_budget(fit: IntervalFit, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    n = np.array([b.budget for b in fit.budgets])
    star = np.array([b.smooth.ratio_star for b in fit.budgets])
    lo = np.array([b.ratio_star_ci.lo for b in fit.budgets])
    hi = np.array([b.ratio_star_ci.hi for b in fit.budgets])
    if not fit.smooth_interval.empty:
        ax.axhspan(fit.smooth_interval.lo, fit.smooth_interval.hi, color="tab:blue", alpha=0.12, lw=0,
                   label="interval (nil: ∩ smooth bands)")
    if not fit.interval.empty:
        for k, y in enumerate((fit.interval.lo, fit.interval.hi)):
            ax.axhline(y, color="tab:orange", ls="--", lw=1.2,
                       label="interval (reference: ∩ span bands)" if k == 0 else None)
    ok = np.isfinite(star)
    yerr = np.vstack([star - np.where(np.isfinite(lo), lo, star), np.where(np.isfinite(hi), hi, star) - star])
    ax.errorbar(n[ok], star[ok], yerr=yerr[:, ok], fmt="o", color="tab:blue", capsize=3, label=f"R̂* ({fit.ci:.0%} CI)")
    ax.plot(n, [b.argmin_ratio for b in fit.budgets], marker="*", ms=9, ls="none", color="tab:orange", label="argmin R")
    st = fit.stability
    if math.isfinite(st.slope):
        g = np.geomspace(n.min(), n.max(), 50)
        ci = st.slope_ci
        ci_txt = f" [{ci.lo:.3f}, {ci.hi:.3f}]" if math.isfinite(ci.lo) else ""
        ax.plot(g, np.exp(st.intercept + st.slope * np.log(g)), color="0.3", lw=1,
                label=f"ln R̂* = a + s ln N, s = {st.slope:.3f}{ci_txt}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axis(ax)
    ax.set_xlabel(f"budget N ({fit.columns['budget']})")
    ax.set_ylabel("depth / width ratio R")
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.legend(fontsize=8)
    ax.set_title("Optimal shape against budget", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _frontier(fit: IntervalFit, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    n = np.array([b.budget for b in fit.budgets])
    best = np.array([b.argmin_loss for b in fit.budgets])
    ax.plot(n, best, "o", color="0.2", label="best loss per budget")
    f = fit.frontier.get(fit.columns["budget"])
    if f is not None and math.isfinite(f.a):
        g = np.geomspace(n.min(), n.max(), 50)
        ax.plot(g, f.a * g**f.b, color="tab:blue", label=f"${f.a:.3g}\\cdot N^{{{f.b:.3f}}}$, R² = {f.r2:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axis(ax)
    ax.set_xlabel(f"budget N ({fit.columns['budget']})")
    ax.set_ylabel(f"best {fit.columns['loss']}")
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.legend(fontsize=8)
    ax.set_title("Frontier power law", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _metric_vs_loss(fit: IntervalFit, cols: Columns, path: Path) -> None:
    import matplotlib.pyplot as plt

    metrics = list(cols.metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
    a = cols.arrays
    b_all, r_all, l_all = a[cols.budget], a[cols.ratio], a[cols.loss]
    cmap = plt.get_cmap("viridis")
    budgets = [b.budget for b in fit.budgets]
    for ax, metric in zip(axes[0], metrics):
        for k, n in enumerate(budgets):
            sel = (b_all == n) & np.isfinite(l_all)
            xs, ys = [], []
            for r in np.unique(r_all[sel]):
                rows = sel & (r_all == r)
                xs.append(np.nanmean(a[metric][rows]) if np.isfinite(a[metric][rows]).any() else np.nan)
                ys.append(l_all[rows].mean())
            rho = next((c.spearman for c in fit.correlations if c.budget == n and c.metric == metric), math.nan)
            ax.plot(xs, ys, "o", ms=4.5, alpha=0.85, color=cmap(k / max(1, len(budgets) - 1)),
                    label=f"{_fmt_budget(n)}, ρ = {rho:.2f}")
        ax.set_xlabel(metric)
        ax.set_ylabel(cols.loss)
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize=7)
    fig.suptitle("Metric against loss across shapes (seed means; ρ: Spearman)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def write_plots(fit: IntervalFit, cols: Columns, directory: str | Path) -> list[Path]:
    """Writes the figures of ``fit`` into ``directory`` (created if needed); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "loss_vs_ratio.png", out / "ratio_star_vs_budget.png", out / "frontier.png"]
    _loss_vs_ratio(fit, paths[0])
    _ratio_star_vs_budget(fit, paths[1])
    _frontier(fit, paths[2])
    if cols.metrics:
        paths.append(out / "metric_vs_loss.png")
        _metric_vs_loss(fit, cols, paths[-1])
    return paths

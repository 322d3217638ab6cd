"""PNG of MMLU-Pro against R_D/W (log x) with the interval shaded and families marked.

Why: the correlation table compresses the comparison into four numbers; the picture shows which
families drive them (the registry's families differ in depth-for-size and in training data).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from .._optional import require
from ..runs_table import atomic_write_bytes
from .compare import Comparison

__all__ = ["plot_comparison"]

_MARKERS = "osD^v<>pPhX*d"


def plot_comparison(comp: Comparison, path: str | Path) -> Path:
    """Writes the scatter plot of ``comp`` to ``path`` (PNG, written atomically) and returns it."""
    import io

    matplotlib: Any = require("matplotlib", "--plot", extra="plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.5), dpi=130)
    if comp.interval is not None:
        ax.axvspan(
            comp.interval.lo, comp.interval.hi, color="tab:green", alpha=0.15,
            label=f"interval [{comp.interval.lo:.4g}, {comp.interval.hi:.4g}]",
        )
    families = sorted({r.family for r in comp.rows})
    cmap = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    for i, fam in enumerate(families):
        rows = [r for r in comp.rows if r.family == fam]
        used = [r for r in rows if r.used]
        dropped = [r for r in rows if not r.used]
        color, marker = cmap(i % cmap.N), _MARKERS[i % len(_MARKERS)]
        if used:
            ax.scatter([r.ratio for r in used], [r.score for r in used], color=color, marker=marker, s=42, label=fam, zorder=3)
        if dropped:
            ax.scatter(
                [r.ratio for r in dropped], [r.score for r in dropped], facecolors="none", edgecolors=color,
                marker=marker, s=42, label=f"{fam} (hollow: at chance, excluded)", zorder=2,
            )
        for r in rows:
            ax.annotate(r.name, (r.ratio, r.score), fontsize=6, xytext=(3, 2), textcoords="offset points", color="0.3")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("R_D/W = layers / hidden size (log scale)")
    ax.set_ylabel("MMLU-Pro (%)")
    raw = comp.associations[0]
    stat = (
        f"raw r = {raw.pearson:+.2f} [{raw.ci_lo:+.2f}, {raw.ci_hi:+.2f}], n = {raw.n}"
        if math.isfinite(raw.pearson)
        else f"n = {raw.n}"
    )
    ax.set_title(f"MMLU-Pro ({comp.protocol}, {comp.variant}) vs depth/width ratio\n{comp.x_name}: {stat}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    out = Path(path)
    atomic_write_bytes(out, buf.getvalue())
    return out

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

    fig, _, _ = _figure(comp)  # checks for matplotlib first
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    out = Path(path)
    atomic_write_bytes(out, buf.getvalue())
    return out


def _figure(comp: Comparison) -> tuple[Any, Any, list[Any]]:
    """The figure, its axes and the display boxes of the point labels."""
    matplotlib: Any = require("matplotlib", "--plot", extra="plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 6.0), dpi=130)
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
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("R_D/W = layers / hidden size (log scale)")
    ax.set_ylabel("MMLU-Pro (%)")
    raw = comp.associations[0]
    ci = f" [{raw.ci_lo:+.2f}, {raw.ci_hi:+.2f}]" if math.isfinite(raw.ci_lo) and math.isfinite(raw.ci_hi) else " (no CI)"
    stat = f"raw r = {raw.pearson:+.2f}{ci}, n = {raw.n}" if math.isfinite(raw.pearson) else f"n = {raw.n}"
    ax.set_title(f"MMLU-Pro ({comp.protocol}, {comp.variant}) vs depth/width ratio\n{comp.x_name}: {stat}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    # the legend beside the axes, so that it covers no point and no label
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig, ax, _label_points(fig, ax, comp.rows)


# Offsets (points) tried in turn for a label, right of the point first; then further out, with a
# leader line. ha is the label's anchor side.
_OFFSETS = [(4, 2, "left"), (4, -8, "left"), (-4, 2, "right"), (-4, -8, "right"), (0, 7, "center"),
            (0, -13, "center")] + [(dx, dy, "left" if dx > 0 else "right")
                                     for dy in (12, -18, 22, -28, 32, -38, 42, -48, 52, -58, 2, -8)
                                     for dx in (10, -10, 30, -30, 60, -60)]


def _crosses(x: float, y: float, box: Any, taken: list[Any], r_px: float) -> bool:
    """Whether the leader line from the point (x, y) to the label ``box`` runs through another
    label or marker (sampled along the line, the point's own marker excepted)."""
    cx = min(max(x, box.x0), box.x1)
    cy = min(max(y, box.y0), box.y1)
    for k in range(1, 20):
        f = k / 20
        px, py = x + f * (cx - x), y + f * (cy - y)
        if abs(px - x) <= r_px and abs(py - y) <= r_px:
            continue
        if any(o.contains(px, py) for o in taken):
            return True
    return False


def _label_points(fig: Any, ax: Any, rows: list[Any]) -> list[Any]:
    """Names every point without two labels overlapping each other or a marker: points closer
    than a marker's size share one label; each label takes the first free place around its
    point (with a leader line when it had to move away)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_px = ax.transData.transform
    pts = [(tuple(to_px((r.ratio, r.score))), r) for r in rows]
    groups: list[list[Any]] = []
    for xy, r in sorted(pts, key=lambda p: (-p[0][1], p[0][0])):
        for g in groups:
            if abs(g[0][0][0] - xy[0]) < 6 and abs(g[-1][0][1] - xy[1]) < 12:
                g.append((xy, r))
                break
        else:
            groups.append([(xy, r)])
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    r_px = 4.5 * fig.dpi / 72  # marker half-size (s=42 is about 6.5 pt across)
    taken = [Bbox.from_extents(x - r_px, y - r_px, x + r_px, y + r_px) for (x, y), _ in pts]
    for g in groups:
        (x, y), first = g[0]
        text = " / ".join(dict.fromkeys(r.name for _, r in g))
        for i, (dx, dy, ha) in enumerate(_OFFSETS):
            far = i >= 6
            t = ax.annotate(
                text, (first.ratio, first.score), xytext=(dx, dy), textcoords="offset points", fontsize=6,
                color="0.25", ha=ha, va="bottom",
                arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5, "shrinkA": 0, "shrinkB": 3} if far else None,
            )
            t.update_positions(renderer)
            bb = Text.get_window_extent(t, renderer).expanded(1.04, 1.15)  # the text, not its leader line
            inside = frame.x0 <= bb.x0 and bb.x1 <= frame.x1 and frame.y0 <= bb.y0 and bb.y1 <= frame.y1
            if inside and not any(bb.overlaps(o) for o in taken) and not (far and _crosses(x, y, bb, taken, r_px)):
                taken.append(bb)
                break
            t.remove()
        else:  # no free place: the first one, so the name is still there
            t = ax.annotate(text, (first.ratio, first.score), xytext=(4, 2), textcoords="offset points",
                            fontsize=6, color="0.25")
            t.update_positions(renderer)
            taken.append(Text.get_window_extent(t, renderer))
    return taken[len(pts):]

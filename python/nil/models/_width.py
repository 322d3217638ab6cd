"""Width solver for a fixed parameter budget, from the closed forms only (docs/method.md §4.2, §8 R10).

Two bookkeeping rules of the reference:

- ``rule="pad"``: the largest width on the grid whose active count does not exceed the budget; the
  remainder is an unused zero "pad" parameter vector so every model holds exactly N parameters;
  shapes whose pad exceeds ``max_pad``·N are refused (``BudgetError``). (The reference's "closest of
  d−m, d, d+m not exceeding N" after a binary search is this same width.)
- ``rule="closest"``: the width whose count is closest to N, above or below (ties to the smaller
  width), no pad.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from ..errors import NilValueError
from ._registry import family

__all__ = ["BudgetError", "WidthSolution", "solve_width", "width_grid"]


class BudgetError(NilValueError):
    """No width on the grid satisfies the budget rule for this depth (too deep, too shallow, or
    the pad would exceed its maximum)."""


class WidthSolution(NamedTuple):
    """The width chosen for (budget, depth): active parameters and the zero pad up to the budget."""

    width: int
    active_params: int
    pad_params: int


def width_grid(
    family_name: str,
    *,
    multiple: int | None = None,
    min_width: int | None = None,
    max_width: int | None = None,
    **kw: Any,
) -> range:
    """The candidate widths: multiples of ``multiple`` in [min_width, max_width] (family defaults)."""
    fam = family(family_name)
    step = multiple if multiple is not None else fam.multiple(kw)
    lo = min_width if min_width is not None else fam.min_width(kw)
    hi = max_width if max_width is not None else fam.max_width
    first = -(-lo // step) * step
    if step < 1 or first > hi:
        raise NilValueError(f"{family_name}: empty width grid (multiple {step}, range [{lo}, {hi}])")
    return range(first, hi + 1, step)


def solve_width(
    family_name: str,
    budget: int,
    depth: int,
    rule: Literal["pad", "closest"] = "pad",
    *,
    multiple: int | None = None,
    min_width: int | None = None,
    max_width: int | None = None,
    max_pad: float | None = None,
    **kw: Any,
) -> WidthSolution:
    """Width for ``depth`` at ``budget`` under ``rule``; ``kw`` are the family's shape options
    (e.g. ``vocab``, ``seq_len``, ``head_dim`` for gpt). Raises ``BudgetError`` if none fits."""
    fam = family(family_name)
    if budget < 1 or depth < 1:
        raise NilValueError(f"{family_name}: budget and depth must be positive, found {budget}, {depth}")
    grid = width_grid(family_name, multiple=multiple, min_width=min_width, max_width=max_width, **kw)
    counts = [(w, fam.count(depth, w, **kw).total) for w in grid]
    if rule == "closest":
        w, n = min(counts, key=lambda c: (abs(c[1] - budget), c[0]))
        return WidthSolution(w, n, 0)
    if rule != "pad":
        raise NilValueError(f"width rule must be 'pad' or 'closest', found {rule!r}")
    fitting = [c for c in counts if c[1] <= budget]
    if not fitting:
        raise BudgetError(
            f"{family_name}: depth {depth} does not fit budget {budget:,}: the smallest width "
            f"{counts[0][0]} already has {counts[0][1]:,} parameters"
        )
    w, n = fitting[-1]  # counts grow with width, so the last fitting width is the largest
    limit = fam.max_pad if max_pad is None else max_pad
    pad = budget - n
    if pad > limit * budget:
        raise BudgetError(
            f"{family_name}: depth {depth} at budget {budget:,}: best width {w} leaves a pad of "
            f"{pad / budget:.1%}, above the maximum {limit:.0%}"
        )
    return WidthSolution(w, n, pad)

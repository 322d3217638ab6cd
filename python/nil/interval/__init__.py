"""``nil.fit_interval``: the efficient depth/width interval of a runs table, with uncertainty.

For each budget N: the reference's plain argmin ratio and ε-band (span, and nil's contiguous band),
and nil's smooth answer — a robust weighted quadratic of seed-mean loss in ln R with vertex R̂* and
ε-band — with stratified-bootstrap CIs. Across budgets: the interval (intersection of bands), the
stability slope of ln R̂* on ln N, frontier power laws, the joint law L(N, R) and metric–loss
correlations. The numerical work runs in nil's Rust core (METHOD.md §5, §8 R7; docs/interval.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import _core
from ..errors import NilValueError
from ._columns import Columns, resolve_columns
from ._result import (
    ArgminSummary,
    BudgetCorrelation,
    BudgetFit,
    Ci,
    CrossInterval,
    Frontier,
    IntervalFit,
    JointLaw,
    SmoothFit,
    Stability,
    from_core,
)

__all__ = [
    "ArgminSummary",
    "BudgetCorrelation",
    "BudgetFit",
    "Ci",
    "Columns",
    "CrossInterval",
    "Frontier",
    "IntervalFit",
    "JointLaw",
    "SmoothFit",
    "Stability",
    "fit_interval",
    "resolve_columns",
]


def fit_interval(
    runs: Any,
    budget: str = "budget",
    ratio: str = "ratio",
    loss: str = "test_loss",
    eps: float = 0.02,
    budgets: Sequence[float] | None = None,
    bootstrap: int = 10_000,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    frontier_x: Sequence[str] | None = None,
    *,
    ci: float = 0.95,
    permutations: int = 10_000,
    se_floor: float = 0.5,
    outlier_threshold: float = 4.0,
    window: int = 3,
    residual_bootstrap: bool = True,
) -> IntervalFit:
    """Fits the efficient interval of ``runs`` (one row per budget × shape × seed).

    ``runs``: pandas/polars DataFrame, pyarrow Table, dict of columns, or a CSV/Parquet path.
    ``budget``/``ratio``/``loss`` name the columns (reference names such as ``target_n``,
    ``depth``/``d_model``, ``test_ce`` are found when the defaults are absent; the choice is listed in
    ``.notes``). Rows sharing budget and ratio are seeds of one shape. ``eps``: relative tolerance of
    every band. ``budgets``: budgets whose bands are intersected into the interval (default all;
    every budget is still fitted). ``bootstrap``: replicates for percentile CIs at level ``ci``
    (0 skips them). ``metrics``: columns correlated with loss per budget (default: columns named like
    interaction metrics); ``frontier_x``: columns x of extra frontier laws loss* = a·x^b.
    A shape with one seed has nothing to resample: with ``residual_bootstrap`` (default) it is
    resampled from its budget's smooth fit (fitted value plus a drawn residual), so tables with one
    run per shape, like the reference's, still get intervals. ``se_floor``, ``outlier_threshold``,
    ``window``: see docs/interval.md.

    Rows with NaN loss are left out and counted; budgets with fewer than 3 shapes have no smooth fit
    (``vertex == "no_fit"``); an optimum at the sweep edge is flagged, never extrapolated.
    """
    if bootstrap < 0 or permutations < 0:
        raise NilValueError(f"fit_interval: bootstrap and permutations must be ≥ 0, found {bootstrap}, {permutations}")
    if window < 1:
        raise NilValueError(f"fit_interval: window must be ≥ 1, found {window}")
    cols = resolve_columns(runs, budget, ratio, loss, metrics, frontier_x)
    a = cols.arrays
    raw = _core.fit_interval(
        a[cols.budget],
        a[cols.ratio],
        a[cols.loss],
        [(m, a[m]) for m in cols.metrics],
        eps=float(eps),
        bootstrap=int(bootstrap),
        seed=int(seed),
        ci=float(ci),
        interval_budgets=None if budgets is None else [float(b) for b in budgets],
        frontier_x=list(frontier_x or ()),
        permutations=int(permutations),
        se_floor=float(se_floor),
        outlier_threshold=float(outlier_threshold),
        window=int(window),
        residual_bootstrap=bool(residual_bootstrap),
    )
    frontier = {}
    for f in raw["frontier"]:
        name = cols.budget if f["x"] == "budget" else f["x"]
        frontier[name] = from_core(Frontier, {**f, "x": name})
    raw.update(
        source=cols.source,
        columns={"budget": cols.budget, "ratio": cols.ratio, "loss": cols.loss, "metrics": list(cols.metrics)},
        notes=list(cols.notes),
        frontier=frontier,
    )
    fit = from_core(IntervalFit, {k: v for k, v in raw.items() if k != "frontier"} | {"frontier": {}})
    return IntervalFit(**{**fit.__dict__, "frontier": frontier})

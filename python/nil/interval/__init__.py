"""``nil.fit_interval``: the efficient depth/width interval of a runs table, with uncertainty.

For each budget N: the reference's plain argmin ratio and ε-band (span, and nil's contiguous band),
and nil's smooth answer — a unimodal, robust (Huber) spline fit of the seed losses in ln R,
profiled over the optimum's location: R̂*, a profile-likelihood confidence set that never leaves
the swept ratios, censoring at the sweep's edges, and the smooth ε-band with bootstrap CIs. Across
budgets: the interval (intersection of bands), the stability slope of ln R* on ln N from a joint
profile, frontier power laws, the joint law L(N, R) and metric–loss correlations. The numerical
work runs in nil's Rust core (docs/interval.md, docs/method.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

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
    PartialCorrelation,
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
    "PartialCorrelation",
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
    bootstrap: int = 500,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    frontier_x: Sequence[str] | None = None,
    *,
    ci: float = 0.95,
    permutations: int = 10_000,
    huber: bool = True,
    anomaly_threshold: float = 4.0,
    correlation: Literal["nil", "reference"] = "nil",
) -> IntervalFit:
    """Fits the efficient interval of ``runs`` (one row per budget × shape × seed).

    ``runs``: pandas/polars DataFrame, pyarrow Table, dict of columns, or a CSV/Parquet path.
    ``budget``/``ratio``/``loss`` name the columns (reference names such as ``target_n``,
    ``depth``/``d_model``, ``test_ce`` are found when the defaults are absent; the choice is listed in
    ``.notes``). Rows sharing budget and ratio are seeds of one shape. ``eps``: relative tolerance of
    every band. ``budgets``: budgets whose bands are intersected into the interval (default all;
    every budget is still fitted). ``ci``: level of every confidence set and interval.
    ``bootstrap``: replicates for the percentile CIs of bands, intervals and frontier laws (0
    skips them; the confidence set of R* and the stability slope are profile-likelihood sets and
    need none). ``metrics``: columns correlated with loss per budget (default: columns named like
    interaction metrics); ``frontier_x``: columns x of extra frontier laws loss* = a·x^b.
    ``huber``: robust loss with its scale from the seed-to-seed error. ``anomaly_threshold``: a
    shape whose mean lies further than this many standard errors from the fit is flagged and the
    fit is also reported without it (``BudgetFit.without_anomalous``); no shape is ever dropped.
    ``correlation="reference"`` computes the per-budget Pearson and Spearman as the reference's
    NTP sweep did (1e-12 in the Pearson denominator, sort-order ranks); partial correlations and
    CIs always follow nil's conventions.

    Rows with NaN loss are left out and counted; budgets with fewer than 4 shapes have no smooth
    fit (``status == "no_fit"``); an optimum at or next to a sweep edge is censored (only a
    one-sided bound), never extrapolated.
    """
    if bootstrap < 0 or permutations < 0:
        raise NilValueError(f"fit_interval: bootstrap and permutations must be ≥ 0, found {bootstrap}, {permutations}")
    if not anomaly_threshold > 0:
        raise NilValueError(f"fit_interval: anomaly_threshold must be > 0, found {anomaly_threshold}")
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
        huber=bool(huber),
        anomaly_threshold=float(anomaly_threshold),
        correlation=correlation,
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

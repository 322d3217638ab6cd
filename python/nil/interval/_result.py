"""Typed records of an interval fit (see docs/interval.md for every field's definition)."""

from __future__ import annotations

import math
import types
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

__all__ = [
    "Ci",
    "SmoothFit",
    "BudgetFit",
    "CrossInterval",
    "ArgminSummary",
    "Stability",
    "Frontier",
    "JointLaw",
    "BudgetCorrelation",
    "PartialCorrelation",
    "IntervalFit",
]


@dataclass(frozen=True)
class Ci:
    """A bootstrap percentile interval. ``defined``: fraction of replicates where the quantity
    existed; ``at_bound``: fraction where it sat at a bound of the sweep (censored). Replicates
    without a value count against both ends, so a quantity undefined too often has NaN bounds
    (not estimable) instead of percentiles of the defined replicates alone. NaN without bootstrap."""

    lo: float
    hi: float
    defined: float
    at_bound: float


@dataclass(frozen=True)
class SmoothFit:
    """nil's smooth answer for one budget: a unimodal, robust spline fit of loss in ln R profiled
    over the optimum's location (docs/interval.md). ``status`` is ``interior`` (``ratio_star`` is
    R̂*), ``censored_low`` (only "R* ≤ set_hi" is supported), ``censored_high`` ("R* ≥ set_lo") or
    ``no_fit``; the confidence set [set_lo, set_hi] never leaves the swept ratios."""

    status: str
    ratio_star: float
    loss_fit_min: float
    set_lo: float
    set_hi: float
    set_lo_at_bound: bool
    set_hi_at_bound: bool
    set_contiguous: bool
    level: float
    crit: float
    band_lo: float
    band_hi: float
    band_lo_at_bound: bool
    band_hi_at_bound: bool
    sigma: float
    sigma_source: str
    sigma_df: int
    anomalous_ratio: float | None
    anomalous_z: float
    n_shapes: int
    n_rows: int
    curve_ratio: list[float] = field(repr=False)
    curve_loss: list[float] = field(repr=False)
    profile_ratio: list[float] = field(repr=False)
    profile_stat: list[float] = field(repr=False)
    note: str | None

    @property
    def censored(self) -> bool:
        """Whether the optimum lies at or next to an edge of the sweep (no point estimate)."""
        return self.status in ("censored_low", "censored_high")

    def describe(self, fmt: str = ".3g") -> str:
        """The estimate as a user should read it: "R* = x [lo, hi]", "R* ≤ hi", "R* ≥ lo" or why
        there is none. A set edge at the sweep bound is marked with "≤"/"≥" inside the brackets."""
        if self.status == "no_fit":
            return f"not estimable ({self.note})" if self.note else "not estimable"
        lo = ("≤" if self.set_lo_at_bound else "") + format(self.set_lo, fmt)
        hi = ("≥" if self.set_hi_at_bound else "") + format(self.set_hi, fmt)
        if not math.isfinite(self.set_lo):
            ci = "no confidence set"
        else:
            ci = f"[{lo}, {hi}]"
        if self.status == "interior":
            return f"R* = {format(self.ratio_star, fmt)} {ci}"
        if self.status == "censored_low":
            return f"R* ≤ {format(self.set_hi, fmt)} (censored at the low edge)"
        return f"R* ≥ {format(self.set_lo, fmt)} (censored at the high edge)"


@dataclass(frozen=True)
class BudgetFit:
    """Everything computed for one budget: the reference's numbers and nil's smooth answer."""

    budget: float
    ratios: list[float]
    mean_loss: list[float]
    se: list[float]
    seeds: list[int]
    argmin_ratio: float
    argmin_loss: float
    argmin_tie: bool
    argmin_repeat: float
    span_lo: float
    span_hi: float
    contiguous_lo: float
    contiguous_hi: float
    span_is_contiguous: bool
    edge_excess_low: float
    edge_excess_high: float
    smooth: SmoothFit
    without_anomalous: SmoothFit | None
    band_lo_ci: Ci
    band_hi_ci: Ci
    span_lo_ci: Ci
    span_hi_ci: Ci


@dataclass(frozen=True)
class CrossInterval:
    """Intersection of per-budget bands over ``budgets``; NaN bounds and ``empty`` when every band
    exists and they are disjoint; ``missing``: budgets without a band, which make the intersection
    not estimable (NaN bounds, not ``empty``). ``lo_at_bound``/``hi_at_bound``: the edge is set by
    a band that reaches its sweep's end, so the interval may extend further there (a censored edge)."""

    lo: float
    hi: float
    empty: bool
    missing: list[float]
    lo_at_bound: bool
    hi_at_bound: bool
    budgets: list[float]
    lo_ci: Ci
    hi_ci: Ci


@dataclass(frozen=True)
class ArgminSummary:
    """The reference's summary of argmin ratios over the interval budgets, and edge excesses."""

    min: float
    max: float
    mean: float
    median: float
    mean_edge_excess_low: float
    mean_edge_excess_high: float


@dataclass(frozen=True)
class Stability:
    """Slope s of ln R* = intercept + s·ln N from the joint profile of the budgets with an
    uncensored optimum, with its profile confidence set [slope_lo, slope_hi] (NaN on a side that
    does not close: ``lo_unbounded``/``hi_unbounded``). ``note`` says why it is not estimable
    (fewer than 4 such budgets)."""

    slope: float
    intercept: float
    slope_lo: float
    slope_hi: float
    lo_unbounded: bool
    hi_unbounded: bool
    level: float
    crit: float
    n: int
    budgets: list[float]
    note: str | None


@dataclass(frozen=True)
class Frontier:
    """loss* = a·x^b by log–log least squares; R² on the linear scale with SS_tot + 1e-12. Not
    fitted (NaN, ``note``) from fewer than 3 budgets."""

    x: str
    a: float
    b: float
    r2: float
    n: int
    a_ci: Ci
    b_ci: Ci
    note: str | None


@dataclass(frozen=True)
class JointLaw:
    """L(N, R) = L∞ + a·N^(−β) + b·(ln R − ln R*)² fitted to every shape's seed-mean loss (needs
    ≥ 3 budgets); ``flags`` name what is not physical about a fit (L∞ < 0, b ≤ 0, ...)."""

    l_inf: float
    a: float
    beta: float
    b: float
    ratio_star: float
    rms: float
    rejected: int
    huber_delta: float
    n_points: int
    n_budgets: int
    converged: bool
    note: str | None
    flags: list[str]


@dataclass(frozen=True)
class BudgetCorrelation:
    """A metric against seed-mean loss across the shapes of one budget: Pearson (NaN on zero
    variance), average-rank Spearman, permutation p-values, pairs-bootstrap CIs."""

    budget: float
    metric: str
    n: int
    pearson: float
    spearman: float
    pearson_p: float
    spearman_p: float
    permutations: int
    pearson_ci: Ci
    spearman_ci: Ci


@dataclass(frozen=True)
class PartialCorrelation:
    """A metric against seed-mean loss over every shape of every budget, controlling for ln N:
    Pearson of the residuals of both on ln N, the same on average ranks, permutation p-values."""

    metric: str
    n: int
    pearson: float
    spearman: float
    pearson_p: float
    spearman_p: float
    permutations: int


@dataclass(frozen=True)
class IntervalFit:
    """The answer of :func:`nil.fit_interval`."""

    source: str
    columns: dict[str, Any]
    notes: list[str]
    eps: float
    ci: float
    bootstrap: int
    seed: int
    dropped_nonfinite: int
    budgets: list[BudgetFit]
    interval: CrossInterval
    smooth_interval: CrossInterval
    argmin_summary: ArgminSummary
    stability: Stability
    frontier: dict[str, Frontier]
    joint: JointLaw
    correlations: list[BudgetCorrelation]
    partial_correlations: list[PartialCorrelation]

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (NaN kept as float NaN; ``nil.cli._table.print_json`` nulls it)."""
        return asdict(self)

    def budget(self, n: float) -> BudgetFit:
        """The record of budget ``n``."""
        for b in self.budgets:
            if math.isclose(b.budget, n, rel_tol=1e-9):
                return b
        raise KeyError(f"budget {n} not in {[b.budget for b in self.budgets]}")


T = TypeVar("T")


def _coerce(t: Any, v: Any) -> Any:
    if is_dataclass(t) and isinstance(t, type):
        return from_core(t, v)
    if t is float:
        return math.nan if v is None else float(v)
    origin = get_origin(t)
    if origin is list:
        (arg,) = get_args(t)
        return [_coerce(arg, x) for x in v]
    if origin is tuple:
        return tuple(_coerce(get_args(t)[0], x) for x in v)
    if origin in (Union, types.UnionType):
        if v is None:
            return None
        inner = [a for a in get_args(t) if a is not type(None)]
        return _coerce(inner[0], v) if len(inner) == 1 else v
    return v


def from_core(cls: type[T], d: dict[str, Any]) -> T:
    """Builds a record from the core's dict, turning the None that stands for NaN back into NaN."""
    hints = get_type_hints(cls)
    return cls(**{f.name: _coerce(hints[f.name], d[f.name]) for f in fields(cls) if f.name in d})  # type: ignore[arg-type]

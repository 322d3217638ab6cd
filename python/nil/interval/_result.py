"""Typed records of an interval fit (see docs/interval.md for every field's definition)."""

from __future__ import annotations

import math
import types
from dataclasses import asdict, dataclass, fields, is_dataclass
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
    "IntervalFit",
]


@dataclass(frozen=True)
class Ci:
    """A bootstrap percentile interval; ``defined`` is the fraction of replicates where the
    quantity existed (e.g. an interior vertex); NaN bounds without bootstrap."""

    lo: float
    hi: float
    defined: float


@dataclass(frozen=True)
class SmoothFit:
    """Weighted quadratic ℓ(u) = c₀ + c₁u + c₂u² of seed-mean loss on u = ln R, and its ε-band."""

    coef: tuple[float, float, float]
    vertex: str
    ratio_star: float
    ratio_fit_min: float
    loss_fit_min: float
    band_lo: float
    band_hi: float
    outlier_ratio: float | None
    n_points: int
    rms: float


@dataclass(frozen=True)
class BudgetFit:
    """Everything computed for one budget: the reference's numbers and nil's smooth answer."""

    budget: float
    ratios: list[float]
    mean_loss: list[float]
    se: list[float]
    seeds: list[int]
    weighted: bool
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
    window: SmoothFit
    ratio_star_ci: Ci
    band_lo_ci: Ci
    band_hi_ci: Ci
    span_lo_ci: Ci
    span_hi_ci: Ci
    boundary_fraction: float


@dataclass(frozen=True)
class CrossInterval:
    """Intersection of per-budget bands over ``budgets``; NaN bounds and ``empty`` when disjoint."""

    lo: float
    hi: float
    empty: bool
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
    """Slope of ln R̂* on ln N (OLS over budgets with an interior vertex), its SE and bootstrap CI."""

    slope: float
    intercept: float
    slope_se: float
    n: int
    slope_ci: Ci


@dataclass(frozen=True)
class Frontier:
    """loss* = a·x^b by log–log least squares; R² on the linear scale with SS_tot + 1e-12."""

    x: str
    a: float
    b: float
    r2: float
    n: int
    a_ci: Ci
    b_ci: Ci


@dataclass(frozen=True)
class JointLaw:
    """L(N, R) = L∞ + a·N^(−β) + b·(ln R − ln R*)² fitted to every shape's seed-mean loss."""

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


@dataclass(frozen=True)
class BudgetCorrelation:
    """A metric against seed-mean loss across the shapes of one budget."""

    budget: float
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
        return v
    return v


def from_core(cls: type[T], d: dict[str, Any]) -> T:
    """Builds a record from the core's dict, turning the None that stands for NaN back into NaN."""
    hints = get_type_hints(cls)
    return cls(**{f.name: _coerce(hints[f.name], d[f.name]) for f in fields(cls) if f.name in d})  # type: ignore[arg-type]

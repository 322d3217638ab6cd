"""Neural Feature Ansatz checks: correlation of WᵀW with AGOP^γ and the best exponent γ."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from . import _core

Criterion = Literal["pearson", "cosine", "pearson_offdiag"]

__all__ = ["NfaCorrelation", "NfaPowerFit", "nfa_correlation", "fit_nfa_power"]


@dataclass(frozen=True)
class NfaCorrelation:
    """Agreement of A = WᵀW with G^γ: uncentred Frobenius cosine and Pearson (all, off-diagonal)."""

    gamma: float
    cosine: float
    pearson_all: float
    pearson_offdiag: float

    def to_dict(self) -> dict[str, Any]:
        """A plain dict."""
        return asdict(self)


@dataclass(frozen=True)
class NfaPowerFit:
    """The γ maximising ``criterion`` on [lo, hi], the correlations there and at γ = ½ and 1, and the
    spectral estimate (slope of log uᵢᵀAuᵢ on log λᵢ; exactly γ when A = c·G^γ)."""

    gamma: float
    criterion: str
    best: NfaCorrelation
    at_half: NfaCorrelation
    at_one: NfaCorrelation
    spectral_gamma: float
    spectral_points: int

    def to_dict(self) -> dict[str, Any]:
        """A plain dict."""
        return asdict(self)


def _f64(m: Any) -> Any:
    return np.ascontiguousarray(np.asarray(m, dtype=np.float64))


def nfa_correlation(wtw: Any, agop: Any, power: float = 1.0) -> NfaCorrelation:
    """Correlations between ``wtw`` and ``agop``^``power`` (both symmetrised; the power by a float64
    symmetric eigendecomposition with eigenvalues below 1e-12·λ_max set to zero)."""
    return NfaCorrelation(**_core.nfa_correlation(_f64(wtw), _f64(agop), float(power)))


def fit_nfa_power(
    wtw: Any,
    agop: Any,
    criterion: Criterion = "pearson",
    lo: float = 0.0,
    hi: float = 2.0,
) -> NfaPowerFit:
    """The NFA exponent γ̂ maximising ``criterion`` over [lo, hi] (grid of 0.05, then golden
    section to 1e-7), with the correlations at γ̂, ½ and 1 and the spectral slope estimate."""
    raw = _core.fit_nfa_power(_f64(wtw), _f64(agop), criterion, float(lo), float(hi))
    return NfaPowerFit(
        gamma=raw["gamma"],
        criterion=raw["criterion"],
        best=NfaCorrelation(**raw["best"]),
        at_half=NfaCorrelation(**raw["at_half"]),
        at_one=NfaCorrelation(**raw["at_one"]),
        spectral_gamma=raw["spectral_gamma"],
        spectral_points=raw["spectral_points"],
    )

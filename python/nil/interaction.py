"""``interaction_stats``: AOFE, its ratio, weighted mean cos², spectrum and null baselines of a matrix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from . import _core
from .errors import ShapeError

Convention = Literal["exact", "reference-sweep", "reference-scan"]

__all__ = ["InteractionStats", "interaction_stats"]


@dataclass(frozen=True)
class InteractionStats:
    """Interaction statistics of one symmetric k×k matrix M (docs/method.md §2.1–2.3, §8 R5).

    ``aofe`` is the off-diagonal energy Σ_{i≠j} M_ij²; ``aofe_ratio`` = aofe / ``frobenius``.
    ``degenerate`` marks a zero, empty or non-finite matrix, whose ratios are NaN (exact convention).
    ``null_*`` fields are what the ratio would be by size or spectrum alone.
    """

    k: int
    frobenius: float
    diagonal: float
    aofe: float
    aofe_ratio: float
    weighted_mean_cos2: float
    trace: float
    participation_ratio: float
    effective_rank: float
    top_share: float
    degenerate: bool
    spectrum: bool
    null_rank_one: float
    null_rotation: float
    excess_over_rotation: float
    gaussian_rank: float
    convention: str = "exact"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (NaN kept as float NaN)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], convention: str = "exact") -> InteractionStats:
        """Builds the record from the core's dict."""
        return cls(convention=convention, **{k: d[k] for k in _FIELDS})


_FIELDS = [f for f in InteractionStats.__dataclass_fields__ if f != "convention"]


def interaction_stats(
    m: Any, convention: Convention = "exact", *, spectrum: bool = True
) -> InteractionStats:
    """Interaction statistics of a square matrix (symmetrised first, computed in float64).

    ``convention="exact"`` (nil): off-diagonal energy summed directly; NaN ratios with
    ``degenerate=True`` on a zero or non-finite matrix. ``"reference-sweep"`` and ``"reference-scan"``
    reproduce the reference implementation's conventions A and B, epsilons included.
    ``spectrum=False`` skips the eigenvalues (effective_rank and top_share are then NaN).

    >>> s = interaction_stats(np.array([[2.0, 1.0], [1.0, 3.0]]))
    >>> round(s.aofe_ratio, 4)
    0.1333
    """
    arr = np.asarray(m, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ShapeError(f"interaction_stats: expected a square matrix, found shape {arr.shape}")
    d = _core.interaction_stats(arr, convention, bool(spectrum))
    return InteractionStats.from_dict(d, convention)


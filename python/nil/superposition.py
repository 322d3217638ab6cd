"""``superposition_stats``: how densely a feature matrix W (features × dim) packs its features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._dtypes import as_rows
from .interaction import InteractionStats

__all__ = ["Summary", "SuperpositionStats", "superposition_stats"]


@dataclass(frozen=True)
class Summary:
    """Mean, standard deviation, min, median and max of a per-row quantity."""

    mean: float
    std: float
    min: float
    median: float
    max: float


@dataclass(frozen=True, repr=False)
class SuperpositionStats:
    """Superposition statistics of W (rows are features) beside a Gaussian null of the same shape.

    ``mean_sq_overlap``: mean over pairs of (ŵᵢ·ŵⱼ)² of normalised non-zero rows (null 1/dim).
    ``dimensionality``: per-feature Dᵢ = ‖wᵢ‖⁴ / Σⱼ (wᵢ·wⱼ)² (Elhage et al., 2022).
    ``wtw``: interaction statistics of WᵀW / features. ``null_*``: expected values for iid
    N(0, σ²) entries with σ² = W's mean squared entry (see docs/method.md for the formulas).
    Its repr is one line of the headline numbers (``wtw_matrix`` shown by its shape only).
    """

    features: int
    dim: int
    zero_rows: int
    row_norms: Summary
    fraction_represented: dict[float, float]
    mean_sq_overlap: float
    dimensionality: Summary
    dimensionality_sum: float
    wtw: InteractionStats
    wtw_matrix: npt.NDArray[np.float64]
    null_sigma2: float
    null_row_norm_mean: float
    null_fraction_represented: dict[float, float]
    null_mean_sq_overlap: float
    null_dimensionality_mean: float
    null_wtw_aofe_ratio: float
    null_wtw_weighted_mean_cos2: float
    null_wtw_participation_ratio: float

    def __repr__(self) -> str:
        m = self.wtw_matrix
        return (
            f"SuperpositionStats(features={self.features}, dim={self.dim}, zero_rows={self.zero_rows}, "
            f"mean_sq_overlap={self.mean_sq_overlap:.4g} (null {self.null_mean_sq_overlap:.4g}), "
            f"dimensionality.mean={self.dimensionality.mean:.4g} (null {self.null_dimensionality_mean:.4g}), "
            f"wtw.aofe_ratio={self.wtw.aofe_ratio:.4g} (null {self.null_wtw_aofe_ratio:.4g}), "
            f"wtw_matrix=<{'x'.join(str(n) for n in m.shape)} {m.dtype}>)"
        )

    def to_dict(self, include_matrix: bool = False) -> dict[str, Any]:
        """A plain dict; ``wtw_matrix`` only when asked for."""
        d = asdict(self)
        if not include_matrix:
            d.pop("wtw_matrix")
        d["fraction_represented"] = {str(k): v for k, v in self.fraction_represented.items()}
        d["null_fraction_represented"] = {
            str(k): v for k, v in self.null_fraction_represented.items()
        }
        return d


def superposition_stats(
    w: Any,
    thresholds: Sequence[float] = (0.5, 1.0),
    *,
    spectrum: bool = True,
    dtype: str | None = None,
) -> SuperpositionStats:
    """Superposition statistics of W (features × dim: an embedding, a weight with rows as features).

    Streams W in row blocks: no features×features matrix and no float64 copy of W is held, so a
    256,000 × 4,096 float32 matrix needs about 0.3 GB beyond itself. Accepts float64/32/16,
    bfloat16 and torch tensors. ``spectrum=False`` skips WᵀW's eigenvalues.
    """
    arr, kind = as_rows(w, "superposition_stats: W", dtype)
    bits = kind if kind in ("float16", "bfloat16") else None
    raw = _core.superposition_stats(arr, [float(t) for t in thresholds], bool(spectrum), bits)
    return SuperpositionStats(
        features=raw["features"],
        dim=raw["dim"],
        zero_rows=raw["zero_rows"],
        row_norms=Summary(**raw["row_norms"]),
        fraction_represented=dict(raw["fraction_represented"]),
        mean_sq_overlap=raw["mean_sq_overlap"],
        dimensionality=Summary(**raw["dimensionality"]),
        dimensionality_sum=raw["dimensionality_sum"],
        wtw=InteractionStats.from_dict(raw["wtw"]),
        wtw_matrix=raw["wtw_matrix"],
        null_sigma2=raw["null_sigma2"],
        null_row_norm_mean=raw["null_row_norm_mean"],
        null_fraction_represented=dict(raw["null_fraction_represented"]),
        null_mean_sq_overlap=raw["null_mean_sq_overlap"],
        null_dimensionality_mean=raw["null_dimensionality_mean"],
        null_wtw_aofe_ratio=raw["null_wtw_aofe_ratio"],
        null_wtw_weighted_mean_cos2=raw["null_wtw_weighted_mean_cos2"],
        null_wtw_participation_ratio=raw["null_wtw_participation_ratio"],
    )

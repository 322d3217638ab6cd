"""``LayerAgop``: one captured AGOP (a layer's input AGOP, or the projected output AGOP) with its
accumulator, statistics and the settings that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..accumulator import AgopAccumulator
from ..errors import NilValueError
from ..interaction import InteractionStats, interaction_stats

__all__ = ["LayerAgop"]


@dataclass(repr=False)
class LayerAgop:
    """The AGOP of one layer: ``matrix`` = (1/count)·Σ g gᵀ in float64 (d×d).

    ``kind``: ``"input"`` (E[JᵀJ] at the layer's input, the NFA object), ``"conv"`` (the same over
    unfolded receptive fields) or ``"output"`` (the projected output Gram E[(PJ)(PJ)ᵀ], k×k).
    ``count`` is the number of rows averaged: (samples or tokens) × probes for input AGOPs, samples
    for the output Gram. ``accumulator`` keeps the exact sum, so records of the same layer merge.
    """

    name: str
    kind: str
    accumulator: AgopAccumulator
    settings: dict[str, Any] = field(default_factory=dict)
    _stats: InteractionStats | None = field(default=None, repr=False, compare=False)

    @property
    def matrix(self) -> npt.NDArray[np.float64]:
        """The AGOP as a symmetric float64 array (NaN before any row)."""
        return self.accumulator.matrix()

    @property
    def count(self) -> int:
        """Rows averaged into ``matrix``."""
        return self.accumulator.count

    @property
    def nonfinite(self) -> int:
        """Rows left out because they held NaN or infinity."""
        return self.accumulator.nonfinite

    @property
    def dim(self) -> int:
        """Side of the matrix."""
        return self.accumulator.dim

    @property
    def stats(self) -> InteractionStats:
        """``nil.interaction_stats`` of the matrix (computed once)."""
        if self._stats is None:
            self._stats = interaction_stats(self.matrix)
        return self._stats

    def merge(self, other: LayerAgop) -> None:
        """Adds another capture of the same layer (e.g. more batches, another process)."""
        if other.name != self.name or other.kind != self.kind:
            raise NilValueError(
                f"LayerAgop.merge: expected layer {self.name!r} ({self.kind}), "
                f"found {other.name!r} ({other.kind})"
            )
        self.accumulator.merge(other.accumulator)
        self._stats = None

    def __repr__(self) -> str:
        # The statistics are shown once computed; a repr never starts a d×d eigendecomposition.
        ratio = "" if self._stats is None else f", aofe_ratio={self._stats.aofe_ratio:.4g}"
        return (f"LayerAgop({self.name!r}, kind={self.kind!r}, dim={self.dim}, rows={self.count}, "
                f"nonfinite={self.nonfinite}{ratio})")

    def to_row(self) -> dict[str, Any]:
        """One flat row: ``layer, kind, dim, rows, nonfinite`` and every interaction statistic, the
        columns of ``nil.analyze``'s records (``LayerRecord.to_dict``) plus ``kind``."""
        return {"layer": self.name, "kind": self.kind, "dim": self.dim, "rows": self.count,
                "nonfinite": self.nonfinite} | self.stats.to_dict()

    def to_dict(self, include_matrix: bool = False) -> dict[str, Any]:
        """A plain dict: name, kind, dim, counts, settings, statistics (and the matrix if asked)."""
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dim": self.dim,
            "count": self.count,
            "nonfinite": self.nonfinite,
            "settings": dict(self.settings),
            "stats": self.stats.to_dict(),
        }
        if include_matrix:
            d["matrix"] = self.matrix.tolist()
        return d

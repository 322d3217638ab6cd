"""``AgopAccumulator``: streaming average gradient outer product (1/n)·GᵀG in float64."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core
from ._dtypes import as_rows
from .errors import NilValueError

NonFinite = Literal["raise", "skip"]
PrecisionName = Literal["fast", "exact"]

__all__ = ["AgopAccumulator", "save_accumulators", "load_accumulators"]


def _fast(precision: str) -> bool:
    if precision not in ("fast", "exact"):
        raise NilValueError(f"precision: expected 'fast' or 'exact', found {precision!r}")
    return precision == "fast"


def _skip(nonfinite: str) -> bool:
    if nonfinite not in ("raise", "skip"):
        raise NilValueError(f"nonfinite: expected 'raise' or 'skip', found {nonfinite!r}")
    return nonfinite == "skip"


class AgopAccumulator:
    """Streams gradient rows g (one per sample, token and probe) into S = Σ g gᵀ in float64.

    Products of float32/float16/bfloat16 inputs are exact in float64; only the sums round.
    ``matrix()`` is the AGOP (1/n)·S. Accumulators of one ``dim`` merge exactly, so partial
    results from batches, processes or machines combine into the single-pass answer.

    >>> acc = AgopAccumulator(4)
    >>> acc.update(np.ones((3, 4), np.float32))
    >>> acc.count, acc.matrix()[0, 0]
    (3, 1.0)
    """

    __slots__ = ("_raw", "nonfinite_policy", "precision")

    def __init__(
        self, dim: int, nonfinite: NonFinite = "raise", precision: PrecisionName = "fast"
    ) -> None:
        _skip(nonfinite)
        _fast(precision)
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= int(dim) <= _core.MAX_DIM:
            raise NilValueError(f"AgopAccumulator: dim must be an integer in 1..{_core.MAX_DIM}, found {dim!r}")
        self._raw = _core.AgopAccumulator(int(dim))
        self.nonfinite_policy: NonFinite = nonfinite
        self.precision: PrecisionName = precision

    @classmethod
    def _wrap(
        cls, raw: Any, nonfinite: NonFinite = "raise", precision: PrecisionName = "fast"
    ) -> AgopAccumulator:
        obj = cls.__new__(cls)
        obj._raw = raw
        obj.nonfinite_policy = nonfinite
        obj.precision = precision
        return obj

    @property
    def dim(self) -> int:
        """Row length d (the matrix is d×d)."""
        return int(self._raw.dim)

    @property
    def count(self) -> int:
        """Rows accumulated so far."""
        return int(self._raw.count)

    @property
    def nonfinite(self) -> int:
        """Rows skipped because they held NaN or infinity (only with ``nonfinite="skip"``)."""
        return int(self._raw.nonfinite)

    def update(
        self,
        rows: Any,
        *,
        nonfinite: NonFinite | None = None,
        dtype: str | None = None,
        precision: PrecisionName | None = None,
    ) -> None:
        """Adds every row of a 2-D array (float64/32/16, bfloat16, or uint16 words with ``dtype``).

        Any memory layout is read in place. A non-finite value raises ``NonFiniteError`` and leaves
        the accumulator unchanged, unless ``nonfinite="skip"`` (here or at construction).
        """
        skip = _skip(nonfinite or self.nonfinite_policy)
        arr, kind = as_rows(rows, "AgopAccumulator.update", dtype)
        fast = _fast(precision or self.precision)
        if kind == "float32":
            self._raw.update_f32(arr, skip, fast)
        elif kind == "float64":
            self._raw.update_f64(arr, skip, fast)
        else:
            self._raw.update_bits(arr, kind, skip, fast)

    def merge(self, other: AgopAccumulator) -> None:
        """Adds another accumulator's rows (same ``dim``) to this one."""
        if not isinstance(other, AgopAccumulator):
            raise TypeError(f"merge: expected an AgopAccumulator, found {type(other).__name__}")
        self._raw.merge(other._raw)

    def matrix(self) -> npt.NDArray[np.float64]:
        """The AGOP (1/n)·GᵀG as a symmetric float64 array; all NaN before any row arrives."""
        return self._raw.matrix()

    def sum(self) -> npt.NDArray[np.float64]:
        """The exact sum GᵀG (what files store and merges add)."""
        return self._raw.sum()

    @classmethod
    def from_sum(
        cls, sum: Any, count: int, nonfinite: int = 0, *, policy: NonFinite = "raise"
    ) -> AgopAccumulator:
        """Rebuilds an accumulator from an exact sum GᵀG (d×d, symmetrised) and its row counts.

        This is how sums formed elsewhere (e.g. in float64 on a GPU by ``nil.capture``) become
        mergeable, saveable accumulators.
        """
        arr = np.ascontiguousarray(np.asarray(sum, dtype=np.float64))
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise NilValueError(
                f"AgopAccumulator.from_sum: expected a square d×d sum, found shape {arr.shape}"
            )
        if not (0 <= int(count) < 2**64 and 0 <= int(nonfinite) < 2**64):
            raise NilValueError(
                f"AgopAccumulator.from_sum: counts must be integers in 0..2**64-1, found count={count}, "
                f"nonfinite={nonfinite}"
            )
        sym = np.ascontiguousarray((arr + arr.T) * 0.5)
        return cls._wrap(_core.AgopAccumulator.from_sum(sym, int(count), int(nonfinite)), policy)

    def copy(self) -> AgopAccumulator:
        """An independent copy."""
        return AgopAccumulator._wrap(self._raw.copy(), self.nonfinite_policy, self.precision)

    def save(self, path: str | os.PathLike[str], name: str = "agop") -> None:
        """Writes the accumulator to a safetensors file atomically (temporary file, fsync, rename)."""
        save_accumulators(path, {name: self})

    @classmethod
    def load(cls, path: str | os.PathLike[str], name: str | None = None) -> AgopAccumulator:
        """Reads an accumulator saved by ``save`` (or one named entry of a multi-layer file)."""
        items = load_accumulators(path)
        if name is None:
            if len(items) != 1:
                raise NilValueError(
                    f"{os.fspath(path)}: holds {len(items)} accumulators {sorted(items)}; pass name="
                )
            return next(iter(items.values()))
        if name not in items:
            raise NilValueError(f"{os.fspath(path)}: no accumulator named {name!r}; found {sorted(items)}")
        return items[name]

    def __repr__(self) -> str:
        return f"AgopAccumulator(dim={self.dim}, count={self.count}, nonfinite={self.nonfinite})"


def save_accumulators(
    path: str | os.PathLike[str],
    accumulators: Mapping[str, AgopAccumulator],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Writes named accumulators (e.g. one per layer) to one ``agop.safetensors`` file atomically."""
    entries = [(str(k), v._raw) for k, v in accumulators.items()]
    _core.save_accumulators(os.fspath(path), entries, dict(metadata or {}))


def load_accumulators(path: str | os.PathLike[str]) -> dict[str, AgopAccumulator]:
    """Reads every accumulator of a file written by ``save_accumulators``, by name."""
    return {n: AgopAccumulator._wrap(raw) for n, raw in _core.load_accumulators(os.fspath(path))}

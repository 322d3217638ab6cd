"""Raw bindings of nil's Rust core (checked against the built module by mypy.stubtest).

Users call the typed API in ``nil``; these signatures are the contract between the two layers."""

from collections.abc import Callable
from os import PathLike
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "AgopAccumulator",
    "correlation",
    "fit_interval",
    "fit_nfa_power",
    "interaction_stats",
    "load_accumulators",
    "nfa_correlation",
    "num_threads",
    "save_accumulators",
    "superposition_stats",
    "shard_write",
    "manifest_write",
    "manifest_read",
    "shard_stream",
    "shard_verify",
    "file_blake3",
    "verify_capture",
    "reduce_capture",
    "partial_write",
    "partial_read",
    "partial_merge",
    "input_kind",
    "MAX_DIM",
    "MAX_LAYERS",
    "MAX_NAME_BYTES",
    "RESERVED_NAMES",
    "MIN_SHAPES",
    "subset_transform",
    "low_order_masks",
    "low_order_transform",
    "and_or_decompose",
]

@final
class AgopAccumulator:
    def __new__(cls, dim: int) -> AgopAccumulator: ...
    def update_f32(self, rows: npt.NDArray[np.float32], skip_nonfinite: bool, fast: bool) -> None: ...
    def update_f64(self, rows: npt.NDArray[np.float64], skip_nonfinite: bool, fast: bool) -> None: ...
    def update_bits(
        self, rows: npt.NDArray[np.uint16], dtype: str, skip_nonfinite: bool, fast: bool
    ) -> None: ...
    def merge(self, other: AgopAccumulator) -> None: ...
    def matrix(self) -> npt.NDArray[np.float64]: ...
    def sum(self) -> npt.NDArray[np.float64]: ...
    @property
    def count(self) -> int: ...
    @property
    def nonfinite(self) -> int: ...
    @property
    def dim(self) -> int: ...
    def copy(self) -> AgopAccumulator: ...
    @staticmethod
    def from_sum(sum: npt.NDArray[np.float64], count: int, nonfinite: int = 0) -> AgopAccumulator: ...

def save_accumulators(
    path: str | PathLike[str], entries: list[tuple[str, AgopAccumulator]], metadata: dict[str, str]
) -> None: ...
def load_accumulators(path: str | PathLike[str]) -> list[tuple[str, AgopAccumulator]]: ...
def interaction_stats(m: npt.NDArray[np.float64], convention: str, spectrum: bool) -> dict[str, Any]: ...
def superposition_stats(
    w: npt.NDArray[Any], thresholds: list[float], spectrum: bool, dtype: str | None = None
) -> dict[str, Any]: ...
def nfa_correlation(
    wtw: npt.NDArray[np.float64], agop: npt.NDArray[np.float64], power: float
) -> dict[str, float]: ...
def fit_nfa_power(
    wtw: npt.NDArray[np.float64], agop: npt.NDArray[np.float64], criterion: str, lo: float, hi: float
) -> dict[str, Any]: ...
def num_threads() -> int: ...

# Gradient shards (rust/python/src/shards.rs; typed API in nil.shards).
def shard_write(
    path: str | PathLike[str],
    tensors: list[tuple[str, str, int, int, npt.NDArray[np.uint8]]],
    metadata: dict[str, str],
) -> tuple[int, str]: ...
def manifest_write(dir: str | PathLike[str], text: str) -> None: ...
def manifest_read(dir: str | PathLike[str]) -> str: ...
def shard_verify(dir: str | PathLike[str], index: int) -> None: ...
def shard_stream(
    dir: str | PathLike[str],
    layers: list[tuple[str, int]],
    slots: list[npt.NDArray[np.uint8]],
    acquire: Callable[[], int],
    ready: Callable[[int, int, str, int, int], None],
    verified: Callable[[int, str], None],
) -> None: ...
def file_blake3(path: str | PathLike[str]) -> str: ...
def verify_capture(dir: str | PathLike[str]) -> dict[str, Any]: ...
def reduce_capture(
    dir: str | PathLike[str],
    layers: list[str] | None = None,
    skip_nonfinite: bool = False,
    fast: bool = True,
    progress: Any | None = None,
    shards: tuple[int, int] | None = None,
) -> tuple[list[tuple[str, AgopAccumulator]], list[str]]: ...
def partial_write(
    path: str | PathLike[str],
    entries: list[tuple[str, AgopAccumulator]],
    sources: list[str],
    metadata: dict[str, str],
) -> None: ...
def partial_read(path: str | PathLike[str]) -> tuple[list[tuple[str, AgopAccumulator]], list[str]]: ...
def partial_merge(
    inputs: list[str | PathLike[str]],
    skip_nonfinite: bool = False,
    fast: bool = True,
    progress: Any | None = None,
) -> tuple[list[tuple[str, AgopAccumulator]], list[str]]: ...
def input_kind(path: str | PathLike[str]) -> str: ...

MAX_DIM: int
MAX_LAYERS: int
MAX_NAME_BYTES: int
RESERVED_NAMES: list[str]

# interval fitting (rust/python/src/interval.rs); NaN arrives as None in the returned dicts
MIN_SHAPES: int  # fewest shapes a budget's fit needs; fewer: left out of the cross-budget answers
def fit_interval(
    budget: npt.NDArray[np.float64],
    ratio: npt.NDArray[np.float64],
    loss: npt.NDArray[np.float64],
    metrics: list[tuple[str, npt.NDArray[np.float64]]],
    *,
    eps: float,
    bootstrap: int,
    seed: int,
    ci: float,
    interval_budgets: list[float] | None,
    frontier_x: list[str],
    permutations: int,
    huber: bool = True,
    anomaly_threshold: float = 4.0,
    correlation: str = "nil",
) -> dict[str, Any]: ...
def correlation(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], permutations: int, seed: int
) -> dict[str, Any]: ...

# symbolic interactions (rust/python/src/symbolic.rs; typed API in nil.symbolic)
def subset_transform(x: npt.NDArray[np.float64], kind: str, transpose: bool) -> None: ...
def low_order_masks(n: int, k: int) -> npt.NDArray[np.uint64]: ...
def low_order_transform(x: npt.NDArray[np.float64], n: int, k: int, kind: str) -> None: ...
def and_or_decompose(
    values: npt.NDArray[np.float64],
    bounds: npt.NDArray[np.float64],
    *,
    alpha: float,
    solver: str,
    max_iter: int,
    tol: float,
    check_every: int,
    primal_weight: float,
    lr: float,
    steps: int,
    momentum: float,
) -> dict[str, Any]: ...

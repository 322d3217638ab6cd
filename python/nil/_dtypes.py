"""Dispatch of numpy/torch arrays to the core's row types (float64, float32, float16, bfloat16)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .errors import DTypeError, ShapeError

RowKind = Literal["float64", "float32", "float16", "bfloat16"]

try:  # ml_dtypes ships with jax/tensorflow stacks and is a dependency of nil.
    import ml_dtypes

    _BF16: np.dtype[Any] | None = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is a declared dependency
    _BF16 = None


def as_rows(
    rows: Any, context: str, dtype: str | None = None
) -> tuple[npt.NDArray[Any], RowKind]:
    """Returns a 2-D numpy view of ``rows`` (no copy where possible) and its row kind.

    Accepts float64/float32/float16 arrays, ml_dtypes.bfloat16 arrays, uint16 arrays with
    ``dtype="float16"|"bfloat16"``, and torch tensors (moved to the CPU; bfloat16 kept as bits).
    """
    if type(rows).__module__.startswith("torch"):
        rows = _torch_to_numpy(rows)
    arr = np.asarray(rows)
    if arr.ndim != 2:
        raise ShapeError(f"{context}: expected a 2-D array (rows x dim), found shape {arr.shape}")
    if arr.dtype == np.uint16:
        if dtype not in ("float16", "bfloat16"):
            raise DTypeError(
                f"{context}: a uint16 array holds raw 16-bit words; pass dtype='float16' or "
                f"dtype='bfloat16' to say which, found dtype={dtype!r}"
            )
        return arr, dtype  # type: ignore[return-value]
    if dtype is not None and np.dtype(arr.dtype).name != dtype:
        raise DTypeError(f"{context}: dtype={dtype!r} given for an array of dtype {arr.dtype}")
    if arr.dtype == np.float64:
        return arr, "float64"
    if arr.dtype == np.float32:
        return arr, "float32"
    if arr.dtype == np.float16:
        return arr.view(np.uint16), "float16"
    if _BF16 is not None and arr.dtype == _BF16:
        return arr.view(np.uint16), "bfloat16"
    raise DTypeError(
        f"{context}: expected float64, float32, float16 or bfloat16 rows, found dtype {arr.dtype}"
    )


def _torch_to_numpy(t: Any) -> npt.NDArray[Any]:
    import torch

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype == torch.bfloat16:
        assert _BF16 is not None
        bits: npt.NDArray[Any] = t.view(torch.int16).numpy().view(np.uint16)
        return bits.view(_BF16)
    out: npt.NDArray[Any] = t.numpy()
    return out

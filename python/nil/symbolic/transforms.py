"""Fast transforms over subsets (Rust core, O(n·2^n), float64): zeta, Möbius (AND interactions),
co-Möbius and the OR interactions, their inverses and transposes, and the order-≤k variants.

Values of a function of n players form a row of 2^n numbers; the value of a subset S sits at the
index whose bit i is set exactly when player i is in S. The last axis of an array holds the row;
leading axes are batches. Definitions (N the full set):

- ``"zeta"``: Σ_{T⊆S} v(T); ``"mobius"``: Σ_{T⊆S} (−1)^{|S∖T|} v(T) (AND/Harsanyi interactions);
- ``"superset_zeta"`` / ``"superset_mobius"``: the same over supersets (the transposes);
- ``"co_mobius"``: Σ_{T⊆S} (−1)^{|T|} v(N∖T) (shapiq's "Co-Moebius"), ``"co_zeta"`` its inverse;
- ``"or"``: OR interactions −Σ_{T⊆S} (−1)^{|S|−|T|} v(N∖T) for S ≠ ∅ and v(∅) at ∅, so that
  v(T) = I(∅) + Σ_{S∩T≠∅} I(S) (``"or_inverse"``).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Literal

import numpy as np

from .. import _core
from ..errors import NilValueError, ShapeError

Kind = Literal["zeta", "mobius", "superset_zeta", "superset_mobius", "co_mobius", "co_zeta", "or", "or_inverse"]
LowOrderKind = Literal["mobius", "zeta", "co_mobius", "co_zeta"]

KINDS: tuple[str, ...] = ("zeta", "mobius", "superset_zeta", "superset_mobius", "co_mobius", "co_zeta", "or", "or_inverse")

__all__ = [
    "KINDS", "Kind", "LowOrderKind", "low_order_masks", "mask_sizes", "low_order_subsets", "low_order_transform", "n_players",
    "popcounts", "transform",
]


def n_players(values: Any) -> int:
    """n for an array whose last axis holds 2^n values (a ShapeError otherwise)."""
    size = int(np.shape(values)[-1]) if np.ndim(values) else 0
    if size < 1 or size & (size - 1):
        raise ShapeError(f"subset values: expected a last axis of 2^n values, found {size}")
    return size.bit_length() - 1


def mask_sizes(masks: Any) -> np.ndarray:
    """|S| of every bitmask in ``masks`` (int64)."""
    m = np.asarray(masks, dtype=np.uint64)
    out = np.zeros(m.shape, dtype=np.int64)
    for i in range(64):
        out += ((m >> np.uint64(i)) & np.uint64(1)).astype(np.int64)
    return out


def popcounts(n: int) -> np.ndarray:
    """|S| for every subset index S of n players (int64, length 2^n)."""
    idx = np.arange(1 << n, dtype=np.uint64)
    out = np.zeros(1 << n, dtype=np.int64)
    for i in range(n):
        out += ((idx >> np.uint64(i)) & np.uint64(1)).astype(np.int64)
    return out


def transform(values: Any, kind: Kind = "mobius", *, transpose: bool = False, inplace: bool = False) -> np.ndarray:
    """The subset transform ``kind`` (or its transpose) of every row of ``values``.

    ``inplace=True`` overwrites ``values`` itself (it must then be a C-contiguous float64 array).

    >>> transform(np.array([1.0, 3.0, 2.0, 7.0]), "mobius").tolist()  # I(∅), I({0}), I({1}), I({0,1})
    [1.0, 2.0, 1.0, 3.0]
    """
    if kind not in KINDS:
        raise NilValueError(f"subset transform: kind must be one of {list(KINDS)}, found {kind!r}")
    if inplace:
        if not (isinstance(values, np.ndarray) and values.dtype == np.float64 and values.flags.c_contiguous
                and values.flags.writeable):
            raise NilValueError("subset transform: inplace=True needs a writeable C-contiguous float64 array")
        arr = values
    else:
        arr = np.array(values, dtype=np.float64, order="C", copy=True)
    n_players(arr)
    if arr.ndim == 0:
        raise ShapeError("subset transform: expected an array with a last axis of 2^n values, found a scalar")
    _core.subset_transform(arr.reshape(-1, arr.shape[-1]), kind, bool(transpose))
    return arr


def low_order_masks(n: int, k: int) -> np.ndarray:
    """Bitmasks (uint64) of every subset of at most k of n players, in the order the order-≤k
    transforms use: by size, then by bitmask value (graded colex; the subset {c₀ < … < c_{m−1}}
    is at C(n, <m) + Σᵢ C(cᵢ, i+1))."""
    return _core.low_order_masks(int(n), int(k))


def low_order_subsets(n: int, k: int) -> list[tuple[int, ...]]:
    """The subsets of ``low_order_masks(n, k)`` as sorted tuples of player indices.

    >>> low_order_subsets(3, 2)
    [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
    """
    out: list[tuple[int, ...]] = []
    for m in range(k + 1):
        out.extend(sorted(combinations(range(n), m), key=lambda s: sum(1 << i for i in s)))
    return out


def low_order_transform(values: Any, n: int, k: int, kind: LowOrderKind = "mobius") -> np.ndarray:
    """The order-≤k transform of rows of C(n, ≤k) values in ``low_order_masks(n, k)`` order.

    ``"mobius"``: v(T), |T| ≤ k ↦ the exact AND interactions I(S), |S| ≤ k (``"zeta"`` inverts).
    ``"co_mobius"``: takes w(T) = v(N∖T) — the values at the complements of the small subsets —
    and returns (m*v)(S) = (−1)^{|S|}·(μw)(S), |S| ≤ k (``"co_zeta"`` inverts). The OR interaction
    of S ≠ ∅ is (−1)^{|S|+1}·(m*v)(S).
    """
    if kind not in ("mobius", "zeta", "co_mobius", "co_zeta"):
        raise NilValueError(f"order-≤k transform: kind must be mobius, zeta, co_mobius or co_zeta, found {kind!r}")
    arr = np.array(values, dtype=np.float64, order="C", copy=True)
    if arr.ndim == 0:
        raise ShapeError("order-≤k transform: expected an array, found a scalar")
    rows = arr.reshape(-1, arr.shape[-1])
    if kind in ("mobius", "zeta"):
        _core.low_order_transform(rows, int(n), int(k), kind)
        return arr
    sign = np.where(mask_sizes(low_order_masks(n, k)) % 2 == 1, -1.0, 1.0)
    if kind == "co_mobius":
        _core.low_order_transform(rows, int(n), int(k), "mobius")
        rows *= sign
    else:
        rows *= sign
        _core.low_order_transform(rows, int(n), int(k), "zeta")
    return arr

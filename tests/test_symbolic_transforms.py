"""Subset transforms from Python: definitions evaluated term by term, shapiq's ExactComputer
(a test-only dependency), round trips, the order-≤k variants and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from nil.errors import NilValueError, ShapeError
from nil.symbolic import (
    KINDS,
    low_order_masks,
    low_order_subsets,
    low_order_transform,
    n_players,
    popcounts,
    transform,
)


def brute(v: np.ndarray, kind: str) -> np.ndarray:
    """Each transform from its definition (O(4^n))."""
    size = len(v)
    full = size - 1
    pc = [bin(i).count("1") for i in range(size)]
    out = np.zeros(size)
    for s in range(size):
        acc = 0.0
        for u in range(size):
            sub, sup = (u & ~s) == 0, (s & ~u) == 0
            if kind == "zeta" and sub:
                acc += v[u]
            elif kind == "mobius" and sub:
                acc += (-1) ** (pc[s] - pc[u]) * v[u]
            elif kind == "superset_zeta" and sup:
                acc += v[u]
            elif kind == "superset_mobius" and sup:
                acc += (-1) ** (pc[u] - pc[s]) * v[u]
            elif kind == "co_mobius" and sub:
                acc += (-1) ** pc[u] * v[full & ~u]
            elif kind == "co_zeta" and (u & s) == 0:
                acc += (-1) ** pc[u] * v[u]
            elif kind == "or":
                if s == 0:
                    acc = v[0]
                elif sub:
                    acc -= (-1) ** (pc[s] - pc[u]) * v[full & ~u]
            elif kind == "or_inverse" and (u == 0 or (u & s) != 0):
                acc += v[u]
        out[s] = acc
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_transforms_match_their_definitions(kind: str) -> None:
    rng = np.random.default_rng(0)
    for n in range(0, 6):
        v = rng.normal(size=1 << n)
        got = transform(v, kind)  # type: ignore[arg-type]
        np.testing.assert_allclose(got, brute(v, kind), rtol=0, atol=1e-12 * max(1.0, np.abs(v).max()) * (1 << n))
        # transpose through the dense matrix
        dense = np.stack([brute(e, kind) for e in np.eye(1 << n)], axis=1)
        np.testing.assert_allclose(transform(v, kind, transpose=True), dense.T @ v, atol=1e-11)  # type: ignore[arg-type]


def test_round_trips_and_batches() -> None:
    rng = np.random.default_rng(1)
    v = rng.normal(size=(3, 2, 1 << 13))
    for a, b in [("zeta", "mobius"), ("superset_zeta", "superset_mobius"), ("co_mobius", "co_zeta"), ("or", "or_inverse")]:
        for t in (False, True):
            back = transform(transform(v, a, transpose=t), b, transpose=t)  # type: ignore[arg-type]
            assert np.abs(back - v).max() <= 1e-12 * np.abs(v).max()
    one = transform(v[1, 0], "mobius")
    np.testing.assert_array_equal(transform(v, "mobius")[1, 0], one)


def test_inplace_and_errors() -> None:
    v = np.array([1.0, 3.0, 2.0, 7.0])
    out = transform(v, "mobius", inplace=True)
    assert out is v and v.tolist() == [1.0, 2.0, 1.0, 3.0]
    with pytest.raises(NilValueError):
        transform([1.0, 2.0], "mobius", inplace=True)
    with pytest.raises(ShapeError):
        transform(np.ones(6), "mobius")
    with pytest.raises(NilValueError):
        transform(np.ones(4), "moebius")  # type: ignore[arg-type]
    assert n_players(np.ones((2, 32))) == 5
    assert popcounts(3).tolist() == [0, 1, 1, 2, 1, 2, 2, 3]


def test_low_order_transforms_are_exact() -> None:
    rng = np.random.default_rng(2)
    n, k = 10, 3
    v = rng.normal(size=(2, 1 << n))
    masks = low_order_masks(n, k).astype(np.int64)
    assert len(masks) == 1 + 10 + 45 + 120
    subs = low_order_subsets(n, k)
    assert [sum(1 << i for i in s) for s in subs] == masks.tolist()
    low = low_order_transform(v[:, masks], n, k, "mobius")
    np.testing.assert_allclose(low, transform(v, "mobius")[:, masks], atol=1e-12)
    np.testing.assert_allclose(low_order_transform(low, n, k, "zeta"), v[:, masks], atol=1e-12)
    # co-Möbius from the values at the complements of the small subsets
    full = (1 << n) - 1
    comp = v[:, full - masks]
    co = low_order_transform(comp, n, k, "co_mobius")
    np.testing.assert_allclose(co, transform(v, "co_mobius")[:, masks], atol=1e-11)
    np.testing.assert_allclose(low_order_transform(co, n, k, "co_zeta"), comp, atol=1e-11)
    with pytest.raises(ShapeError):
        low_order_transform(v[:, :10], n, k)
    with pytest.raises(NilValueError):
        low_order_masks(4, 5)


shapiq = pytest.importorskip("shapiq")


def _shapiq(v: np.ndarray, index: str) -> np.ndarray:
    """shapiq's ExactComputer on the game whose value table is v (bitmask order), mapped back to
    bitmask order."""
    n = n_players(v)

    def game(coalitions: np.ndarray) -> np.ndarray:
        idx = (coalitions.astype(np.int64) << np.arange(n)).sum(axis=1)
        return v[idx]

    iv = shapiq.ExactComputer(game, n_players=n)(index, order=n)
    out = np.zeros(1 << n)
    for s, pos in iv.interaction_lookup.items():
        out[sum(1 << i for i in s)] = iv.values[pos]
    return out


@pytest.mark.parametrize("n", [3, 6, 9])
def test_moebius_agrees_with_shapiq(n: int) -> None:
    v = np.random.default_rng(n).normal(size=1 << n)
    want = _shapiq(v, "Moebius")
    got = transform(v, "mobius")
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()


@pytest.mark.parametrize("n", [3, 6])
def test_co_moebius_and_or_agree_with_shapiq(n: int) -> None:
    v = np.random.default_rng(10 + n).normal(size=1 << n)
    want = _shapiq(v, "Co-Moebius")
    got = transform(v, "co_mobius")
    # shapiq's InteractionValues put the game's baseline v(∅) at ∅; co-Möbius(∅) is v(N)
    assert want[0] == v[0] and got[0] == v[-1]
    assert np.abs(got - want)[1:].max() <= 1e-12 * np.abs(want).max()
    # the OR interactions are (−1)^{|S|+1} times co-Möbius away from ∅
    sign = np.where(popcounts(n) % 2 == 1, 1.0, -1.0)
    or_ = transform(v, "or")
    np.testing.assert_allclose(or_[1:], (sign * want)[1:], atol=1e-12 * np.abs(want).max())
    assert or_[0] == v[0]

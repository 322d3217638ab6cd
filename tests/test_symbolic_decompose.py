"""The AND–OR decomposition: PDHG against the exact LP, the SGD recipe against a dense-matrix copy
of the published code, reconstruction, joint decompositions and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from nil.errors import NilValueError, ShapeError
from nil.symbolic import and_or, joint_and_or, popcounts, transform

pytest.importorskip("scipy")


def game(n: int, seed: int) -> np.ndarray:
    """A few AND and OR terms plus small noise, as masked outputs of a network look."""
    rng = np.random.default_rng(seed)
    size = 1 << n
    t = np.arange(size)
    v = rng.normal(scale=0.05, size=size)
    for _ in range(5):
        s = int(rng.integers(1, size))
        c = rng.normal()
        v += c * (((t & s) == s) if rng.random() < 0.6 else ((t & s) != 0))
    return v


def reconstruct(i_and: np.ndarray, i_or: np.ndarray) -> np.ndarray:
    return transform(i_and, "zeta") + transform(i_or, "or_inverse")


def test_pdhg_reaches_the_exact_optimum_within_its_certificate() -> None:
    v = np.stack([game(6, s) for s in range(3)])
    exact = and_or(v, solver="lp")
    fast = and_or(v, max_iter=20_000, tol=2e-3)
    for k in range(3):
        assert fast.lower_bound[k] <= exact.objective[k] * (1 + 1e-7)
        assert exact.objective[k] <= fast.objective[k] * (1 + 1e-9)
        assert fast.gap[k] <= 2e-3 or fast.iterations[k] == 20_000
        assert fast.objective[k] <= exact.objective[k] * 1.01
    sgd = and_or(v, solver="sgd", lr=1e-4, steps=3000)
    assert (fast.objective <= sgd.objective).all()


@pytest.mark.parametrize("solver", ["pdhg", "sgd", "lp"])
def test_decompositions_reconstruct_the_values(solver: str) -> None:
    v = np.stack([game(5, 7), game(5, 8)])
    d = and_or(v, qthres=0.03, solver=solver, steps=500, max_iter=2000)  # type: ignore[arg-type]
    bound = 0.03 * np.abs(v[:, -1] - v[:, 0])
    np.testing.assert_allclose(d.bound, bound)
    assert (np.abs(d.q) <= bound[:, None] * (1 + 1e-12) + 1e-15).all()
    np.testing.assert_allclose(reconstruct(d.i_and, d.i_or), v + d.q, atol=1e-9)
    a, o = d.merged()
    np.testing.assert_allclose(reconstruct(a, o), v + d.q, atol=1e-9)
    assert (o[:, popcounts(5) <= 1] == 0).all()
    np.testing.assert_allclose(d.objective, np.abs(d.i_and).sum(-1) + np.abs(d.i_or).sum(-1), rtol=1e-12)
    v_and = 0.5 * (v + d.q) + d.p
    np.testing.assert_allclose(transform(v_and, "mobius"), d.i_and, atol=1e-9)
    np.testing.assert_allclose(transform(0.5 * (v + d.q) - d.p, "or"), d.i_or, atol=1e-9)


def _dense(n: int, kind: str) -> np.ndarray:
    return np.stack([transform(e, kind) for e in np.eye(1 << n)], axis=1)  # type: ignore[arg-type]


def test_sgd_is_the_published_recipe() -> None:
    """A float64 copy of sjtu-xai-lab's _train_p_q (dense 2^n×2^n matrices, torch SGD semantics)."""
    n, steps, lr = 4, 300, 1e-3
    v = game(n, 3)
    bound = 0.02 * abs(v[-1] - v[0])
    to_and, to_or = _dense(n, "mobius"), _dense(n, "or")
    p, q = np.zeros_like(v), np.zeros_like(v)
    bp, bq = np.zeros_like(v), np.zeros_like(v)
    etas = np.logspace(np.log10(lr), np.log10(lr) - 1, steps)
    for it in range(steps):
        q = np.clip(q, -bound, bound)
        ia, io = to_and @ (0.5 * (v + q) + p), to_or @ (0.5 * (v + q) - p)
        if it + 1 < steps:
            ga, go = to_and.T @ np.sign(ia), to_or.T @ np.sign(io)
            gp, gq = ga - go, 0.5 * (ga + go)
            bp, bq = (gp, gq) if it == 0 else (0.9 * bp + gp, 0.9 * bq + gq)
            p, q = p - etas[it] * bp, q - etas[it] * bq
    d = and_or(v, solver="sgd", lr=lr, steps=steps)
    np.testing.assert_allclose(d.p, p, atol=1e-12)
    np.testing.assert_allclose(d.i_and, ia, atol=1e-12)
    np.testing.assert_allclose(d.i_or, io, atol=1e-12)
    assert np.isnan(d.lower_bound) and not d.converged


def test_joint_decomposition() -> None:
    one = game(5, 11)
    single = and_or(one, qthres=0.02, max_iter=30_000, tol=1e-5)
    twin = joint_and_or(np.stack([one, one]), qthres=0.02, max_iter=30_000, tol=1e-5)
    assert twin.i_and.shape == (2, 32)
    # g(u, u) = (1 − α)|u| + 2α|u| = 1.1·|u|
    np.testing.assert_allclose(twin.objective, 1.1 * single.objective, rtol=3e-4)
    # α = 1 is two independent decompositions
    other = game(5, 12)
    both = joint_and_or(np.stack([one, other]), alpha=1.0, max_iter=30_000, tol=1e-5)
    apart = and_or(np.stack([one, other]), max_iter=30_000, tol=1e-5)
    np.testing.assert_allclose(both.objective, apart.objective.sum(), rtol=3e-4)
    sgd = joint_and_or(np.stack([one, other]), solver="sgd", lr=1e-4, steps=2000)
    assert sgd.objective >= both.lower_bound


def test_bad_input() -> None:
    with pytest.raises(ShapeError):
        and_or(np.ones(6))
    with pytest.raises(NilValueError, match="non-finite"):
        and_or(np.array([0.0, np.nan]))
    with pytest.raises(NilValueError):
        and_or(np.ones(4), solver="adam")  # type: ignore[arg-type]
    with pytest.raises(NilValueError):
        and_or(np.ones(4), qthres=-1)
    with pytest.raises(NilValueError):
        and_or(np.ones(1 << 11), solver="lp")
    with pytest.raises(NilValueError):
        joint_and_or(np.ones((2, 4)), solver="lp")  # type: ignore[arg-type]
    with pytest.raises(ShapeError):
        joint_and_or(np.ones(4))
    zero = and_or(np.zeros((2, 8)))
    assert (zero.objective == 0).all() and zero.converged.all() and (zero.gap == 0).all()

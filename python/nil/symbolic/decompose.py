"""The AND–OR decomposition of masked outputs into sparse AND and OR interactions.

v_and = ½(v + q) + p, v_or = ½(v + q) − p with |q| ≤ qthres·|v(N) − v(∅)| (the literature's
"vN-v0" bound), I_and = Möbius(v_and), I_or = OR(v_or); minimise Σ|I_and| + Σ|I_or| over p, q
(Li & Zhang 2023). Jointly for m models (Chen et al., ICLR 2024), each model has its own p, q and
the loss is Σ_S (1 − α)·max_i |I_i(S)| + α·Σ_i |I_i(S)| over AND and OR. Solvers:

- ``"pdhg"`` (default): restarted, averaged primal–dual hybrid gradient on the linear program,
  every linear map a fast transform (Rust core); reports a certified lower bound on the optimum.
- ``"sgd"``: the published recipe (SGD, momentum 0.9, lr decayed log-linearly by 10×, 10,000
  steps at lr 1e-5 in the authors' README), on the fast transforms; kept for comparison.
- ``"lp"``: the exact optimum by scipy's HiGHS for one model and n ≤ 10 (slow; for checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .. import _core
from ..errors import NilValueError, ShapeError
from .transforms import n_players, popcounts, transform

SolverName = Literal["pdhg", "sgd", "lp"]

__all__ = ["AndOr", "SolverName", "and_or", "joint_and_or", "noise_bound"]


@dataclass(frozen=True)
class AndOr:
    """An AND–OR decomposition of one or more problems (leading axes of the input).

    ``i_and``/``i_or``/``p``/``q``: [..., m, 2^n] for a joint decomposition of m models, [..., 2^n]
    for one. ``objective``: the sparsity loss of the returned decomposition; ``lower_bound``: a
    certified lower bound on the optimal loss (pdhg, lp), NaN for sgd; ``gap`` is their relative
    difference. ``i_and``/``i_or`` are the raw interactions of the loss; ``merged()`` moves the
    order-0 and order-1 OR terms into AND (they are the same effects), as the literature reports.
    """

    i_and: np.ndarray
    i_or: np.ndarray
    p: np.ndarray
    q: np.ndarray
    objective: np.ndarray
    lower_bound: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    bound: np.ndarray
    solver: str
    n: int

    @property
    def gap(self) -> np.ndarray:
        """(objective − lower_bound) / objective (0 where the objective is 0; NaN for sgd)."""
        obj = np.asarray(self.objective)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(obj > 0, (obj - self.lower_bound) / np.where(obj > 0, obj, 1.0), 0.0)

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """(AND, OR) with I_or(∅) and the singleton OR terms added to AND and zeroed in OR."""
        return merge_low_orders(self.i_and, self.i_or, self.n)


def merge_low_orders(i_and: np.ndarray, i_or: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """AND and OR interactions with the OR terms of order 0 and 1 moved into AND (an OR of one
    player is an AND of one player; ∅ is the constant of both)."""
    low = popcounts(n) <= 1
    a = np.array(i_and, dtype=np.float64, copy=True)
    o = np.array(i_or, dtype=np.float64, copy=True)
    a[..., low] += o[..., low]
    o[..., low] = 0.0
    return a, o


def noise_bound(values: np.ndarray, qthres: float) -> np.ndarray:
    """qthres·|v(N) − v(∅)| for every row of ``values`` (the bound on |q|)."""
    if not (qthres >= 0 and np.isfinite(qthres)):
        raise NilValueError(f"and_or: qthres must be finite and ≥ 0, found {qthres}")
    out: np.ndarray = float(qthres) * np.abs(values[..., -1] - values[..., 0])
    return out


def _check_values(values: Any) -> np.ndarray:
    v = np.ascontiguousarray(values, dtype=np.float64)
    if v.ndim == 0:
        raise ShapeError("and_or: expected values with a last axis of 2^n coalitions, found a scalar")
    n_players(v)
    if not np.isfinite(v).all():
        bad = np.argwhere(~np.isfinite(v))[0].tolist()
        raise NilValueError(f"and_or: values hold a non-finite entry at index {bad}; masked outputs must be finite")
    return v


def _bounds(v: np.ndarray, qthres: float, bound: Any) -> np.ndarray:
    lead = v.shape[:-1]
    if bound is None:
        return noise_bound(v, qthres)
    b: np.ndarray = np.broadcast_to(np.asarray(bound, dtype=np.float64), lead).copy()
    if not (np.isfinite(b).all() and (b >= 0).all()):
        raise NilValueError("and_or: bound must be finite and ≥ 0")
    return b


def _default_weight(n: int) -> float:
    # Tuned on log-odds of a digits MLP at n = 8…14 (docs/symbolic.md): larger n favours
    # larger primal steps.
    return 2.0 if n <= 10 else 4.0


def _solve(v: np.ndarray, b: np.ndarray, alpha: float, solver: str, max_iter: int, tol: float,
           check_every: int, primal_weight: float | None, lr: float, steps: int, momentum: float) -> dict[str, Any]:
    """v: [P, m, N], b: [P, m]."""
    n = n_players(v)
    if solver == "lp":
        if v.shape[1] != 1:
            raise NilValueError("and_or: the exact 'lp' solver decomposes one model at a time; use 'pdhg' for joint")
        return _solve_lp(v[:, 0], b[:, 0])
    if solver not in ("pdhg", "sgd"):
        raise NilValueError(f"and_or: solver must be 'pdhg', 'sgd' or 'lp', found {solver!r}")
    w = _default_weight(n) if primal_weight is None else float(primal_weight)
    return _core.and_or_decompose(
        v, b, alpha=float(alpha), solver=solver, max_iter=int(max_iter), tol=float(tol),
        check_every=int(check_every), primal_weight=w, lr=float(lr), steps=int(steps), momentum=float(momentum),
    )


def and_or(
    values: Any,
    *,
    qthres: float = 0.02,
    bound: Any = None,
    solver: SolverName = "pdhg",
    max_iter: int = 2000,
    tol: float = 1e-3,
    check_every: int = 64,
    primal_weight: float | None = None,
    lr: float = 1e-5,
    steps: int = 10_000,
    momentum: float = 0.9,
) -> AndOr:
    """The sparsest AND–OR decomposition of every row of ``values`` ([..., 2^n] masked outputs).

    ``bound`` (broadcast over the leading axes) overrides the noise bound qthres·|v(N) − v(∅)|.
    pdhg stops at the relative certified gap ``tol`` or after ``max_iter`` iterations and returns
    the best decomposition it met; ``primal_weight`` defaults to 2 for n ≤ 10 and 4 above.
    sgd runs ``steps`` steps from learning rate ``lr``.

    >>> d = and_or(np.array([0.0, 1.0, 1.0, 1.0]), qthres=0.0, solver="lp")  # v = x0 OR x1
    >>> round(float(d.objective[()]), 6)
    1.0
    """
    v = _check_values(values)
    b = _bounds(v, qthres, bound)
    lead = v.shape[:-1]
    flat = v.reshape(-1, 1, v.shape[-1])
    r = _solve(flat, b.reshape(-1, 1), 0.1, solver, max_iter, tol, check_every, primal_weight, lr, steps, momentum)
    return _result(r, lead, v.shape[-1], b, solver, n_players(v), joint=False)


def joint_and_or(
    values: Any,
    *,
    alpha: float = 0.1,
    qthres: float = 0.02,
    bound: Any = None,
    solver: Literal["pdhg", "sgd"] = "pdhg",
    max_iter: int = 4000,
    tol: float = 1e-3,
    check_every: int = 64,
    primal_weight: float | None = None,
    lr: float = 1e-5,
    steps: int = 10_000,
    momentum: float = 0.9,
) -> AndOr:
    """Joint decomposition of m models on the same inputs: ``values`` is [..., m, 2^n] (e.g. the
    masked outputs of two models on the same samples, stacked on axis −2). Each model keeps its own
    p and q; the loss Σ_S (1 − α)·max_i |I_i(S)| + α·Σ_i |I_i(S)| makes them share subsets."""
    v = _check_values(values)
    if v.ndim < 2:
        raise ShapeError(f"joint_and_or: expected values [..., models, 2^n], found shape {v.shape}")
    b = _bounds(v, qthres, bound)
    lead = v.shape[:-2]
    m = v.shape[-2]
    flat = v.reshape(-1, m, v.shape[-1])
    r = _solve(flat, b.reshape(-1, m), alpha, solver, max_iter, tol, check_every, primal_weight, lr, steps, momentum)
    return _result(r, lead, v.shape[-1], b, solver, n_players(v), joint=True, models=m)


def _result(r: dict[str, Any], lead: tuple[int, ...], size: int, b: np.ndarray, solver: str, n: int, *,
            joint: bool, models: int = 1) -> AndOr:
    shape = (*lead, models, size) if joint else (*lead, size)
    return AndOr(
        i_and=r["i_and"].reshape(shape), i_or=r["i_or"].reshape(shape), p=r["p"].reshape(shape),
        q=r["q"].reshape(shape), objective=np.asarray(r["objective"]).reshape(lead),
        lower_bound=np.asarray(r["lower_bound"]).reshape(lead), iterations=np.asarray(r["iterations"]).reshape(lead),
        converged=np.asarray(r["converged"]).reshape(lead), bound=b, solver=solver, n=n,
    )


MAX_LP_PLAYERS = 10


def _solve_lp(v: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Exact decompositions by HiGHS in interaction form: min ‖a‖₁ + ‖o‖₁ subject to
    |ζa + R o − v| ≤ b, with R o = (o(∅) + σ)·1 − F ζ (o without ∅) and σ = Σ_{S≠∅} o(S)."""
    try:
        import scipy.sparse as sp
        from scipy.optimize import linprog
    except ImportError as e:  # pragma: no cover - scipy is a dev dependency
        raise NilValueError("and_or: the 'lp' solver needs scipy (pip install scipy)") from e
    n = n_players(v)
    if n > MAX_LP_PLAYERS:
        raise NilValueError(f"and_or: the exact 'lp' solver is limited to n ≤ {MAX_LP_PLAYERS} players, found {n}; use 'pdhg'")
    size = 1 << n
    z1 = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0]]))
    zeta = sp.csr_matrix(np.ones((1, 1)))
    for _ in range(n):
        zeta = sp.kron(z1, zeta, format="csr")  # the low bit varies fastest
    flip = sp.csr_matrix((np.ones(size), (np.arange(size), np.arange(size)[::-1])), shape=(size, size))
    drop_empty = sp.diags(np.r_[0.0, np.ones(size - 1)])
    ones = sp.csr_matrix(np.ones((size, 1)))
    e0 = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, size))
    r_o = sp.hstack([-(flip @ zeta @ drop_empty) + ones @ e0, ones])  # acts on [o, σ]
    eye = sp.identity(size, format="csr")
    nil = sp.csr_matrix((size, size))
    col = sp.csr_matrix((size, 1))
    a_ub = sp.vstack([
        sp.hstack([zeta, r_o, nil, nil]), sp.hstack([-zeta, -r_o, nil, nil]),
        sp.hstack([eye, nil, col, -eye, nil]), sp.hstack([-eye, nil, col, -eye, nil]),
        sp.hstack([nil, eye, col, nil, -eye]), sp.hstack([nil, -eye, col, nil, -eye]),
    ]).tocsc()
    a_eq = sp.hstack([sp.csr_matrix((1, size)), sp.csr_matrix(np.r_[0.0, np.ones(size - 1)][None, :]),
                      sp.csr_matrix(-np.ones((1, 1))), sp.csr_matrix((1, 2 * size))]).tocsc()
    cost = np.concatenate([np.zeros(2 * size + 1), np.ones(2 * size)])
    limits = [(None, None)] * (2 * size + 1) + [(0, None)] * (2 * size)
    out: dict[str, list[Any]] = {k: [] for k in ("i_and", "i_or", "p", "q", "objective", "lower_bound", "iterations", "converged")}
    for vi, bi in zip(v, b):
        res = linprog(cost, A_ub=a_ub, b_ub=np.concatenate([vi + bi, bi - vi, np.zeros(4 * size)]),
                      A_eq=a_eq, b_eq=[0.0], bounds=limits, method="highs")
        if res.status != 0:
            raise NilValueError(f"and_or: HiGHS failed on the exact decomposition: {res.message}")
        a, o = res.x[:size], res.x[size:2 * size]
        v_and = transform(a, "zeta")
        v_or = transform(o, "or_inverse")
        q = np.clip(v_and + v_or - vi, -bi, bi)
        out["i_and"].append(a[None])
        out["i_or"].append(o[None])
        out["p"].append(((v_and - v_or) / 2)[None])
        out["q"].append(q[None])
        obj = float(np.abs(a).sum() + np.abs(o).sum())
        out["objective"].append(obj)
        out["lower_bound"].append(float(res.fun))
        out["iterations"].append(int(getattr(res, "nit", 0)))
        out["converged"].append(True)
    return {
        "i_and": np.stack(out["i_and"]), "i_or": np.stack(out["i_or"]), "p": np.stack(out["p"]),
        "q": np.stack(out["q"]), "objective": np.array(out["objective"]), "lower_bound": np.array(out["lower_bound"]),
        "iterations": np.array(out["iterations"], dtype=np.uint64), "converged": np.array(out["converged"]),
    }

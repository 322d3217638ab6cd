"""Correlation statistics for small samples: Pearson with a Fisher-z interval, average-rank
Spearman, permutation p-values, and partial correlation after regressing out covariates.

Why here and in numpy: the LLM comparison has 5–30 points, so the cost is nil and what matters is
honesty at small n — every statistic carries its n, a confidence interval where one exists, and a
permutation p-value (exact enumeration for n ≤ 8, seeded Monte Carlo otherwise). Degenerate input
(n too small, zero variance) gives NaN, never 0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Correlation", "average_ranks", "pearson", "correlate"]

F64 = npt.NDArray[np.float64]
EXACT_MAX_N = 8
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Correlation:
    """One association between x and y after removing ``covariates`` (their names).

    ``pearson``/``spearman``: correlation of residuals (Spearman: of average ranks, residualised
    the same way); ``ci_lo``/``ci_hi``: 95% Fisher-z interval for ``pearson`` with n − 3 − q
    degrees of freedom (q covariates besides the intercept); ``p_pearson``/``p_spearman``:
    two-sided permutation p-values (``permutations`` draws, or "exact"); ``strata``: number of
    groups permutations were kept within (1 = none).
    """

    label: str
    n: int
    covariates: tuple[str, ...]
    pearson: float
    ci_lo: float
    ci_hi: float
    p_pearson: float
    spearman: float
    p_spearman: float
    permutations: str
    strata: int

    @property
    def ci_excludes_zero(self) -> bool:
        """True when the 95% interval of the Pearson correlation lies on one side of 0."""
        return bool(self.ci_lo > 0 or self.ci_hi < 0)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (NaN kept as float NaN)."""
        d = asdict(self)
        d["covariates"] = list(self.covariates)
        d["ci_excludes_zero"] = self.ci_excludes_zero
        return d


def average_ranks(x: npt.ArrayLike) -> F64:
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata's default)."""
    a = np.asarray(x, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    ranks = np.empty(len(a), dtype=np.float64)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def pearson(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Pearson correlation in float64; NaN when n < 2 or either side has zero variance."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if len(a) < 2:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-300)
    if den <= (1e-12 * scale) ** 2 * len(a):
        return math.nan
    return float(np.clip(float(a @ b) / den, -1.0, 1.0))


def _residualise(v: F64, z: F64) -> F64:
    coef, *_ = np.linalg.lstsq(z, v, rcond=None)
    r: F64 = v - z @ coef
    return r


def _fisher_ci(r: float, dof: int) -> tuple[float, float]:
    if not math.isfinite(r) or dof < 1:
        return math.nan, math.nan
    if abs(r) >= 1.0:
        return r, r
    z = math.atanh(r)
    h = Z95 / math.sqrt(dof)
    return math.tanh(z - h), math.tanh(z + h)


def _perm_p(
    rx: F64, ry: F64, strata: npt.NDArray[np.int64], permutations: int, rng: np.random.Generator
) -> tuple[float, str]:
    """Two-sided p of |pearson(rx, ry)| under permutations of rx within strata."""
    obs = pearson(rx, ry)
    if not math.isfinite(obs):
        return math.nan, "none"
    tol = 1e-12
    groups = [np.flatnonzero(strata == g) for g in np.unique(strata)]
    n = len(rx)
    if len(groups) == 1 and n <= EXACT_MAX_N:
        hits = total = 0
        for perm in itertools.permutations(range(n)):
            total += 1
            if abs(pearson(rx[list(perm)], ry)) >= abs(obs) - tol:
                hits += 1
        return hits / total, "exact"
    idx = np.tile(np.arange(n), (permutations, 1))
    for g in groups:
        idx[:, g] = g[np.argsort(rng.random((permutations, len(g))), axis=1)]
    xs = rx[idx]
    xs = xs - xs.mean(axis=1, keepdims=True)
    yc = ry - ry.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        rs = (xs @ yc) / np.sqrt((xs * xs).sum(axis=1) * float(yc @ yc))
    hits = int(np.count_nonzero(np.abs(rs) >= abs(obs) - tol))
    return (hits + 1) / (permutations + 1), str(permutations)


def correlate(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    label: str = "",
    covariates: dict[str, npt.ArrayLike] | None = None,
    groups: npt.ArrayLike | None = None,
    permutations: int = 10_000,
    seed: int = 0,
) -> Correlation:
    """Association of x with y, optionally within ``groups`` and after removing ``covariates``.

    With ``groups`` (e.g. model families) both sides are centred within each group (fixed
    effects) and permutations stay within groups; ``covariates`` (name → values) are regressed out
    of both sides by least squares with an intercept. Spearman applies the same to average ranks.
    Returns NaN statistics when fewer than q + 3 points remain.
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"correlate: x and y must be 1-D of one length, found {xa.shape} and {ya.shape}")
    n = len(xa)
    cols = [np.ones(n)]
    names: list[str] = []
    for name, v in (covariates or {}).items():
        cols.append(np.asarray(v, dtype=np.float64))
        names.append(name)
    if groups is not None:
        _, strata = np.unique(np.asarray(groups), return_inverse=True)
        strata = strata.astype(np.int64)
        k = int(strata.max()) + 1 if n else 0
        cols = cols[1:] + [(strata == g).astype(np.float64) for g in range(k)]
        names.append("family")
    else:
        strata = np.zeros(n, dtype=np.int64)
    z = np.column_stack(cols) if n else np.zeros((0, 1))
    rank_z = int(np.linalg.matrix_rank(z)) if n else 0
    dof = n - 2 - rank_z  # Fisher-z: n - 3 - q, where rank_z = q + 1 columns incl. intercept
    nan = math.nan
    if n < 3 or n - rank_z < 2:
        return Correlation(label, n, tuple(names), nan, nan, nan, nan, nan, nan, "none", int(strata.max(initial=0)) + 1)
    rng = np.random.default_rng(seed)
    rx, ry = _residualise(xa, z), _residualise(ya, z)
    r = pearson(rx, ry)
    lo, hi = _fisher_ci(r, dof)
    p, how = _perm_p(rx, ry, strata, permutations, rng)
    qx, qy = _residualise(average_ranks(xa), z), _residualise(average_ranks(ya), z)
    rho = pearson(qx, qy)
    p_rho, _ = _perm_p(qx, qy, strata, permutations, rng)
    return Correlation(label, n, tuple(names), r, lo, hi, p, rho, p_rho, how, int(strata.max()) + 1)

"""Independent numpy implementations of nil's statistics, used as test oracles."""

from __future__ import annotations

import numpy as np


def agop(rows: np.ndarray) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float64)
    return x.T @ x / x.shape[0]


def stats_exact(m: np.ndarray) -> dict[str, float]:
    s = (np.asarray(m, np.float64) + np.asarray(m, np.float64).T) / 2
    k = s.shape[0]
    off = s[~np.eye(k, dtype=bool)]
    o = float(np.sum(off**2))
    dg = float(np.sum(np.diag(s) ** 2))
    f = o + dg
    d = np.diag(s)
    pairs = float(2 * np.sum(np.triu(np.outer(d, d), 1)))  # Σ_{i≠j} d_i d_j without cancellation
    tr = float(d.sum())
    lam = np.clip(np.linalg.eigvalsh(s), 0, None)
    p = lam / lam.sum()
    p = p[p > 0]
    return {
        "frobenius": f,
        "diagonal": dg,
        "aofe": o,
        "aofe_ratio": o / f,
        "weighted_mean_cos2": o / pairs if pairs > 0 else float("nan"),
        "participation_ratio": tr * tr / f,
        "effective_rank": float(np.exp(-np.sum(p * np.log(p)))),
        "top_share": float(lam.max() / lam.sum()),
        "null_rotation": (k - tr * tr / f) / (k + 2),
    }


def stats_reference_sweep(m: np.ndarray) -> dict[str, float]:
    """Convention A in float32, as the reference computed it on the device."""
    m32 = np.asarray(m, np.float64).astype(np.float32)
    s = (m32 + m32.T) * np.float32(0.5)
    fro2 = np.sum(s * s, dtype=np.float32) + np.float32(1e-12)
    dg = np.sum(np.diag(s) ** 2, dtype=np.float32)
    aofe = max(fro2 - dg, np.float32(0))
    d = np.diag(s)
    wmc2 = (np.sum(s * s, dtype=np.float32) - dg) / max(np.sum(d, dtype=np.float32) ** 2 - dg, np.float32(1e-12))
    return {"frobenius": float(fro2), "aofe": float(aofe), "aofe_ratio": float(aofe / fro2), "weighted_mean_cos2": float(wmc2)}


def stats_reference_scan(m: np.ndarray) -> dict[str, float]:
    """Convention B in float64: direct sum, ratio over max(F, 1e-12), diagonal clamped for wmc2."""
    s = (np.asarray(m, np.float64) + np.asarray(m, np.float64).T) / 2
    k = s.shape[0]
    o = float(np.sum(s[~np.eye(k, dtype=bool)] ** 2))
    f = float(np.sum(s**2))
    d = np.clip(np.diag(s), 0, None)
    wmc2 = (f - np.sum(d**2)) / max(d.sum() ** 2 - np.sum(d**2), 1e-12)
    return {"aofe": o, "aofe_ratio": o / max(f, 1e-12), "weighted_mean_cos2": float(wmc2)}


def superposition(w: np.ndarray) -> dict[str, float]:
    w = np.asarray(w, np.float64)
    norms = np.linalg.norm(w, axis=1)
    nz = norms > 0
    hat = w[nz] / norms[nz, None]
    n = hat.shape[0]
    ov = hat @ hat.T
    msq = (np.sum(ov**2) - np.sum(np.diag(ov) ** 2)) / (n * (n - 1))
    g = w.T @ w
    quad = np.einsum("ij,jk,ik->i", w[nz], g, w[nz])
    dims = norms[nz] ** 4 / quad
    return {"mean_sq_overlap": float(msq), "dim_mean": float(dims.mean()), "dim_sum": float(dims.sum()), "wtw": g / w.shape[0]}


def matrix_power(g: np.ndarray, gamma: float) -> np.ndarray:
    s = (g + g.T) / 2
    lam, u = np.linalg.eigh(s)
    lam = np.where(lam > 1e-12 * lam.max(), lam, 0.0)
    return (u * np.where(lam > 0, lam, 0) ** gamma * (lam > 0)) @ u.T


def nfa(a: np.ndarray, g: np.ndarray, gamma: float) -> dict[str, float]:
    a = (a + a.T) / 2
    gp = matrix_power(g, gamma)
    k = a.shape[0]
    off = ~np.eye(k, dtype=bool)
    return {
        "cosine": float(np.sum(a * gp) / (np.linalg.norm(a) * np.linalg.norm(gp))),
        "pearson_all": float(np.corrcoef(a.ravel(), gp.ravel())[0, 1]),
        "pearson_offdiag": float(np.corrcoef(a[off], gp[off])[0, 1]),
    }

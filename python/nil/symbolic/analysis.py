"""What a decomposition says: salient interactions, how well they explain the outputs, their
distribution over orders, its shape, and what two models (or train and test samples) share.

Conventions (all on the merged interactions: OR terms of order 0 and 1 moved into AND):

- salient: |I(S)| > ratio·max_{S'≠∅} |I(S')| over the AND and OR terms of the same sample
  (ratio 0.05 as in Li & Zhang 2023); I(∅), the constant, is never counted.
- explanation ratio: 1 − Σ_T |v(T) − v̂(T)| / Σ_T |v(T) − v(∅)|, where v̂ is rebuilt from the
  constant and the salient interactions only (1 = the salient ones explain every output exactly;
  NaN when v is constant).
- per-order profile: for every order m = 1..n, the summed strength (and count) of salient
  interactions, split into positive and negative.
- shape of a profile h(1..n) (strength per order, normalised to sum 1): the peak order, the
  strength-weighted mean order, unimodality (h rises to the peak and falls after it, ignoring
  wiggles below 5 % of the peak), and a kind: "decay" when unimodal with the peak at order
  ≤ max(1, n // 4), "spindle" when unimodal with the peak strictly between that and n, "other"
  otherwise, "none" without salient interactions.
- two models decomposed jointly: shared (generalisable) interactions are salient in both;
  transferability = |top-k₁ ∩ top-k₂| / k over all AND and OR terms ranked by |I|; signed overlap
  = Σ_S sign(I₁)sign(I₂)·min(|I₁|, |I₂|) / Σ_S max(|I₁|, |I₂|) ∈ [−1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import NilValueError, ShapeError
from .decompose import AndOr, merge_low_orders
from .transforms import popcounts, transform

__all__ = [
    "OrderProfile", "Shape", "Sharing", "explanation_ratio", "order_profile", "profile_shape", "salient",
    "compare_groups", "sharing", "summarize",
]

DEFAULT_RATIO = 0.05


def _merged(d: AndOr | tuple[np.ndarray, np.ndarray], n: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    if isinstance(d, AndOr):
        a, o = d.merged()
        return a, o, d.n
    a, o = (np.asarray(x, dtype=np.float64) for x in d)
    if a.shape != o.shape:
        raise ShapeError(f"interactions: AND {a.shape} and OR {o.shape} differ in shape")
    size = a.shape[-1]
    k = size.bit_length() - 1
    if n is not None and n != k:
        raise ShapeError(f"interactions: {size} subsets are not 2^{n}")
    return a, o, k


def salient(i_and: np.ndarray, i_or: np.ndarray, ratio: float = DEFAULT_RATIO) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks of the salient AND and OR terms (same shapes) and the threshold per sample."""
    if not 0 <= ratio < 1:
        raise NilValueError(f"salient: ratio must lie in [0, 1), found {ratio}")
    a, o = np.abs(i_and), np.abs(i_or)
    peak = np.maximum(a[..., 1:].max(axis=-1, initial=0.0), o[..., 1:].max(axis=-1, initial=0.0))
    tau = ratio * peak
    sa = a > tau[..., None]
    so = o > tau[..., None]
    sa[..., 0] = False
    so[..., 0] = False
    zero = peak == 0
    sa[zero] = False
    so[zero] = False
    return sa, so, tau


def explanation_ratio(values: np.ndarray, i_and: np.ndarray, i_or: np.ndarray, keep_and: np.ndarray,
                      keep_or: np.ndarray) -> np.ndarray:
    """1 − Σ_T|v − v̂| / Σ_T|v − v(∅)| with v̂ rebuilt from the constant and the kept terms (merged
    interactions, whose OR part has no constant)."""
    a = np.where(keep_and, i_and, 0.0)
    a[..., 0] = i_and[..., 0]
    o = np.where(keep_or, i_or, 0.0)
    o[..., 0] = i_or[..., 0]
    v_hat = transform(a, "zeta") + transform(o, "or_inverse")
    v = np.asarray(values, dtype=np.float64)
    err = np.abs(v - v_hat).sum(axis=-1)
    scale = np.abs(v - v[..., :1]).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, 1.0 - err / np.where(scale > 0, scale, 1.0), np.nan)


@dataclass(frozen=True)
class OrderProfile:
    """Salient interactions per order m = 0..n (index m), summed over the given samples.

    ``positive``/``negative``: summed |I| of salient terms with I > 0 / I < 0 (AND and OR together;
    ``and_*``/``or_*`` split them); ``count_*``: how many. ``samples`` were summed."""

    positive: np.ndarray
    negative: np.ndarray
    count_positive: np.ndarray
    count_negative: np.ndarray
    and_strength: np.ndarray
    or_strength: np.ndarray
    samples: int

    @property
    def strength(self) -> np.ndarray:
        """positive + negative strength per order."""
        out: np.ndarray = self.positive + self.negative
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, for JSON."""
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}


def order_profile(d: AndOr | tuple[np.ndarray, np.ndarray], ratio: float = DEFAULT_RATIO,
                  mask: tuple[np.ndarray, np.ndarray] | None = None) -> OrderProfile:
    """The per-order histogram of salient interactions (or of the terms in ``mask``), split by
    sign, summed over every sample (all leading axes)."""
    a, o, n = _merged(d)
    if mask is None:
        sa, so, _ = salient(a, o, ratio)
    else:
        sa, so = mask
    sizes = popcounts(n)
    a2, o2 = a.reshape(-1, a.shape[-1]), o.reshape(-1, o.shape[-1])
    sa2, so2 = sa.reshape(a2.shape), so.reshape(o2.shape)

    def per_order(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
        return np.bincount(sizes, weights=np.where(keep, x, 0.0).sum(axis=0), minlength=n + 1)

    pos = per_order(np.maximum(a2, 0), sa2) + per_order(np.maximum(o2, 0), so2)
    neg = per_order(np.maximum(-a2, 0), sa2) + per_order(np.maximum(-o2, 0), so2)
    cpos = per_order((a2 > 0).astype(float), sa2) + per_order((o2 > 0).astype(float), so2)
    cneg = per_order((a2 < 0).astype(float), sa2) + per_order((o2 < 0).astype(float), so2)
    return OrderProfile(pos, neg, cpos, cneg, per_order(np.abs(a2), sa2), per_order(np.abs(o2), so2), a2.shape[0])


@dataclass(frozen=True)
class Shape:
    """The shape of a per-order strength profile (see the module docstring)."""

    kind: str
    peak_order: int
    mean_order: float
    unimodal: bool
    normalized: tuple[float, ...]


def profile_shape(strength: Any, tolerance: float = 0.05) -> Shape:
    """Decay vs spindle: ``strength`` is indexed by order 0..n (order 0 is ignored)."""
    h = np.asarray(strength, dtype=np.float64)[1:]
    n = len(h)
    total = h.sum()
    if n == 0 or not total > 0:
        return Shape("none", 0, float("nan"), False, tuple(float(x) for x in h))
    h = h / total
    peak = int(np.argmax(h))
    tol = tolerance * h[peak]
    rising = np.diff(h[: peak + 1])
    falling = np.diff(h[peak:])
    unimodal = bool((rising >= -tol).all() and (falling <= tol).all())
    mean = float((np.arange(1, n + 1) * h).sum())
    decay_max = max(1, n // 4)
    order = peak + 1
    if not unimodal:
        kind = "other"
    elif order <= decay_max:
        kind = "decay"
    elif order < n:
        kind = "spindle"
    else:
        kind = "other"
    return Shape(kind, order, mean, unimodal, tuple(float(x) for x in h))


def summarize(d: AndOr, values: Any, ratio: float = DEFAULT_RATIO) -> dict[str, Any]:
    """Per-decomposition summary over all samples: salient counts, explanation and strength
    ratios, AND/OR split, the order profile and its shape, and the solver's objective and gap."""
    a, o, n = _merged(d)
    sa, so, _ = salient(a, o, ratio)
    v = np.asarray(values, dtype=np.float64).reshape(a.shape)
    expl = explanation_ratio(v, a, o, sa, so)
    strength_all = (np.abs(a[..., 1:]).sum(axis=-1) + np.abs(o[..., 1:]).sum(axis=-1))
    strength_sal = np.where(sa, np.abs(a), 0.0).sum(axis=-1) + np.where(so, np.abs(o), 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        strength_ratio = np.where(strength_all > 0, strength_sal / np.where(strength_all > 0, strength_all, 1.0), np.nan)
    prof = order_profile((a, o), ratio)
    shape = profile_shape(prof.strength)
    count = sa.sum(axis=-1) + so.sum(axis=-1)
    return {
        "players": n,
        "samples": int(np.prod(a.shape[:-1])),
        "ratio": ratio,
        "salient_mean": float(count.mean()),
        "salient_and_mean": float(sa.sum(axis=-1).mean()),
        "salient_or_mean": float(so.sum(axis=-1).mean()),
        "explanation_ratio": float(np.nanmean(expl)) if np.isfinite(expl).any() else float("nan"),
        "strength_ratio": float(np.nanmean(strength_ratio)) if np.isfinite(strength_ratio).any() else float("nan"),
        "or_share": float(prof.or_strength.sum() / prof.strength.sum()) if prof.strength.sum() > 0 else float("nan"),
        "mean_order": shape.mean_order,
        "peak_order": shape.peak_order,
        "shape": shape.kind,
        "objective_mean": float(np.mean(d.objective)),
        "gap_max": float(np.nanmax(d.gap)) if d.solver != "sgd" else float("nan"),
        "profile": prof.to_dict(),
    }


@dataclass(frozen=True)
class Sharing:
    """Generalisable (shared) vs non-generalisable interactions of two jointly decomposed models."""

    shared_mean: float
    only_first_mean: float
    only_second_mean: float
    shared_fraction: float
    transferability: float
    signed_overlap: float
    k: int
    shared_profile: OrderProfile
    unshared_profile: OrderProfile
    shared_shape: Shape
    unshared_shape: Shape

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        out = {k: v for k, v in asdict(self).items() if not isinstance(v, dict)}
        out["shared_profile"] = self.shared_profile.to_dict()
        out["unshared_profile"] = self.unshared_profile.to_dict()
        out["shared_shape"] = asdict(self.shared_shape)
        out["unshared_shape"] = asdict(self.unshared_shape)
        return out


def sharing(d: AndOr, ratio: float = DEFAULT_RATIO, k: int = 10) -> Sharing:
    """Shared vs unshared salient interactions of the two models of a joint decomposition
    (``joint_and_or`` on [..., 2, 2^n]); the unshared group holds the first model's salient terms
    that the second lacks, and vice versa."""
    a, o, n = _merged(d)
    if a.ndim < 2 or a.shape[-2] != 2:
        raise ShapeError(f"sharing: expected a joint decomposition of 2 models [..., 2, 2^n], found {a.shape}")
    if k < 1:
        raise NilValueError(f"sharing: k must be ≥ 1, found {k}")
    sa, so, _ = salient(a, o, ratio)
    shared_a, shared_o = sa[..., 0, :] & sa[..., 1, :], so[..., 0, :] & so[..., 1, :]
    only1 = (sa[..., 0, :] & ~sa[..., 1, :]).sum(axis=-1) + (so[..., 0, :] & ~so[..., 1, :]).sum(axis=-1)
    only2 = (sa[..., 1, :] & ~sa[..., 0, :]).sum(axis=-1) + (so[..., 1, :] & ~so[..., 0, :]).sum(axis=-1)
    shared = shared_a.sum(axis=-1) + shared_o.sum(axis=-1)
    total1 = sa[..., 0, :].sum(axis=-1) + so[..., 0, :].sum(axis=-1)
    both = np.concatenate([a[..., 1:], o[..., 1:]], axis=-1)  # [..., 2, 2·(2^n − 1)]
    x1, x2 = both[..., 0, :].reshape(-1, both.shape[-1]), both[..., 1, :].reshape(-1, both.shape[-1])
    kk = min(k, x1.shape[-1])
    top1 = np.argsort(-np.abs(x1), axis=-1, kind="stable")[:, :kk]
    top2 = np.argsort(-np.abs(x2), axis=-1, kind="stable")[:, :kk]
    transfer = np.mean([len(set(r1.tolist()) & set(r2.tolist())) / kk for r1, r2 in zip(top1, top2)])
    num = (np.sign(x1) * np.sign(x2) * np.minimum(np.abs(x1), np.abs(x2))).sum(axis=-1)
    den = np.maximum(np.abs(x1), np.abs(x2)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    first = (a[..., 0, :], o[..., 0, :])
    shared_prof = order_profile(first, ratio, mask=(shared_a, shared_o))
    unshared_prof = order_profile(first, ratio, mask=(sa[..., 0, :] & ~shared_a, so[..., 0, :] & ~shared_o))
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = float(np.sum(shared) / np.sum(total1)) if np.sum(total1) > 0 else float("nan")
    return Sharing(
        float(np.mean(shared)), float(np.mean(only1)), float(np.mean(only2)), frac, float(transfer),
        float(np.nanmean(overlap)) if np.isfinite(overlap).any() else float("nan"), kk,
        shared_prof, unshared_prof, profile_shape(shared_prof.strength), profile_shape(unshared_prof.strength),
    )


def compare_groups(groups: Mapping[str, AndOr], ratio: float = DEFAULT_RATIO) -> dict[str, dict[str, Any]]:
    """Per-order profiles and shapes of several decompositions side by side (e.g. the same model
    on its training and its test samples)."""
    out: dict[str, dict[str, Any]] = {}
    for name, d in groups.items():
        prof = order_profile(d, ratio)
        out[name] = {"profile": prof.to_dict(), "shape": asdict(profile_shape(prof.strength))}
    return out

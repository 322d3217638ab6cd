"""Masked evaluation: v(x_T) for every coalition T of the players of every sample, streamed.

For S samples and C coalitions (2^n, or the C(n, ≤k) subsets of size ≤ k), the S·C masked inputs
are built and run in batches of ``batch_size`` (coalitions of several samples share a batch when
2^n is small), so memory holds one batch of inputs at a time, never all of them. Values come back
as float64 [S, C], coalition index = bitmask (or the order of ``low_order_masks(n, k)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import NilValueError, ShapeError
from .players import MAX_FULL_PLAYERS, Players, mask_bits
from .transforms import low_order_masks
from .value import ValueKind, read_value, select_position

__all__ = ["MaskedValues", "masked_values", "make_baseline", "learn_baseline"]

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MaskedValues:
    """v(x_T) of every sample and coalition, with what produced it.

    ``values``: float64 [samples, coalitions]; ``targets``: the class/token (or output coordinate)
    whose value was read, per sample; ``order``: None for all 2^n coalitions, else k (the
    coalitions of size ≤ k in ``low_order_masks(n, k)`` order); ``forwards`` masked inputs run in
    ``seconds``."""

    values: np.ndarray
    targets: np.ndarray
    n: int
    order: int | None
    forwards: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Masked forward passes per second."""
        return self.forwards / self.seconds if self.seconds > 0 else float("nan")


def make_baseline(x: torch.Tensor, baseline: Any, reference: torch.Tensor | None = None) -> torch.Tensor:
    """The baseline input for samples ``x`` [S, ...]: ``"zero"``, ``"mean"`` (over ``reference``
    [R, ...], per entry), an int token id (integer inputs), or a tensor broadcastable to one input
    or to ``x`` (e.g. one from ``learn_baseline``)."""
    if isinstance(baseline, torch.Tensor):
        b = baseline.to(device=x.device, dtype=x.dtype)
        try:
            return torch.broadcast_to(b, x.shape)
        except RuntimeError:
            raise ShapeError(f"baseline of shape {tuple(b.shape)} does not broadcast to the inputs {tuple(x.shape)}") from None
    if isinstance(baseline, bool) or not isinstance(baseline, (str, int)):
        raise NilValueError(f"baseline: expected 'zero', 'mean', a token id or a tensor, found {baseline!r}")
    if isinstance(baseline, int):
        if x.is_floating_point():
            raise NilValueError("baseline: a token id needs integer (token) inputs; use 'zero', 'mean' or a tensor")
        return torch.full_like(x, baseline)
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "mean":
        if reference is None:
            raise NilValueError("baseline 'mean' needs reference inputs (e.g. training samples)")
        if not reference.is_floating_point() or not x.is_floating_point():
            raise NilValueError("baseline 'mean' needs real-valued inputs (for tokens, mask embeddings instead)")
        return torch.broadcast_to(reference.to(device=x.device, dtype=x.dtype).mean(dim=0), x.shape)
    raise NilValueError(f"baseline: expected 'zero', 'mean', a token id or a tensor, found {baseline!r}")


def _targets(fwd: Forward, x: torch.Tensor, kind: ValueKind, target: Any, position: int, batch_size: int) -> torch.Tensor:
    """The target per sample: given (int or [S]), or the argmax of the full input's output."""
    s = x.shape[0]
    if target is not None:
        t = torch.as_tensor(target, dtype=torch.int64).reshape(-1)
        if t.numel() == 1:
            t = t.expand(s)
        if t.numel() != s:
            raise ShapeError(f"masked_values: {t.numel()} targets for {s} samples")
        return t.to(x.device)
    if kind == "output":
        return torch.zeros(s, dtype=torch.int64, device=x.device)
    outs = []
    for i in range(0, s, batch_size):
        z = select_position(fwd(x[i : i + batch_size]), position)
        outs.append(z.argmax(dim=1) if z.shape[1] > 1 else (z[:, 0] > 0).long())
    return torch.cat(outs)


@torch.no_grad()
def masked_values(
    model: torch.nn.Module | Forward,
    x: torch.Tensor,
    players: Players,
    *,
    baseline: Any = "zero",
    reference: torch.Tensor | None = None,
    value: ValueKind = "log-odds",
    target: Any = None,
    position: int = -1,
    order: int | None = None,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> MaskedValues:
    """v(x_T) for every sample of ``x`` [S, ...] and every coalition T of ``players``.

    ``model`` is a module or any callable batch → outputs ([B, C] or [B, T, C]; ``position``
    picks the sequence position). ``value="log-odds"`` reads the target's log-odds — ``target``
    gives the class per sample (or one int), default the argmax of the full input's output (for a
    language model: its argmax next token); ``value="output"`` reads output coordinate ``target``
    (default 0). ``order=k`` evaluates only the coalitions of size ≤ k (enough for the exact
    interactions of order ≤ k). Inputs go to ``device`` (default: the model's, else x's).
    """
    if x.ndim < 1:
        raise ShapeError("masked_values: expected samples [S, ...], found a scalar")
    if batch_size < 1:
        raise NilValueError(f"masked_values: batch_size must be ≥ 1, found {batch_size}")
    n = players.n
    modes: list[tuple[torch.nn.Module, bool]] = []
    if order is None and n > MAX_FULL_PLAYERS:
        raise NilValueError(f"masked_values: {n} players need 2^{n} coalitions; at most {MAX_FULL_PLAYERS} (use order=k)")
    if isinstance(model, torch.nn.Module):
        if device is None:
            p = next(iter(model.parameters()), None)
            device = p.device if p is not None else x.device
        modes = [(mod, mod.training) for mod in model.modules()]  # restored exactly afterwards
        model.eval()
    dev = torch.device(device) if device is not None else x.device
    xs = x.to(dev)
    players.check(xs[0])
    base = make_baseline(xs, baseline, reference)
    fwd: Forward = model
    targets = _targets(fwd, xs, value, target, position, batch_size)
    if order is None:
        count = 1 << n
        coalitions = None
    else:
        masks_np = low_order_masks(n, order).astype(np.int64)
        count = len(masks_np)
        coalitions = torch.from_numpy(masks_np).to(dev)
    s = xs.shape[0]
    total = s * count
    out = torch.empty(total, dtype=torch.float64, device=dev)
    from ..capture.progress import progress_bar

    t0 = time.perf_counter()
    with progress_bar(f"masked forwards ({s} samples × {count} coalitions)", total, progress) as advance:
        for start in range(0, total, batch_size):
            idx = torch.arange(start, min(start + batch_size, total), device=dev)
            sid, cid = idx // count, idx % count
            codes = cid if coalitions is None else coalitions[cid]
            keep = players.keep(mask_bits(codes, n))
            inputs = torch.where(keep, xs[sid], base[sid])
            out[start : start + len(idx)] = read_value(fwd(inputs), value, targets[sid], position)
            advance(len(idx))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    for mod, mode in modes:
        mod.training = mode
    vals = out.view(s, count).cpu().numpy()
    if not np.isfinite(vals).all():
        raise NilValueError("masked_values: the model gave a non-finite value on some masked input "
                            "(a log-odds of ±inf: check the baseline and the target)")
    return MaskedValues(vals, targets.cpu().numpy(), n, order, total, seconds)


def learn_baseline(
    model: torch.nn.Module | Forward,
    x: torch.Tensor,
    players: Players,
    *,
    init: Any = "zero",
    reference: torch.Tensor | None = None,
    value: ValueKind = "log-odds",
    target: Any = None,
    position: int = -1,
    steps: int = 200,
    lr: float = 0.05,
    bounds: tuple[float, float] | None = None,
) -> torch.Tensor:
    """A learned baseline (one input's shape) that makes the empty coalition uninformative.

    Minimises the mean of v(x_∅)² over the samples ``x`` — the output with every player masked
    should carry no evidence for the target (Ren et al. 2023 learn baselines for the same purpose
    with a sparsity loss; this is the simple, documented variant) — by Adam for ``steps`` steps
    from ``init``, clamping every entry to ``bounds`` (default: the range of ``reference`` or of
    ``x``) so that the baseline stays a plausible input. Only player entries matter; background
    entries are never replaced. Needs real-valued inputs (mask embeddings for tokens)."""
    if not x.is_floating_point():
        raise NilValueError("learn_baseline: needs real-valued inputs (for tokens, mask embeddings instead)")
    fwd: Forward = model
    b = make_baseline(x, init, reference)[0].detach().clone()
    src = reference if reference is not None else x
    lo, hi = bounds if bounds is not None else (float(src.min()), float(src.max()))
    b = b.clamp(lo, hi).requires_grad_(True)
    with torch.no_grad():
        targets = _targets(fwd, x, value, target, position, len(x))
    empty = torch.zeros(1, players.n, dtype=torch.bool, device=x.device)
    keep = players.keep(empty)[0].to(x.device)
    opt = torch.optim.Adam([b], lr=lr)
    # The model's own parameters get no gradients (and keep their flags afterwards).
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    flags = [q.requires_grad for q in params]
    for q in params:
        q.requires_grad_(False)
    try:
        _fit_baseline(fwd, x, b, keep, targets, value, position, steps, opt, lo, hi)
    finally:
        for q, f in zip(params, flags):
            q.requires_grad_(f)
    return b.detach()


def _fit_baseline(fwd: Forward, x: torch.Tensor, b: torch.Tensor, keep: torch.Tensor, targets: torch.Tensor,
                  value: ValueKind, position: int, steps: int, opt: torch.optim.Optimizer, lo: float, hi: float) -> None:
    for _ in range(steps):
        opt.zero_grad()
        inputs = torch.where(keep, x, b.expand_as(x))
        v = read_value(fwd(inputs), value, targets, position)
        loss = (v**2).mean()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        with torch.no_grad():
            b.clamp_(lo, hi)

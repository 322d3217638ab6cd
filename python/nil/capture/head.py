"""The output head at the last position only: capture differentiates the last-position outputs
(``positions="last"``), so a language model's head (a [B, T, d] → [B, T, V] linear map, V of tens of
thousands) need not run, nor be back-propagated, at the T − 1 other positions.

``last_position_head(model, first_batch, skip)`` detects the head with one no-grad forward of the
first sample: the ``nn.Linear`` whose output *is* the tensor capture differentiates
(``batches.model_output``), called once, on a [B, T, d] input. While the context is open, a
forward pre-hook hands that module only each sample's last position ([B, 1, d]; the last unpadded
one under an attention mask, as ``select_output`` picks it), so the model returns [B, 1, V] and
``select_output`` takes that position. Nothing is changed when the head is not found that way
(logits post-processed, a head called twice, non-linear heads), or when the head is one of the
``skip`` modules (a selected layer, whose rows must cover every position).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .batches import CURRENT_MASK, Batch, call, model_output

__all__ = ["last_position_head"]


def _detect(model: nn.Module, batch: Batch) -> nn.Linear | None:
    one = next(batch.split(1))
    seen: dict[int, nn.Linear] = {}
    calls: dict[int, int] = {}
    handles = []

    def record(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        calls[id(mod)] = calls.get(id(mod), 0) + 1
        if isinstance(out, torch.Tensor) and args and isinstance(args[0], torch.Tensor) and args[0].ndim == 3:
            assert isinstance(mod, nn.Linear)
            seen[id(out)] = mod

    for m in model.modules():
        if isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(record))
    try:
        with torch.no_grad():
            y = model_output(call(model, one))
    finally:
        for h in handles:
            h.remove()
    hit = seen.get(id(y))
    if hit is None or y.ndim != 3 or calls.get(id(hit)) != 1:
        return None
    return hit


def _last(h: torch.Tensor) -> torch.Tensor:
    mask = CURRENT_MASK.get()
    if mask is None or mask.ndim != 2 or mask.shape != h.shape[:2]:
        return h[:, -1:]
    t = h.shape[1]
    idx = torch.arange(t, device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), idx, torch.zeros_like(idx)).amax(dim=1).to(h.device)
    return h[torch.arange(h.shape[0], device=h.device), last].unsqueeze(1)


@contextmanager
def last_position_head(model: nn.Module, first_batch: Batch, skip: set[nn.Module]) -> Iterator[nn.Linear | None]:
    """See the module docstring; yields the head module used (None: nothing changed)."""
    head = _detect(model, first_batch)
    if head is None or head in skip:
        yield None
        return

    def pre(mod: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        h = args[0]
        if not isinstance(h, torch.Tensor) or h.ndim != 3 or h.shape[1] == 1:
            return None
        return (_last(h), *args[1:])

    handle = head.register_forward_pre_hook(pre)
    try:
        yield head
    finally:
        handle.remove()

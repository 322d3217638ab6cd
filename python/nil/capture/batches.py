"""Batches as users pass them (tensors, ``(inputs, ...)`` tuples, Hugging Face dicts), moved to a
device, split into micro-batches, fed to the model; and the model output y that capture differentiates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..errors import NilValueError, ShapeError
from .probes import Projector

__all__ = ["CURRENT_MASK", "Batch", "Positions", "as_batch", "call", "model_output", "select_output"]

#: The attention mask of the batch the model is being called on (set by ``call``; read by head.py).
CURRENT_MASK: ContextVar[torch.Tensor | None] = ContextVar("nil_capture_mask", default=None)

Positions = Literal["last", "all"]

#: Dict keys a causal LM accepts but capture must not pass (no loss is needed).
_DROP_KEYS = ("labels",)


@dataclass(frozen=True)
class Batch:
    """One batch ready to call the model with: ``model(*args, **kwargs)``; ``size`` samples."""

    args: tuple[torch.Tensor, ...]
    kwargs: dict[str, Any]
    size: int

    def split(self, micro_batch: int | None) -> Iterator[Batch]:
        """Consecutive slices of at most ``micro_batch`` samples along the first axis."""
        if micro_batch is None or micro_batch >= self.size:
            yield self
            return
        for lo in range(0, self.size, micro_batch):
            hi = min(lo + micro_batch, self.size)
            yield Batch(
                tuple(_slice(a, lo, hi, self.size) for a in self.args),
                {k: _slice(v, lo, hi, self.size) for k, v in self.kwargs.items()},
                hi - lo,
            )

    def repeat(self, copies: int) -> Batch:
        """The batch tiled ``copies`` times along the first axis (copy j holds samples
        [j·size, (j+1)·size)): independent samples, so one backward serves ``copies`` cotangents."""
        def tile(x: Any) -> Any:
            if isinstance(x, torch.Tensor) and x.ndim > 0 and x.shape[0] == self.size:
                return x.repeat(copies, *([1] * (x.ndim - 1)))
            return x

        return Batch(
            tuple(tile(a) for a in self.args),
            {k: tile(v) for k, v in self.kwargs.items()},
            self.size * copies,
        )

    @property
    def attention_mask(self) -> torch.Tensor | None:
        """The Hugging Face ``attention_mask`` if the batch has one."""
        m = self.kwargs.get("attention_mask")
        return m if isinstance(m, torch.Tensor) else None


def _slice(x: Any, lo: int, hi: int, size: int) -> Any:
    if isinstance(x, torch.Tensor) and x.ndim > 0 and x.shape[0] == size:
        return x[lo:hi]
    return x


def _to(x: Any, device: torch.device) -> Any:
    return x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x


def as_batch(raw: Any, device: torch.device, index: int = 0) -> Batch:
    """Normalises one user batch: a tensor (the input), a tuple/list whose first item is the input
    (targets and the rest are ignored), or a dict of keyword inputs (``labels`` dropped)."""
    if isinstance(raw, torch.Tensor):
        args: tuple[Any, ...] = (raw.to(device, non_blocking=True),)
        kwargs: dict[str, Any] = {}
        lead = raw
    elif isinstance(raw, Mapping):
        kwargs = {str(k): _to(v, device) for k, v in raw.items() if k not in _DROP_KEYS}
        args = ()
        tensors = [v for v in kwargs.values() if isinstance(v, torch.Tensor) and v.ndim > 0]
        if not tensors:
            raise NilValueError(f"batch {index}: a dict batch needs at least one tensor value")
        lead = kwargs.get("input_ids", kwargs.get("inputs_embeds", tensors[0]))
    elif isinstance(raw, (tuple, list)) and raw and isinstance(raw[0], torch.Tensor):
        lead = raw[0]
        args = (raw[0].to(device, non_blocking=True),)
        kwargs = {}
    else:
        raise NilValueError(
            f"batch {index}: expected a tensor, an (inputs, ...) tuple or a dict of tensors, "
            f"found {type(raw).__name__}"
        )
    if lead.ndim == 0:
        raise ShapeError(f"batch {index}: the input must have a batch axis, found a scalar")
    return Batch(args, kwargs, int(lead.shape[0]))


def model_output(out: Any) -> torch.Tensor:
    """The tensor capture differentiates: the output itself, ``.logits`` (Hugging Face), a dict's
    ``"logits"``, or the first item of a tuple."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, Mapping) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]  # type: ignore[no-any-return]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise NilValueError(
        f"model output: expected a tensor, an object with .logits or a tuple, found {type(out).__name__}"
    )


def _last_positions(y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None or mask.ndim != 2 or mask.shape[:2] != y.shape[:2]:
        return y[:, -1]
    # Right padding: the last position whose mask is 1 (left padding also ends at T-1).
    t = y.shape[1]
    idx = torch.arange(t, device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), idx, torch.zeros_like(idx)).amax(dim=1)
    return y[torch.arange(y.shape[0], device=y.device), last.to(y.device)]


def select_output(
    model_out: Any,
    batch: Batch,
    positions: Positions,
    projector: Projector | None,
) -> torch.Tensor:
    """y as a (batch × outputs) matrix: sequence outputs [B, T, V] at the last position (or all
    positions flattened), optionally projected on the last axis by P (k × V), computed in at
    least float32 (a bfloat16 model's logits are cast first, as the reference does)."""
    y = model_output(model_out)
    if y.ndim == 0 or y.shape[0] != batch.size:
        raise ShapeError(
            f"model output: expected a leading batch axis of {batch.size}, found shape {tuple(y.shape)}"
        )
    if y.ndim == 3 and positions == "last":
        y = _last_positions(y, batch.attention_mask)
    elif positions not in ("last", "all"):
        raise NilValueError(f"positions: expected 'last' or 'all', found {positions!r}")
    if y.ndim == 1:
        y = y.unsqueeze(1)
    y = y.to(torch.promote_types(y.dtype, torch.float32))
    projection = projector.matrix(y.shape[-1]) if projector is not None else None
    if projection is not None:
        if projection.shape[1] != y.shape[-1]:
            raise ShapeError(
                f"project: a k×{y.shape[-1]} matrix is needed for outputs of size {y.shape[-1]}, "
                f"found {tuple(projection.shape)}"
            )
        y = y @ projection.to(device=y.device, dtype=y.dtype).t()
    return y.reshape(y.shape[0], -1)


def call(model: nn.Module, batch: Batch) -> Any:
    """Runs the model on one batch."""
    token = CURRENT_MASK.set(batch.attention_mask)
    try:
        return model(*batch.args, **batch.kwargs)
    finally:
        CURRENT_MASK.reset(token)

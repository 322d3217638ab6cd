"""The losses of nil's tasks, as a sum and a count so evaluation over many batches is an exact mean.

- ``mse``: squared error per element (teacher–student regression, docs/method.md §1).
- ``ce``: cross-entropy per sample (classification).
- ``lm``: cross-entropy per token over every position, in nats (byte LM).
- ``recon``: squared error summed over dimensions, per sample (bottleneck toy, docs/method.md §6.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import NilValueError
from ._data import LossKind

__all__ = ["loss_sum", "loss_mean", "loss_count"]


def loss_count(kind: LossKind, target: torch.Tensor) -> int:
    """The number of units a batch's summed loss is divided by: elements (``mse``), samples
    (``ce``, ``recon``) or tokens (``lm``)."""
    if kind in ("mse", "lm"):
        return target.numel()
    if kind in ("ce", "recon"):
        return int(target.shape[0])
    raise NilValueError(f"unknown loss kind {kind!r}")


def loss_sum(kind: LossKind, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The summed loss over a batch (float32 or wider) and the number of units it sums over."""
    count = loss_count(kind, target)
    pred = pred.float()
    if kind == "mse":
        return (pred - target).square().sum(), count
    if kind == "ce":
        return F.cross_entropy(pred, target, reduction="sum"), count
    if kind == "lm":
        return F.cross_entropy(pred.flatten(0, 1), target.flatten(), reduction="sum"), count
    return (target - pred.abs()).square().sum(), count


def loss_mean(kind: LossKind, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The training objective: ``loss_sum / count`` for one batch."""
    total, count = loss_sum(kind, pred, target)
    return total / count

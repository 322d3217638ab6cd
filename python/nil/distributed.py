"""Reductions of per-rank results under ``torch.distributed`` (DDP): every rank accumulates its own
rows, then one all-reduce of the exact float64 sums and counts gives every rank the answer a single
process would have computed (up to the order of f64 additions)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .accumulator import AgopAccumulator
from .errors import ShapeError

__all__ = ["all_reduce_accumulators", "all_reduce_capture", "rank_dir"]


def _dist() -> Any:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call init_process_group first")
    return dist


def rank_dir(base: str | os.PathLike[str], rank: int | None = None) -> Path:
    """The capture directory of one rank, ``BASE/rank-NNNNN``: ranks never share a file.

    ``nil analyze BASE/rank-*`` (or ``nil merge``) combines them exactly."""
    if rank is None:
        rank = int(_dist().get_rank())
    return Path(base) / f"rank-{rank:05d}"


def all_reduce_accumulators(
    accumulators: Mapping[str, AgopAccumulator], group: Any = None
) -> dict[str, AgopAccumulator]:
    """Sums every rank's accumulators (same names and dims on every rank) and returns the total,
    identical on all ranks. Works with the gloo (CPU) and NCCL (CUDA) backends."""
    import torch

    dist = _dist()
    layout = sorted((name, acc.dim) for name, acc in accumulators.items())
    layouts: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(layouts, layout, group=group)
    for rank, other in enumerate(layouts):
        if other != layout:
            raise ShapeError(
                f"all_reduce_accumulators: rank {dist.get_rank(group)} holds layers {layout}, "
                f"rank {rank} holds {other}; every rank must capture the same layers"
            )
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else torch.device("cpu")
    out: dict[str, AgopAccumulator] = {}
    for name, _ in layout:
        acc = accumulators[name]
        total = torch.from_numpy(np.ascontiguousarray(acc.sum())).to(device)
        counts = torch.tensor([acc.count, acc.nonfinite], dtype=torch.int64, device=device)
        dist.all_reduce(total, group=group)
        dist.all_reduce(counts, group=group)
        out[name] = AgopAccumulator.from_sum(total.cpu().numpy(), int(counts[0]), int(counts[1]))
    return out


def all_reduce_capture(records: Mapping[str, Any], group: Any = None) -> dict[str, Any]:
    """``capture_agop``'s per-layer records summed over ranks: the same layers with the total rows,
    so every rank holds what one process capturing all ranks' batches would have computed."""
    from .capture.record import LayerAgop

    totals = all_reduce_accumulators({n: r.accumulator for n, r in records.items()}, group)
    return {
        n: LayerAgop(name=r.name, kind=r.kind, accumulator=totals[n], settings=dict(r.settings))
        for n, r in records.items()
    }

"""Per-layer input AGOP (the Neural Feature Ansatz object, docs/method.md R1): for every selected layer,
G = (1/n)·Σ g gᵀ with g = ∂(vᵀy)/∂h per sample (per token), one backward pass per probe v serving
every layer at once."""

from __future__ import annotations

from collections.abc import Iterable, Sized
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn

from .batches import Positions, as_batch, call, select_output
from .device_gram import DeviceGram
from .head import last_position_head
from .hooks import InputRecorder
from .layers import Layer
from .probes import Projector, ProbeKind, basis_probe, draw_probes, generator
from .progress import progress_bar
from .rows import gradient_rows

__all__ = ["InputSettings", "RowSink", "capture_input"]


class RowSink(Protocol):
    """Anything with ``write({layer: rows})`` (e.g. ``nil.shards.ShardWriter``)."""

    def write(self, rows: dict[str, torch.Tensor]) -> Any: ...


@dataclass(frozen=True)
class InputSettings:
    """How input AGOP rows are formed (recorded in every result's ``settings``)."""

    probes: int | Literal["exact"]
    probe_kind: ProbeKind
    positions: Positions
    token_stride: int
    seed: int
    row_dtype: torch.dtype
    micro_batch: int | None
    accumulate: bool


def _layer_rows(
    layers: dict[str, Layer], names: list[str], targets: list[torch.Tensor],
    grads: tuple[torch.Tensor | None, ...], settings: InputSettings, mask: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    parts: dict[str, list[torch.Tensor]] = {}
    for name, target, g in zip(names, targets, grads):
        grad = torch.zeros_like(target) if g is None else g
        rows = gradient_rows(layers[name], grad, settings.token_stride, mask)
        parts.setdefault(name, []).append(rows.to(settings.row_dtype))
    return {n: (p[0] if len(p) == 1 else torch.cat(p)) for n, p in parts.items()}


def capture_input(
    model: nn.Module,
    batches: Iterable[Any],
    layers: list[Layer],
    projector: Projector,
    settings: InputSettings,
    device: torch.device,
    sink: RowSink | None,
    progress: bool,
) -> dict[str, DeviceGram]:
    """Device Grams Σ g gᵀ of every layer over all batches, micro-batches and probes.

    Rows are streamed to ``sink`` (one ``write`` per micro-batch and probe) and, when
    ``settings.accumulate``, added to the Grams. Exact probes are √m·e_c (probes.py), so random and
    exact probes average to the same E[JᵀJ] under the same row count.
    """
    by_name = {layer.name: layer for layer in layers}
    grams: dict[str, DeviceGram] = {}
    gen = generator(device, settings.seed)
    total = len(batches) if isinstance(batches, Sized) else None
    skip = {layer.module for layer in layers}
    head_checked = False
    with progress_bar("input AGOP", total, progress) as advance, ExitStack() as head:
        for index, raw in enumerate(batches):
            for mb in as_batch(raw, device, index).split(settings.micro_batch):
                if not head_checked and settings.positions == "last":
                    # The output head at the last position only (head.py): same rows, less work.
                    head.enter_context(last_position_head(model, mb, skip))
                head_checked = True
                with InputRecorder(layers) as rec:
                    out = call(model, mb)
                y = select_output(out, mb, settings.positions, projector)
                del out
                names, targets = rec.flat_targets()
                m = y.shape[1]
                n_probes = m if settings.probes == "exact" else int(settings.probes)
                for p in range(n_probes):
                    if settings.probes == "exact":
                        v = basis_probe(mb.size, m, p, y.dtype, device)
                    else:
                        v = draw_probes((mb.size, m), settings.probe_kind, gen, y.dtype, device)
                    grads = torch.autograd.grad(
                        y, targets, grad_outputs=v, retain_graph=p < n_probes - 1, allow_unused=True
                    )
                    rows = _layer_rows(by_name, names, targets, grads, settings, mb.attention_mask)
                    del grads
                    if settings.accumulate:
                        for name, r in rows.items():
                            if name not in grams:
                                grams[name] = DeviceGram(r.shape[1], device, settings.row_dtype)
                            grams[name].add_rows(r)
                    if sink is not None:
                        sink.write(rows)
                del y, targets, rec
            advance(1)
    return grams

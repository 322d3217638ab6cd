"""The projected output AGOP (output Gram) E_x[(PJ)(PJ)ᵀ], J = ∂y/∂z with z the input of the first
selected layer (a Transformer's embeddings) and y the last-position outputs.

- ``exact`` (docs/method.md R2): the k rows of PJ from k vector-Jacobian products, batched with
  ``autograd.grad(..., is_grads_batched=True)`` where autograd allows and looped otherwise (or by
  tiling the batch, ``vjp="replicate"``); no probe noise.
- ``reference-jvp`` (docs/method.md §3.1): the reference's random-JVP estimator, reproduced for
  reference mode: P and the probes u ~ N(0, I) shaped like z from one generator seeded 42 (+ seed),
  Ju by ``torch.autograd.functional.jvp`` (double backward), non-finite entries zeroed,
  (Ju)ᵀ(Ju) averaged over samples, probes and batches.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sized
from contextlib import ExitStack
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..errors import NilValueError
from .batches import Batch, as_batch, call, select_output
from .device_gram import DeviceGram, product_dtype
from .head import last_position_head
from .hooks import InputRecorder
from .layers import Layer
from .probes import Projector, generator
from .progress import progress_bar

__all__ = ["VjpMode", "exact_output_gram", "reference_jvp_gram"]


def _total(batches: Iterable[Any]) -> int | None:
    return len(batches) if isinstance(batches, Sized) else None


VjpMode = Literal["vmap", "loop", "replicate"]


def _vmap_rows(y: torch.Tensor, z: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    v = torch.zeros(hi - lo, *y.shape, dtype=y.dtype, device=y.device)
    idx = torch.arange(hi - lo, device=y.device)
    v[idx, :, idx + lo] = 1.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*performance drop.*")
        (g,) = torch.autograd.grad(y, z, grad_outputs=v, retain_graph=True, is_grads_batched=True)
    return g


def _loop_rows(y: torch.Tensor, z: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    out = []
    for c in range(lo, hi):
        v = torch.zeros_like(y)
        v[:, c] = 1.0
        (g,) = torch.autograd.grad(y, z, grad_outputs=v, retain_graph=True)
        out.append(g)
    return torch.stack(out)


def _replicated_rows(
    model: nn.Module, mb: Batch, first: Layer, projector: Projector, lo: int, hi: int
) -> torch.Tensor:
    """Rows lo..hi of PJ from one forward and one backward of the batch tiled hi − lo times
    (copy j carries cotangent e_{lo+j}); plain kernels only, no vmap."""
    copies = hi - lo
    rep = mb.repeat(copies)
    with InputRecorder([first], leaf="always") as rec:
        out = call(model, rep)
    y = select_output(out, rep, "last", projector)
    del out
    z = rec.inputs[first.name][0]
    v = torch.zeros_like(y).view(copies, mb.size, -1)
    idx = torch.arange(copies, device=y.device)
    v[idx, :, idx + lo] = 1.0
    (g,) = torch.autograd.grad(y, z, grad_outputs=v.view_as(y))
    return g.view(copies, mb.size, *g.shape[1:])


def exact_output_gram(
    model: nn.Module,
    batches: Iterable[Any],
    first: Layer,
    projector: Projector,
    device: torch.device,
    row_dtype: torch.dtype,
    micro_batch: int | None,
    vjp_chunk: int,
    vjp: VjpMode,
    progress: bool,
) -> tuple[DeviceGram, str]:
    """Σ over samples of (PJ)(PJ)ᵀ (k×k, float64 on the device) with the sample count, and how
    the VJPs ran: ``"vmap"`` (``is_grads_batched``; falls back to ``"loop"`` the first time
    autograd refuses), ``"loop"`` (one backward per coordinate) or ``"replicate"`` (the batch tiled
    ``vjp_chunk`` times, one forward and backward per chunk: more memory, only standard kernels;
    needs samples that do not interact, true of eval-mode models)."""
    if vjp not in ("vmap", "loop", "replicate"):
        raise NilValueError(f"vjp: expected 'vmap', 'loop' or 'replicate', found {vjp!r}")
    gram: DeviceGram | None = None
    mode: str = vjp
    prod = product_dtype(row_dtype)
    head_checked = False
    with progress_bar("output AGOP", _total(batches), progress) as advance, ExitStack() as head:
        for index, raw in enumerate(batches):
            for mb in as_batch(raw, device, index).split(micro_batch):
                if not head_checked:
                    # The output head at the last position only (head.py): same Gram, less work.
                    head.enter_context(last_position_head(model, mb, {first.module}))
                    head_checked = True
                with InputRecorder([first], leaf="always") as rec:
                    out = call(model, mb)
                y = select_output(out, mb, "last", projector)
                del out
                z = rec.inputs[first.name][0]
                k = y.shape[1]
                rows = torch.empty(k, mb.size, z[0].numel(), dtype=prod, device=device)
                for lo in range(0, k, vjp_chunk):
                    hi = min(lo + vjp_chunk, k)
                    if mode == "replicate":
                        g = _replicated_rows(model, mb, first, projector, lo, hi)
                    elif mode == "vmap":
                        try:
                            g = _vmap_rows(y, z, lo, hi)
                        except (RuntimeError, NotImplementedError):
                            mode = "loop"
                            g = _loop_rows(y, z, lo, hi)
                    else:
                        g = _loop_rows(y, z, lo, hi)
                    rows[lo:hi] = g.reshape(hi - lo, mb.size, -1).to(row_dtype).to(prod)
                    del g
                del y, z, rec
                bad = ~torch.isfinite(rows).all(dim=2).all(dim=0)
                rows.masked_fill_(bad.view(1, -1, 1), 0.0)
                flat = rows.reshape(k, -1)
                if gram is None:
                    gram = DeviceGram(k, device, row_dtype)
                nbad = bad.sum()
                gram.add_gram(flat @ flat.t(), mb.size - nbad, nbad)
                del rows, flat
            advance(1)
    if gram is None:
        raise NilValueError("capture_agop: no batches were given")
    return gram, mode


def _forward_input(model: nn.Module, first: Layer, mb: Batch) -> torch.Tensor:
    with torch.no_grad(), InputRecorder([first], leaf="always") as rec:
        out = call(model, mb)
    del out
    return rec.inputs[first.name][0].detach()


def reference_jvp_gram(
    model: nn.Module,
    batches: Iterable[Any],
    first: Layer,
    projector: Projector,
    device: torch.device,
    probes: int,
    seed: int,
    row_dtype: torch.dtype,
    micro_batch: int | None,
    progress: bool,
) -> DeviceGram:
    """The reference estimator: mean over batches, probes and samples of (Ju)ᵀ(Ju), Ju = P·J·u.

    One generator on the device, seeded 42 + ``seed``, draws P (k×V, N(0,1)/√k) first and then
    every probe, in the reference's order (batch, probe); micro-batches slice one full-batch probe,
    so the result does not depend on ``micro_batch`` in exact arithmetic.
    """
    gen = generator(device, 42 + int(seed))
    gram: DeviceGram | None = None
    with progress_bar("output AGOP (reference JVP)", _total(batches), progress) as advance:
        for index, raw in enumerate(batches):
            batch = as_batch(raw, device, index)
            parts = list(batch.split(micro_batch))
            z = torch.cat([_forward_input(model, first, mb) for mb in parts])
            if isinstance(projector.spec, int) and projector._matrix is None:
                with torch.no_grad():
                    vocab = select_output(call(model, parts[0]), parts[0], "last", None).shape[-1]
                k = projector.spec
                projector._matrix = torch.randn(k, vocab, generator=gen, device=device) / math.sqrt(k)
            for _ in range(probes):
                u = torch.randn(z.shape, generator=gen, device=device, dtype=z.dtype)
                lo = 0
                for mb in parts:
                    hi = lo + mb.size

                    def f(zz: torch.Tensor, mb: Batch = mb) -> torch.Tensor:
                        with InputRecorder([first], replace={first.name: zz}):
                            out = call(model, mb)
                        return select_output(out, mb, "last", projector)

                    # Double backward: SDPA's fused kernels have none, its math kernel does.
                    with sdpa_kernel([SDPBackend.MATH]):
                        _, ju = torch.autograd.functional.jvp(  # type: ignore[no-untyped-call]
                            f, z[lo:hi], u[lo:hi]
                        )
                    ju = torch.nan_to_num(ju.to(product_dtype(row_dtype)), nan=0.0, posinf=0.0, neginf=0.0)
                    if gram is None:
                        gram = DeviceGram(ju.shape[1], device, row_dtype)
                    gram.add_gram(ju.t() @ ju, mb.size)
                    lo = hi
            advance(1)
    if gram is None:
        raise NilValueError("capture_agop: no batches were given")
    return gram

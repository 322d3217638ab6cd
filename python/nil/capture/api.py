"""``capture_agop``: per-layer input AGOPs or the projected output AGOP of a torch model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Sized
from typing import Any, Literal

import torch
from torch import nn

from ..errors import NilValueError
from .batches import Positions
from .device_gram import DeviceGram
from .input_agop import InputSettings, RowSink, capture_input
from .layers import select_layers
from .output_agop import VjpMode, exact_output_gram, reference_jvp_gram
from .probes import Projector, ProbeKind
from .record import LayerAgop
from .state import capture_mode, model_device

__all__ = ["capture_agop", "row_dtype_for"]

Mode = Literal["input", "output"]
Estimator = Literal["exact", "reference-jvp"]

_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def row_dtype_for(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """Row dtype: the given one, else float64 on the CPU and float32 on accelerators."""
    if dtype is None:
        return torch.float64 if device.type == "cpu" else torch.float32
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise NilValueError(f"dtype: expected one of {sorted(_DTYPES)} (or None), found {dtype!r}")


def _check_probes(probes: int | str, estimator: str) -> int | Literal["exact"]:
    if probes == "exact":
        if estimator == "reference-jvp":
            raise NilValueError("probes='exact' has no meaning for estimator='reference-jvp'; give a count")
        return "exact"
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise NilValueError(f"probes: expected a positive int or 'exact', found {probes!r}")
    return probes


def _records(
    grams: dict[str, DeviceGram], kind_of: dict[str, str], settings: dict[str, Any]
) -> dict[str, LayerAgop]:
    return {
        name: LayerAgop(name, kind_of[name], gram.to_accumulator(), dict(settings))
        for name, gram in grams.items()
    }


def capture_agop(
    model: nn.Module,
    batches: Iterable[Any],
    layers: str | Sequence[str] | None = None,
    mode: Mode = "input",
    probes: int | Literal["exact"] = 8,
    project: int | torch.Tensor | None = None,
    token_stride: int = 1,
    sink: RowSink | None = None,
    seed: int = 0,
    dtype: str | torch.dtype | None = None,
    estimator: Estimator = "exact",
    micro_batch: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    positions: Positions = "last",
    probe_kind: ProbeKind = "gaussian",
    accumulate: bool = True,
    vjp_chunk: int = 16,
    vjp: VjpMode = "vmap",
) -> dict[str, LayerAgop]:
    """Captures AGOPs of ``model`` over ``batches``; returns ``{layer name: LayerAgop}``.

    ``batches``: an iterable of tensors, ``(inputs, ...)`` tuples or dicts of keyword inputs
    (Hugging Face ``input_ids``/``attention_mask``; ``labels`` ignored). ``layers``: None (blocks
    of a known family, else every linear/convolution), module names, globs or ``re:`` patterns.

    ``mode="input"`` (the NFA object, docs/method.md R1): for each layer, E[JᵀJ] at its input, J = ∂y/∂h,
    one row per sample (per token, every ``token_stride``-th, for [B, T, d] inputs; per receptive
    field for convolutions). y: the model output, the last position of sequence outputs
    (``positions="last"``) or all positions, projected by P when ``project`` is given. One backward
    pass per probe serves every layer: ``probes=k`` Gaussian (or ``probe_kind="rademacher"``)
    probes, unbiased; ``probes="exact"``: one backward per output coordinate.

    ``mode="output"`` (docs/method.md R2): the projected output Gram E[(PJ)(PJ)ᵀ] (k×k) with respect to the
    input of the first selected layer, exact from k VJPs (``estimator="exact"``) or by the
    reference's random-JVP estimator (``estimator="reference-jvp"``, ``probes`` JVPs per batch).
    ``project``: k (a seeded N(0,1)/√k matrix) or a k×V tensor; default 64. Key: ``"output"``.

    ``sink``: any object with ``.write({layer: rows})`` receiving each micro-batch's rows (input
    mode; ``accumulate=False`` streams without accumulating). ``dtype``: row dtype (default float64
    on CPU, float32 on GPU); products in ≥ float32, sums in float64 on the device. ``micro_batch``
    bounds memory. The model runs in eval mode with frozen parameters; its modes and flags are
    restored afterwards. Deterministic for a given seed, device and micro-batch size.
    """
    if mode not in ("input", "output"):
        raise NilValueError(f"mode: expected 'input' or 'output', found {mode!r}")
    if estimator not in ("exact", "reference-jvp"):
        raise NilValueError(f"estimator: expected 'exact' or 'reference-jvp', found {estimator!r}")
    if estimator == "reference-jvp" and mode != "output":
        raise NilValueError("estimator='reference-jvp' is the output-space estimator; use mode='output'")
    n_probes = _check_probes(probes, estimator)
    if not isinstance(token_stride, int) or token_stride < 1:
        raise NilValueError(f"token_stride: expected a positive int, found {token_stride!r}")
    if micro_batch is not None and (not isinstance(micro_batch, int) or micro_batch < 1):
        raise NilValueError(f"micro_batch: expected a positive int or None, found {micro_batch!r}")
    if isinstance(batches, Sized) and len(batches) == 0:
        raise NilValueError("capture_agop: batches is empty")
    dev = model_device(model, device)
    rows_dtype = row_dtype_for(dtype, dev)
    selected = select_layers(model, layers)
    settings: dict[str, Any] = {
        "mode": mode,
        "estimator": estimator,
        "seed": int(seed),
        "dtype": str(rows_dtype).replace("torch.", ""),
        "micro_batch": micro_batch,
        "device": str(dev),
    }
    with capture_mode(model):
        if mode == "input":
            if sink is None and not accumulate:
                raise NilValueError("accumulate=False needs a sink, or nothing is kept")
            projector = Projector(project, seed)
            cfg = InputSettings(
                n_probes, probe_kind, positions, token_stride, int(seed), rows_dtype, micro_batch, accumulate
            )
            grams = capture_input(model, batches, selected, projector, cfg, dev, sink, progress)
            settings.update(
                probes=n_probes, probe_kind=probe_kind, positions=positions,
                token_stride=token_stride, project=projector.describe(),
            )
            return _records(grams, {l.name: l.kind for l in selected}, settings)
        if sink is not None:
            raise NilValueError("sink streams per-layer rows of mode='input'; mode='output' accumulates")
        if positions != "last":
            raise NilValueError("mode='output' uses the last position (positions='last')")
        projector = Projector(64 if project is None else project, seed)
        first = selected[0]
        if estimator == "exact":
            gram, vjp_used = exact_output_gram(
                model, batches, first, projector, dev, rows_dtype, micro_batch,
                max(1, int(vjp_chunk)), vjp, progress,
            )
            settings["vjp"] = vjp_used
        else:
            assert n_probes != "exact"
            gram = reference_jvp_gram(
                model, batches, first, projector, dev, n_probes, seed, rows_dtype, micro_batch, progress
            )
            settings["probes"] = n_probes
        settings.update(project=projector.describe(), wrt=first.name)
        return _records({"output": gram}, {"output": "output"}, settings)

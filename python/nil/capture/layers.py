"""Which modules of a model to capture: block detection for known families, names and patterns.

A *layer* is a module whose input gradient becomes AGOP rows. By default these are the blocks of a
known family (nil's own ``blocks.N``, GPT-2 ``transformer.h.N``, GPT-NeoX/Pythia
``gpt_neox.layers.N``, Llama/Qwen2 ``model.layers.N``), else every linear and convolution.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import torch
from torch import nn

from ..errors import NilValueError

__all__ = [
    "BLOCK_FAMILIES",
    "Layer",
    "LayerKind",
    "detect_blocks",
    "first_linear",
    "is_linear",
    "linear_weight",
    "select_layers",
]

LayerKind = Literal["input", "linear", "conv"]

#: (family, regex on the full module name); the first family with a match wins.
BLOCK_FAMILIES: tuple[tuple[str, str], ...] = (
    ("gpt2", r"^(?:.*\.)?transformer\.h\.(\d+)$"),
    ("gpt-neox", r"^(?:.*\.)?gpt_neox\.layers\.(\d+)$"),
    ("llama", r"^(?:.*\.)?model\.layers\.(\d+)$"),
    ("nil", r"^(?:.*\.)?blocks\.(\d+)$"),
)

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Layer:
    """A selected module: its name, the module, and how its input gradient becomes rows.

    ``kind``: ``"conv"`` (gradient with respect to the unfolded receptive field, docs/method.md R1),
    ``"linear"`` (rows over the last axis, the weight's input space) or ``"input"`` (any other
    module: per sample, per token for [B, T, d] inputs, per position for channels-first inputs).
    """

    name: str
    module: nn.Module
    kind: LayerKind


def is_linear(module: nn.Module) -> bool:
    """True for ``nn.Linear`` and for transformers' GPT-2 ``Conv1D`` (a linear with a transposed weight)."""
    if isinstance(module, nn.Linear):
        return True
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


def _kind(module: nn.Module) -> LayerKind:
    if isinstance(module, _CONVS):
        return "conv"
    if is_linear(module):
        return "linear"
    return "input"


def linear_weight(module: nn.Module) -> torch.Tensor:
    """The weight as a (features × input-dim) matrix W, so that WᵀW lives in the input's space.

    ``nn.Linear``: its weight; GPT-2 ``Conv1D``: the transpose of its (in × out) weight;
    convolutions: the weight unfolded to (out_channels × in_channels·kernel), the space of the
    conv's patch AGOP.
    """
    w = cast(torch.Tensor, module.weight).detach()
    if isinstance(module, _CONVS):
        return w.reshape(w.shape[0], -1)
    if type(module).__name__ == "Conv1D":
        return w.t()
    if isinstance(module, nn.Linear):
        return w
    raise NilValueError(f"linear_weight: {type(module).__name__} is not a linear or convolution")


def detect_blocks(model: nn.Module) -> tuple[str | None, list[str]]:
    """The family and ordered block names of a known layout, or ``(None, [])``."""
    names = [n for n, _ in model.named_modules()]
    for family, pattern in BLOCK_FAMILIES:
        rx = re.compile(pattern)
        found = [(int(m.group(1)), n) for n in names if (m := rx.match(n))]
        if found:
            # One block list: the shortest prefix (a wrapper may nest several matching lists).
            prefix = min((n.rsplit(".", 1)[0] for _, n in found), key=len)
            blocks = sorted((i, n) for i, n in found if n.rsplit(".", 1)[0] == prefix)
            return family, [n for _, n in blocks]
    return None, []


def first_linear(model: nn.Module, block: str) -> str | None:
    """Name of the first linear or convolution inside ``block`` (registration order), or None."""
    sub = model.get_submodule(block)
    for name, module in sub.named_modules():
        if name and (is_linear(module) or isinstance(module, _CONVS)):
            return f"{block}.{name}"
    return None


def _match(entry: str, names: Sequence[str]) -> list[str]:
    if entry.startswith("re:"):
        rx = re.compile(entry[3:])
        return [n for n in names if rx.fullmatch(n)]
    if any(c in entry for c in "*?["):
        return fnmatch.filter(names, entry)
    return [entry] if entry in names else []


def select_layers(model: nn.Module, layers: str | Sequence[str] | None = None) -> list[Layer]:
    """The modules to capture, in the model's registration order.

    ``layers``: None (the detected blocks, else every linear and convolution), ``"blocks"``,
    ``"linears"``, or module names; an entry with ``* ? [`` is a glob and one starting ``re:`` a
    regular expression on full module names. Unknown names raise ``NilValueError`` listing
    what exists.
    """
    modules = dict(model.named_modules())
    names = [n for n in modules if n]
    chosen: set[str] = set()
    if layers is None or layers == "blocks":
        _, blocks = detect_blocks(model)
        if blocks:
            chosen.update(blocks)
        elif layers == "blocks":
            raise NilValueError(
                f"{type(model).__name__}: no blocks of a known family "
                f"({', '.join(f for f, _ in BLOCK_FAMILIES)}); pass module names in layers="
            )
    if (layers is None and not chosen) or layers == "linears":
        chosen.update(n for n in names if _kind(modules[n]) != "input")
        if not chosen:
            raise NilValueError(
                f"{type(model).__name__}: no nn.Linear or nn.Conv* modules; pass layers="
            )
    if layers is not None and layers not in ("blocks", "linears"):
        entries = [layers] if isinstance(layers, str) else list(layers)
        for entry in entries:
            hits = _match(str(entry), names)
            if not hits:
                sample = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
                raise NilValueError(
                    f"{type(model).__name__}: layers entry {entry!r} matches no module; "
                    f"modules are named like: {sample}"
                )
            chosen.update(hits)
    return [Layer(n, modules[n], _kind(modules[n])) for n in names if n in chosen]

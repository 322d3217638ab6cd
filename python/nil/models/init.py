"""Seeded parameter initialisation from an explicit ``torch.Generator`` (docs/method.md §7 fix 9, R8:
no code path touches the global RNG).

``"default"`` redraws torch's own defaults (Linear/Conv U(±1/√fan_in), Embedding and gpt's
position table N(0, 1), GRU
U(±1/√h), norms 1 and 0); ``"reference"`` is docs/method.md §4.4's Transformer init: every Linear and
Embedding weight N(0, 0.02²), the residual output maps (``attn.proj``, ``fc2``) N(0, (0.02/√(2L))²),
biases 0, norms 1 and 0. A frozen ``pad`` parameter stays zero.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from ..errors import NilValueError

__all__ = ["initialize", "Init"]

Init = Literal["default", "reference"]


@torch.no_grad()
def initialize(model: nn.Module, generator: torch.Generator, scheme: Init = "default") -> nn.Module:
    """Re-draws every parameter of ``model`` in place from ``generator`` (a CPU generator; the
    values are drawn on the CPU and copied, so results do not depend on the device)."""
    if scheme not in ("default", "reference"):
        raise NilValueError(f"init scheme must be 'default' or 'reference', found {scheme!r}")
    own = getattr(model, "initialize_from", None)
    if callable(own):  # a model with its own scheme (the bottleneck toy: Xavier normal W1, zero bias)
        own(generator)
        return model
    depth = len(getattr(model, "blocks", [])) or 1
    for name, module in model.named_modules():
        if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            if module.weight is not None:
                module.weight.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d)):
            _init_weighted(module, name, generator, scheme, depth)
        elif isinstance(module, nn.GRU):
            bound = 1.0 / math.sqrt(module.hidden_size)
            for p in module.parameters(recurse=False):
                _draw(p, generator, "uniform", bound)
    pos = getattr(model, "pos_emb", None)
    if isinstance(pos, nn.Parameter):  # gpt's learned positions: like an embedding table
        _draw(pos, generator, "normal", 0.02 if scheme == "reference" else 1.0)
    pad = getattr(model, "pad", None)
    if isinstance(pad, nn.Parameter):
        pad.zero_()
    return model


def _init_weighted(module: nn.Module, name: str, g: torch.Generator, scheme: Init, depth: int) -> None:
    weight: torch.Tensor = module.weight  # type: ignore[assignment]
    bias: torch.Tensor | None = getattr(module, "bias", None)
    if scheme == "reference":
        std = 0.02 / math.sqrt(2 * depth) if name.endswith(("attn.proj", "fc2")) else 0.02
        _draw(weight, g, "normal", std)
        if bias is not None:
            bias.zero_()
        return
    if isinstance(module, nn.Embedding):
        _draw(weight, g, "normal", 1.0)
        return
    fan_in = weight[0].numel()
    bound = 1.0 / math.sqrt(fan_in)
    _draw(weight, g, "uniform", bound)
    if bias is not None:
        _draw(bias, g, "uniform", bound)


def _draw(p: torch.Tensor, g: torch.Generator, kind: str, scale: float) -> None:
    if kind == "normal":
        values = torch.randn(p.shape, generator=g, dtype=torch.float32) * scale
    else:
        values = (torch.rand(p.shape, generator=g, dtype=torch.float32) * 2.0 - 1.0) * scale
    p.copy_(values.to(device=p.device, dtype=p.dtype))

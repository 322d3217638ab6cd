"""The table of model families: constructor, closed-form count and width-search defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import NilValueError
from ._counts import ParamCount
from .cnn import CNN, cnn_param_count
from .gpt import GPT, gpt_param_count
from .gru import GRUNet, gru_param_count
from .mlp import MLP, mlp_param_count

__all__ = ["Family", "FAMILIES", "family"]


@dataclass(frozen=True)
class Family:
    """One model family. ``multiple(kw)`` is the width step; the other defaults are docs/method.md §4.2's."""

    name: str
    constructor: Callable[..., nn.Module]
    count: Callable[..., ParamCount]
    multiple: Callable[[Mapping[str, Any]], int]
    max_width: int
    max_pad: float
    min_width: Callable[[Mapping[str, Any]], int]


def _gpt_multiple(kw: Mapping[str, Any]) -> int:
    return int(kw.get("head_dim", 4))


def _mlp_multiple(kw: Mapping[str, Any]) -> int:
    return 16 if kw.get("style", "prenorm") == "prenorm" else 8


FAMILIES: dict[str, Family] = {
    "gpt": Family("gpt", GPT, gpt_param_count, _gpt_multiple, 1024, 0.20, lambda kw: max(16, _gpt_multiple(kw))),
    "mlp": Family("mlp", MLP, mlp_param_count, _mlp_multiple, 4096, 0.15, _mlp_multiple),
    "cnn": Family("cnn", CNN, cnn_param_count, lambda kw: 8, 512, 0.18, lambda kw: 8),
    "gru": Family("gru", GRUNet, gru_param_count, lambda kw: 8, 1024, 0.20, lambda kw: 8),
}


def _bottleneck() -> Family:
    from ..tasks.bottleneck import bottleneck_net, bottleneck_param_count

    return Family("bottleneck", bottleneck_net, bottleneck_param_count, lambda kw: 1, 64, 0.5, lambda kw: 1)


def family(name: str) -> Family:
    """The family called ``name``; a clear error listing the known ones otherwise."""
    if name == "bottleneck" and name not in FAMILIES:  # torch-only task module, imported on first use
        FAMILIES[name] = _bottleneck()
    try:
        return FAMILIES[name]
    except KeyError:
        raise NilValueError(f"unknown model family {name!r}; expected one of {sorted({*FAMILIES, 'bottleneck'})}") from None

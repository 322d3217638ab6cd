"""Model families for shape sweeps at a fixed parameter budget (DESIGN §6, METHOD §4).

``build(family, depth, width, **kw)`` makes the module, ``param_count`` gives its closed-form count
split into embedding, body and head, ``solve_width`` picks the width for a budget from the formulas
alone, and ``aspect_ratio`` is R_D/W = depth/width. Families: ``mlp``, ``cnn``, ``gru``, ``gpt``;
their depth-repeated modules are named ``blocks.N``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._counts import ParamCount
from ._registry import FAMILIES, Family, family
from ._width import BudgetError, WidthSolution, solve_width, width_grid

__all__ = [
    "FAMILIES",
    "BudgetError",
    "Family",
    "ParamCount",
    "WidthSolution",
    "aspect_ratio",
    "build",
    "param_count",
    "solve_width",
    "width_grid",
]


def build(family_name: str, depth: int, width: int, *, pad: int = 0, **kw: Any) -> nn.Module:
    """A ``family_name`` model of ``depth`` and ``width`` (``kw``: the family's shape options).

    ``pad > 0`` registers an unused, frozen zero parameter ``pad`` of that size so the module holds
    exactly the budget (the reference's bookkeeping); it never enters the forward pass. Build on
    the meta device (``with torch.device("meta"):``) to inspect a shape without allocating it."""
    model = family(family_name).constructor(depth, width, **kw)
    if pad > 0:
        model.register_parameter("pad", nn.Parameter(torch.zeros(pad), requires_grad=False))
    return model


def param_count(family_name: str, depth: int, width: int, **kw: Any) -> ParamCount:
    """Closed-form parameter count of ``build(family_name, depth, width, **kw)`` (without pad)."""
    return family(family_name).count(depth, width, **kw)


def aspect_ratio(depth: int, width: int) -> float:
    """R_D/W = depth / width (METHOD §4.1; depth means blocks/layers as each family defines it)."""
    return depth / width

"""Model families for shape sweeps at a fixed parameter budget (docs/method.md §4).

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
from .init import Init, initialize

__all__ = [
    "FAMILIES",
    "BudgetError",
    "Family",
    "ParamCount",
    "WidthSolution",
    "aspect_ratio",
    "build",
    "default_init",
    "initialize",
    "param_count",
    "solve_width",
    "width_grid",
]


def default_init(family_name: str) -> Init:
    """The init scheme a family uses unless told otherwise: ``reference`` for gpt (docs/method.md §4.4),
    torch's defaults elsewhere."""
    return "reference" if family_name == "gpt" else "default"


def build(
    family_name: str,
    depth: int,
    width: int,
    *,
    pad: int = 0,
    seed: int | None = None,
    init: Init | None = None,
    device: torch.device | str | None = None,
    **kw: Any,
) -> nn.Module:
    """A ``family_name`` model of ``depth`` and ``width`` (``kw``: the family's shape options).

    With ``seed`` the module is built without allocation and every parameter is drawn from a
    ``torch.Generator`` seeded with it (``init`` scheme, default ``default_init(family)``), so equal
    seeds give equal models and the global RNG is never touched; without it torch's own init runs.
    ``pad > 0`` registers an unused, frozen zero parameter ``pad`` of that size so the module holds
    exactly the budget (the reference's bookkeeping); it never enters the forward pass. Build on
    the meta device (``with torch.device("meta"):``) to inspect a shape without allocating it."""
    fam = family(family_name)
    if seed is None:
        model = fam.constructor(depth, width, **kw)
    else:
        with torch.device("meta"):
            model = fam.constructor(depth, width, **kw)
        model = model.to_empty(device=device or "cpu")
        initialize(model, torch.Generator().manual_seed(seed), init or default_init(family_name))
    if pad > 0:
        model.register_parameter("pad", nn.Parameter(torch.zeros(pad, device=device), requires_grad=False))
    if device is not None:
        model = model.to(device)
    return model


def param_count(family_name: str, depth: int, width: int, **kw: Any) -> ParamCount:
    """Closed-form parameter count of ``build(family_name, depth, width, **kw)`` (without pad)."""
    return family(family_name).count(depth, width, **kw)


def aspect_ratio(depth: int, width: int) -> float:
    """R_D/W = depth / width (docs/method.md §4.1; depth means blocks/layers as each family defines it)."""
    return depth / width

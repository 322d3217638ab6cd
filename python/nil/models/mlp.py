"""MLP family ``mlp`` in the three styles of the reference (docs/method.md §4.1–4.2).

- ``style="prenorm"`` (1M "PDE" MLP, default): entry Linear(in→w), (L−1) pre-LN residual blocks
  x + Linear(GELU(LN(x))), head Linear(w→out). Depth L counts the entry layer. Count
  (in+1)·w + (L−1)·(w² + 3w) + (w+1)·out.
- ``style="plain"`` (MLP TS 3M scan): L hidden GELU layers, the first from the input. Count
  (in+1)·w + (L−1)·(w² + w) + (w+1)·out.
- ``style="residual"`` (MLP-AGOP scan): in_proj, L residual blocks h + fc2(act(fc1(act(h))))/√2
  without normalisation, out_proj on act(h). Count (in+1)·w + L·(2w² + 2w) + (w+1)·out.

The depth-repeated modules are named ``blocks.N`` so capture finds them.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NilValueError
from ._counts import ParamCount

__all__ = ["MLP", "mlp_param_count", "MLP_STYLES"]

Style = Literal["prenorm", "plain", "residual"]
MLP_STYLES: tuple[str, ...] = ("prenorm", "plain", "residual")


class PreNormBlock(nn.Module):
    """x + Linear(GELU(LN(x)))."""

    def __init__(self, w: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(w)
        self.fc = nn.Linear(w, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.fc(F.gelu(self.norm(x)))
        return out


class PlainBlock(nn.Module):
    """GELU(Linear(x))."""

    def __init__(self, w: int) -> None:
        super().__init__()
        self.fc = nn.Linear(w, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.fc(x))


class ResidualBlock(nn.Module):
    """h + fc2(GELU(fc1(GELU(h))))/√2."""

    def __init__(self, w: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(w, w)
        self.fc2 = nn.Linear(w, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.fc2(F.gelu(self.fc1(F.gelu(x)))) / math.sqrt(2.0)
        return out


class MLP(nn.Module):
    """Fully connected network on flat inputs (B, in_dim) → (B, out_dim); sequences are flattened."""

    def __init__(self, depth: int, width: int, *, in_dim: int = 64, out_dim: int = 64, style: Style = "prenorm") -> None:
        super().__init__()
        _check(depth, width, style)
        self.style = style
        self.in_dim = in_dim
        self.in_proj = nn.Linear(in_dim, width)
        block: type[nn.Module] = {"prenorm": PreNormBlock, "plain": PlainBlock, "residual": ResidualBlock}[style]
        n_blocks = depth if style == "residual" else depth - 1
        self.blocks = nn.ModuleList(block(width) for _ in range(n_blocks))
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.in_proj(x.reshape(x.shape[0], -1))
        if self.style == "plain":
            h = F.gelu(h)
        for block in self.blocks:
            h = block(h)
        if self.style == "residual":
            h = F.gelu(h)
        out: torch.Tensor = self.head(h)
        return out


def _check(depth: int, width: int, style: str) -> None:
    if depth < 1 or width < 1:
        raise NilValueError(f"mlp: depth and width must be positive, found depth={depth}, width={width}")
    if style not in MLP_STYLES:
        raise NilValueError(f"mlp: style must be one of {MLP_STYLES}, found {style!r}")


def mlp_param_count(
    depth: int, width: int, *, in_dim: int = 64, out_dim: int = 64, style: Style = "prenorm", **_: object
) -> ParamCount:
    """Closed-form count of ``MLP(depth, width, ...)`` split into embedding, body and head."""
    _check(depth, width, style)
    w = width
    if style == "prenorm":
        body = (depth - 1) * (w * w + 3 * w)
    elif style == "plain":
        body = (depth - 1) * (w * w + w)
    else:
        body = depth * (2 * w * w + 2 * w)
    return ParamCount(embedding=(in_dim + 1) * w, body=body, head=(w + 1) * out_dim)

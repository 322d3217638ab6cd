"""GRU family ``gru`` (docs/method.md §4.2, the 1M GRU): stacked single-layer GRUs named ``blocks.N`` and a
linear head on the last layer's final hidden state.

Count: first layer 3·(in·h + h² + 2h), each further layer 3·(2h² + 2h), head (h+1)·out; with
in = 1 and out = 64 this is the reference's 3(h + h² + 2h) + (L−1)·3(2h² + 2h) + 64h + 64.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import NilValueError
from ._counts import ParamCount

__all__ = ["GRUNet", "gru_param_count"]


class GRUNet(nn.Module):
    """Sequences (B, T, in_dim) → (B, out_dim) from the top layer's final hidden state."""

    def __init__(self, depth: int, width: int, *, in_dim: int = 1, out_dim: int = 64) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise NilValueError(f"gru: depth and width must be positive, found depth={depth}, width={width}")
        self.in_dim = in_dim
        self.blocks = nn.ModuleList(nn.GRU(in_dim if i == 0 else width, width, batch_first=True) for i in range(depth))
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if x.dim() == 3 else x.reshape(x.shape[0], -1, self.in_dim)
        for block in self.blocks:
            h, _ = block(h)
        out: torch.Tensor = self.head(h[:, -1])
        return out


def gru_param_count(depth: int, width: int, *, in_dim: int = 1, out_dim: int = 64, **_: object) -> ParamCount:
    """Closed-form count of ``GRUNet(depth, width, ...)`` split into embedding, body and head.

    The first layer's input weights (3·in·h) are the embedding; its recurrent part and every
    further layer are the body."""
    h = width
    return ParamCount(
        embedding=3 * in_dim * h,
        body=3 * (h * h + 2 * h) + (depth - 1) * 3 * (2 * h * h + 2 * h),
        head=(h + 1) * out_dim,
    )

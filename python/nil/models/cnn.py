"""CNN family ``cnn`` (docs/method.md §4.2, the 1M CNN): patch-embedding stem and residual conv blocks.

Stem: bias-free p×p stride-p convolution (in_ch→C) + GroupNorm + GELU; L residual blocks named
``blocks.N``, each two bias-free 3×3 convolutions with GroupNorm; global average pool, a final
LayerNorm and Linear(C→out) (normalising after the pool, since a GroupNorm before it would remove
the per-channel means the pool keeps). Count in_ch·p²·C + 2C + L·(18C² + 4C) + 2C + (C+1)·out; with in_ch 3,
p = 8, out 128 this is the reference's 192C + 2C + L(18C² + 4C) + 2C + 128C + 128.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NilValueError
from ._counts import ParamCount

__all__ = ["CNN", "cnn_param_count"]


def _groups(channels: int) -> int:
    """GroupNorm groups: at most 8, each of at least 2 channels (one channel per group would be an
    instance norm that erases each channel's mean)."""
    for g in (8, 4, 2):
        if channels % g == 0 and channels // g >= 2:
            return g
    return 1


class ConvBlock(nn.Module):
    """GELU(x + GN(conv(GELU(GN(conv(x))))))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(c), c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(c), c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm1(self.conv1(x)))
        return F.gelu(x + self.norm2(self.conv2(h)))


class CNN(nn.Module):
    """Residual CNN on images (B, in_ch, H, W) → (B, out_dim)."""

    def __init__(self, depth: int, width: int, *, in_ch: int = 3, patch: int = 8, out_dim: int = 128) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise NilValueError(f"cnn: depth and width must be positive, found depth={depth}, width={width}")
        self.stem = nn.Conv2d(in_ch, width, patch, stride=patch, bias=False)
        self.stem_norm = nn.GroupNorm(_groups(width), width)
        self.blocks = nn.ModuleList(ConvBlock(width) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.stem_norm(self.stem(x)))
        for block in self.blocks:
            h = block(h)
        out: torch.Tensor = self.head(self.norm(h.mean(dim=(2, 3))))
        return out


def cnn_param_count(
    depth: int, width: int, *, in_ch: int = 3, patch: int = 8, out_dim: int = 128, **_: object
) -> ParamCount:
    """Closed-form count of ``CNN(depth, width, ...)`` split into embedding, body and head."""
    c = width
    return ParamCount(
        embedding=in_ch * patch * patch * c + 2 * c,
        body=depth * (18 * c * c + 4 * c),
        head=2 * c + (c + 1) * out_dim,
    )

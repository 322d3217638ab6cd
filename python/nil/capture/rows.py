"""From a layer's gradient tensor to AGOP rows (one row per sample, token or receptive field).

- linear layers: rows over the last axis (the weight's input space); [B, T, d] keeps every
  ``token_stride``-th token (and only unpadded tokens when an attention mask is given).
- other modules: [B, d] → samples; [B, T, d] → tokens (every ``token_stride``-th);
  [B, C, *spatial] (4-D and up) → one row of C channels per position.
- convolutions (docs/method.md R1): the gradient with respect to each unfolded receptive field, Wᵀ·∂/∂z at
  every output position z, rows of length in_channels·kernel (the unfolded weight's space).
"""

from __future__ import annotations

from typing import cast

import torch

from ..errors import NilValueError
from .layers import Layer

__all__ = ["gradient_rows"]


def _tokens(g: torch.Tensor, stride: int, mask: torch.Tensor | None) -> torch.Tensor:
    if stride > 1:
        g = g[:, ::stride]
        mask = None if mask is None else mask[:, ::stride]
    if mask is not None and mask.shape == g.shape[:2]:
        return g[mask.to(device=g.device, dtype=torch.bool)]
    return g.reshape(-1, g.shape[-1])


def _conv_rows(layer: Layer, gz: torch.Tensor) -> torch.Tensor:
    conv = layer.module
    groups = int(getattr(conv, "groups", 1))
    if groups != 1:
        raise NilValueError(
            f"layer {layer.name}: grouped convolution (groups={groups}) has no single unfolded "
            "input space; select its input module instead"
        )
    w = cast(torch.Tensor, conv.weight).detach()
    w_flat = w.reshape(w.shape[0], -1).to(gz.dtype)
    # [B, O, *spatial] -> [B·L, O] -> [B·L, C·k]
    gz = gz.reshape(gz.shape[0], gz.shape[1], -1).transpose(1, 2).reshape(-1, gz.shape[1])
    return gz @ w_flat


def gradient_rows(
    layer: Layer, g: torch.Tensor, token_stride: int = 1, token_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The 2-D (rows × dim) view of a layer's gradient; see the module docstring for the layout.

    ``token_mask`` ([B, T], e.g. a Hugging Face ``attention_mask``) keeps only the tokens marked 1
    of [B, T, d] gradients: padding contributes no rows."""
    if layer.kind == "conv":
        return _conv_rows(layer, g)
    if g.ndim == 1:
        return g.reshape(-1, 1)
    if g.ndim == 2:
        return g
    if g.ndim == 3:
        return _tokens(g, token_stride, token_mask)
    if layer.kind == "linear":
        return g.reshape(-1, g.shape[-1])
    return g.movedim(1, -1).reshape(-1, g.shape[1])

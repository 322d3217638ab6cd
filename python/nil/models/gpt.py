"""Decoder-only Transformer family ``gpt`` (docs/method.md §4.2 NTP byte LM and TS TinyGPT).

Pre-LN blocks named ``blocks.N`` with bias-free linears, affine LayerNorms, a 4·d MLP and causal
self-attention through ``F.scaled_dot_product_attention(is_causal=True)`` (docs/method.md §8 R9: no
B×H×T×T tensor), or the explicit-mask formula for reference mode (``attention="explicit"``).

Two input kinds: byte/token inputs (``vocab=V``: token embedding, learned positions, untied
bias-free head, output every position) reproduce the reference byte LM, whose count is exactly
L·(12d² + 4d) + d·(2V + T + 2); scalar-sequence inputs (``vocab=None``: input Linear(in_dim→d) with
bias, learned positions, head with bias on the last position) reproduce the teacher–student
TinyGPT, count (in_dim+1)·d + T·d + L·(12d² + 4d) + 2d + (d+1)·out_dim.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NilValueError
from ._counts import ParamCount

__all__ = ["GPT", "Block", "CausalSelfAttention", "gpt_param_count"]

Attention = Literal["sdpa", "explicit"]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with bias-free projections (3d² + d² parameters)."""

    def __init__(self, d_model: int, head_dim: int, attention: Attention = "sdpa") -> None:
        super().__init__()
        if d_model % head_dim:
            raise NilValueError(f"gpt: d_model {d_model} is not a multiple of head_dim {head_dim}")
        if attention not in ("sdpa", "explicit"):
            raise NilValueError(f"gpt: attention must be 'sdpa' or 'explicit', found {attention!r}")
        self.n_heads = d_model // head_dim
        self.head_dim = head_dim
        self.attention = attention
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.pad_heads: bool | None = None  # None: pad on CUDA when head_dim is not a multiple of 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.attention == "sdpa":
            y = _sdpa(q, k, v, self.head_dim, self.pad_heads)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            y = scores.masked_fill(mask, float("-inf")).softmax(dim=-1) @ v
        out: torch.Tensor = self.proj(y.transpose(1, 2).reshape(b, t, d))
        return out


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, head_dim: int, pad: bool | None) -> torch.Tensor:
    """Causal SDPA. The fused CUDA kernels (flash, memory-efficient) need a head dimension that is
    a multiple of 8 in 16-bit precision; a smaller one (the reference's 4) would fall back to the
    math kernel, which materialises B×H×T×T scores. Zero-padding q, k and v to the next multiple of
    8 and keeping the scale 1/√head_dim gives exactly the same attention (the padded dimensions
    add 0 to every score and produce outputs that are sliced off) with a fused kernel."""
    if q.is_cuda and q.dtype == torch.float32 and torch._C._functorch.is_batchedtensor(q):
        # Under vmap (packed seeds) in float32 the memory-efficient kernel's backward rejects the
        # batched log-sum-exp layout ("LSE is not correctly aligned", torch 2.11, H200); the math
        # kernel computes the same attention.
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if pad is None:
        pad = q.is_cuda and head_dim % 8 != 0
    if not pad:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    extra = -head_dim % 8
    q, k, v = (F.pad(t, (0, extra)) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / math.sqrt(head_dim))
    return y[..., :head_dim]


class Block(nn.Module):
    """Pre-LN decoder block: x + attn(LN(x)), then x + MLP(LN(x)); 12d² + 4d parameters at d_ff = 4d."""

    def __init__(self, d_model: int, head_dim: int, d_ff: int, attention: Attention = "sdpa") -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, head_dim, attention)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, d_ff, bias=False)
        self.fc2 = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        out: torch.Tensor = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return out


class GPT(nn.Module):
    """Decoder-only Transformer; see the module docstring for the two input kinds."""

    def __init__(
        self,
        depth: int,
        width: int,
        *,
        vocab: int | None = 256,
        in_dim: int = 1,
        out_dim: int | None = None,
        seq_len: int = 256,
        head_dim: int = 4,
        d_ff_mult: int = 4,
        attention: Attention = "sdpa",
    ) -> None:
        super().__init__()
        _check_shape(depth, width, head_dim)
        self.vocab = vocab
        self.seq_len = seq_len
        self.out_dim = vocab if (vocab is not None and out_dim is None) else out_dim
        if self.out_dim is None:
            raise NilValueError("gpt: scalar-sequence inputs (vocab=None) need out_dim")
        self.tok_emb: nn.Module = nn.Embedding(vocab, width) if vocab is not None else nn.Linear(in_dim, width)
        # Positions as a plain parameter, so the only nn.Embedding is the token embedding (capture
        # reports the WᵀW statistics of the first nn.Embedding as the input embedding's).
        self.pos_emb = nn.Parameter(torch.zeros(seq_len, width))
        self.blocks = nn.ModuleList(Block(width, head_dim, d_ff_mult * width, attention) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, self.out_dim, bias=vocab is None)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Token (or scalar) embedding plus learned positions: the input of the first block."""
        if self.vocab is None and x.dim() == 2:
            x = x.unsqueeze(-1)  # (B, T) scalar sequences
        t = x.shape[1]
        if t > self.seq_len:
            raise NilValueError(f"gpt: sequence length {t} exceeds the model's seq_len {self.seq_len}")
        out: torch.Tensor = self.tok_emb(x) + self.pos_emb[:t]
        return out

    def get_input_embeddings(self) -> nn.Module:
        """The token embedding (an nn.Linear for scalar-sequence inputs), as Hugging Face models name it."""
        return self.tok_emb

    def forward_embedded(self, e: torch.Tensor) -> torch.Tensor:
        """The model from the embedding sum on: logits at every position (token inputs) or the
        last-position output (scalar inputs)."""
        for block in self.blocks:
            e = block(e)
        h = self.ln_f(e)
        if self.vocab is None:
            h = h[:, -1]
        out: torch.Tensor = self.head(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(self.embed(x))


def _check_shape(depth: int, width: int, head_dim: int) -> None:
    if depth < 1 or width < 1:
        raise NilValueError(f"gpt: depth and width must be positive, found depth={depth}, width={width}")
    if width % head_dim:
        raise NilValueError(f"gpt: width {width} is not a multiple of head_dim {head_dim}")


def gpt_param_count(
    depth: int,
    width: int,
    *,
    vocab: int | None = 256,
    in_dim: int = 1,
    out_dim: int | None = None,
    seq_len: int = 256,
    head_dim: int = 4,
    d_ff_mult: int = 4,
    **_: object,
) -> ParamCount:
    """Closed-form count of ``GPT(depth, width, ...)`` split into embedding, body and head."""
    d = width
    block = 4 * d * d + 2 * d_ff_mult * d * d + 4 * d  # qkv + proj + MLP + two affine LayerNorms
    if vocab is not None:
        out = vocab if out_dim is None else out_dim
        return ParamCount(embedding=vocab * d + seq_len * d, body=depth * block, head=2 * d + d * out)
    if out_dim is None:
        raise NilValueError("gpt: scalar-sequence inputs (vocab=None) need out_dim")
    return ParamCount(embedding=(in_dim + 1) * d + seq_len * d, body=depth * block, head=2 * d + (d + 1) * out_dim)

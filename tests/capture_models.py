"""Tiny models for the capture tests (a minimal GPT, a linear network, a small CNN) and independent
``torch.func.jacrev`` references for the AGOPs that nil.capture computes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import jacrev, vmap


class Block(nn.Module):
    """Pre-LN Transformer block, bias-free linears, SDPA (or explicit-mask) causal attention."""

    def __init__(self, d: int, heads: int, sdpa: bool = True) -> None:
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d, bias=False)
        self.out = nn.Linear(4 * d, d, bias=False)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        if self.sdpa:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            a = s.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    """Byte-level-style GPT: token + position embeddings, ``blocks.N``, final LN, untied head."""

    def __init__(self, vocab: int = 13, ctx: int = 6, d: int = 8, depth: int = 2, heads: int = 2,
                 sdpa: bool = True) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList([Block(d, heads, sdpa) for _ in range(depth)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.tok(idx) + self.pos(torch.arange(idx.shape[-1], device=idx.device))

    def from_block(self, h: torch.Tensor, start: int) -> torch.Tensor:
        """Logits from the input of block ``start`` (the function jacrev differentiates)."""
        for block in self.blocks[start:]:
            h = block(h)
        return self.head(self.ln(h))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.from_block(self.embed(idx), 0)


class LinearNet(nn.Module):
    """y = A·B·x: closed-form AGOPs (first input (AB)ᵀ(AB), second AᵀA)."""

    def __init__(self, d_in: int = 5, d_hid: int = 4, d_out: int = 3) -> None:
        super().__init__()
        self.b = nn.Linear(d_in, d_hid, bias=False)
        self.a = nn.Linear(d_hid, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(self.b(x))


class TinyCNN(nn.Module):
    """conv → ReLU → conv → pool → linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 3, padding=1)
        self.c2 = nn.Conv2d(3, 4, 3, stride=2)
        self.fc = nn.Linear(4, 3)

    def rest(self, z1: torch.Tensor) -> torch.Tensor:
        """Output from c1's output."""
        return self.fc(self.c2(torch.relu(z1)).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.c1(x))


def per_sample_jacobian(f, h: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """J_b = ∂f(h_b)/∂h_b for every sample b (f maps one sample to its output), in float64."""
    return vmap(jacrev(lambda x: f(x.unsqueeze(0)).squeeze(0)))(h).detach().double()


def token_agop(j: torch.Tensor, out_dims: int) -> torch.Tensor:
    """E over samples and tokens of J_tᵀJ_t from per-sample Jacobians [B, *out, T, d]."""
    b = j.shape[0]
    t, d = j.shape[-2], j.shape[-1]
    jt = j.reshape(b, -1, t, d)  # [B, out, T, d]
    return torch.einsum("botd,bote->de", jt, jt) / (b * t)

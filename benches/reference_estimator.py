"""The reference implementation's projected output-AGOP estimator (METHOD.md §3.1), reproduced
faithfully as the baseline of benches/bench_capture_gpu.py. Not part of the nil package.

Model (METHOD §4.2): byte-level decoder, V = T = 256, token and position embeddings, pre-LN blocks
with affine LayerNorm, bias-free linears (qkv, proj, fc 4d, out), hand-written attention with head
dimension 4 and an explicit causal mask (B×H×T×T scores), final LayerNorm, untied head.
N_active = L(12d² + 4d) + d(V + T + V + 2).

Estimator: the device's global RNG seeded with 42, P ∈ R^{64×256} ~ N(0,1)/√64 drawn right after;
4 batches of 128 random length-256 windows (numpy generator seeded 42); per batch 64 probes
u ~ N(0, I) shaped like the detached embeddings e; Ju by torch.autograd.functional.jvp (double
backward); non-finite entries zeroed; (Ju)ᵀ(Ju)/B averaged over probes and batches; symmetrised;
the allocator cache emptied after every probe, as the reference does (METHOD weak point 12).

Run alone: ``python benches/reference_estimator.py --depth 5 --d-model 120`` prints a JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VOCAB = 256
CTX = 256


class Block(nn.Module):
    """Pre-LN block; ``attention="manual"`` (the reference) or ``"sdpa"`` (nil, METHOD R9)."""

    def __init__(self, d: int, head_dim: int, attention: str) -> None:
        super().__init__()
        self.heads, self.head_dim, self.attention = d // head_dim, head_dim, attention
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d, bias=False)
        self.out = nn.Linear(4 * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        if self.attention == "sdpa":
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            mask = torch.tril(torch.ones(t, t, device=x.device, dtype=torch.bool))
            a = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class ByteGPT(nn.Module):
    """The byte-level GPT of METHOD §4.2 (untied head, affine LayerNorm, bias-free linears)."""

    def __init__(self, depth: int, d: int, head_dim: int = 4, attention: str = "manual",
                 vocab: int = VOCAB, ctx: int = CTX) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList([Block(d, head_dim, attention) for _ in range(depth)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))

    def from_embeddings(self, e: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            e = block(e)
        return self.head(self.ln(e))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.from_embeddings(self.embed(idx))


def active_params(depth: int, d: int) -> int:
    """METHOD §4.2's closed form (checks: (5, 120) → 958,800; (10, 284) → 9,908,760)."""
    return depth * (12 * d * d + 4 * d) + d * (VOCAB + CTX + VOCAB + 2)


def corpus_bytes() -> np.ndarray:
    """Bytes of the Python standard library's sources: a text corpus every machine has."""
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    chunks, size = [], 0
    for path in sorted(root.glob("*.py")):
        data = path.read_bytes()
        chunks.append(data)
        size += len(data)
        if size > 4_000_000:
            break
    return np.frombuffer(b"\n".join(chunks), dtype=np.uint8)


def windows(data: np.ndarray, batches: int, batch: int, ctx: int, seed: int = 42) -> list[torch.Tensor]:
    """``batches`` batches of ``batch`` random windows of ``ctx`` bytes (numpy generator ``seed``)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        starts = rng.integers(0, len(data) - ctx, size=batch)
        out.append(torch.from_numpy(np.stack([data[s : s + ctx] for s in starts]).astype(np.int64)))
    return out


def reference_output_agop(model: ByteGPT, batches: list[torch.Tensor], k: int = 64, probes: int = 64,
                          empty_cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference estimator; returns (AGOP k×k float32, P). Reseeds the global RNG with 42."""
    dev = next(model.parameters()).device
    model.eval()
    torch.manual_seed(42)
    p = torch.randn(k, VOCAB, device=dev) / math.sqrt(k)
    acc = torch.zeros(k, k, device=dev)

    def f(e: torch.Tensor) -> torch.Tensor:
        return model.from_embeddings(e)[:, -1, :] @ p.t()

    for idx in batches:
        idx = idx.to(dev)
        with torch.no_grad():
            e = model.embed(idx).detach()
        for _ in range(probes):
            u = torch.randn_like(e)
            _, ju = torch.autograd.functional.jvp(f, e, u)
            ju = torch.nan_to_num(ju, nan=0.0, posinf=0.0, neginf=0.0)
            acc += ju.t() @ ju / idx.shape[0]
            if empty_cache and dev.type == "cuda":
                torch.cuda.empty_cache()
    acc /= len(batches) * probes
    return 0.5 * (acc + acc.t()), p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--d-model", type=int, default=120)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--probes", type=int, default=64)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    model = ByteGPT(a.depth, a.d_model).to(a.device)
    data = windows(corpus_bytes(), a.batches, a.batch, CTX)
    t0 = time.perf_counter()
    agop, _ = reference_output_agop(model, data, probes=a.probes)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    print(json.dumps({"seconds": time.perf_counter() - t0, "trace": float(agop.trace())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

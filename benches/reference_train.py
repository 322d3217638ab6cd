"""A faithful reference-style training loop for the byte-level NTP sweep (METHOD §4.4), kept
outside the package as the baseline of benches/bench_train_gpu.py.

What it reproduces: the byte GPT of §4.2 with HAND-WRITTEN attention (explicit causal mask,
B×H×T×T scores, head_dim 4), bias-free linears, affine LayerNorm, untied head, N(0, 0.02²) init
with residual projections scaled by 1/√(2L); float32 throughout; AdamW lr 3e-4, wd 0.01 on ALL
parameters, betas (0.9, 0.999), gradient clip 1.0, 300 warm-up steps then cosine to 0; windows
with uniform starts drawn by a numpy generator seeded 1000·depth, served by a DataLoader that
reshuffles each epoch and drops the last partial batch; every 200 steps: train CE on 20 loader
batches, FULL validation and FULL test CE over all non-overlapping 256-byte windows, and a deep
copy of the state to the CPU whenever validation improves.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["RefGPT", "reference_train"]


class RefAttention(nn.Module):
    def __init__(self, d: int, n_heads: int, seq_len: int) -> None:
        super().__init__()
        self.n_heads, self.hd = n_heads, d // n_heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(seq_len, seq_len)).view(1, 1, seq_len, seq_len))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q = q.view(b, t, self.n_heads, self.hd).transpose(1, 2)
        k = k.view(b, t, self.n_heads, self.hd).transpose(1, 2)
        v = v.view(b, t, self.n_heads, self.hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, d)
        return self.proj(y)


class RefBlock(nn.Module):
    def __init__(self, d: int, n_heads: int, seq_len: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = RefAttention(d, n_heads, seq_len)
        self.fc1 = nn.Linear(d, 4 * d, bias=False)
        self.fc2 = nn.Linear(4 * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class RefGPT(nn.Module):
    """The reference byte LM: L·(12d² + 4d) + 770·d parameters at V = T = 256."""

    def __init__(self, depth: int, d: int, head_dim: int = 4, vocab: int = 256, seq_len: int = 256) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq_len, d)
        self.blocks = nn.ModuleList(RefBlock(d, d // head_dim, seq_len) for _ in range(depth))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * depth) if name.endswith(("attn.proj.weight", "fc2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x))


class Windows(Dataset):  # type: ignore[type-arg]
    def __init__(self, data: np.ndarray, starts: np.ndarray, seq_len: int) -> None:
        self.data, self.starts, self.seq_len = data, starts, seq_len

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = int(self.starts[i])
        chunk = torch.from_numpy(self.data[s : s + self.seq_len + 1].astype(np.int64))
        return chunk[:-1], chunk[1:]


@torch.no_grad()
def _full_ce(model: nn.Module, data: np.ndarray, seq_len: int, batch: int, device: torch.device) -> float:
    starts = np.arange(0, len(data) - seq_len - 1 + 1, seq_len)
    loader = DataLoader(Windows(data, starts, seq_len), batch_size=batch, shuffle=False)
    model.eval()
    total, n = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        n += y.numel()
    model.train()
    return total / n


def reference_train(
    train: np.ndarray, val: np.ndarray, test: np.ndarray, *, depth: int, d_model: int, steps: int,
    head_dim: int = 4, batch: int = 64, seq_len: int = 256, n_windows: int | None = None,
    eval_every: int = 200, device: str = "cuda", warmup_steps_untimed: int = 20,
) -> dict[str, Any]:
    """Runs ``steps`` optimiser steps of the reference loop and returns timings.

    The clock starts after ``warmup_steps_untimed`` steps (CUDA start-up) and includes the periodic
    evaluations, as in the reference run."""
    dev = torch.device(device)
    torch.manual_seed(0)  # the reference seeds torch with 0 for every shape
    model = RefGPT(depth, d_model, head_dim, seq_len=seq_len).to(dev)
    n_windows = n_windows or max(batch, 60 * sum(p.numel() for p in model.parameters()) // seq_len)
    rng = np.random.default_rng(0 + 1000 * depth)
    starts = rng.integers(0, len(train) - seq_len - 1, size=n_windows)
    loader = DataLoader(Windows(train, starts, seq_len), batch_size=batch, shuffle=True, drop_last=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.999), weight_decay=0.01)
    max_steps = steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / 300 if s < 300 else
                                              0.5 * (1 + math.cos(math.pi * (s - 300) / max(1, max_steps - 300))))
    best_val, best_state, step, t0 = math.inf, None, 0, None
    evals = 0
    while step < steps:
        for x, y in loader:
            if step == warmup_steps_untimed:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            x, y = x.to(dev), y.to(dev)
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % eval_every == 0 or step == steps:
                tr = []
                with torch.no_grad():
                    model.eval()
                    for i, (xb, yb) in enumerate(loader):
                        if i == 20:
                            break
                        lg = model(xb.to(dev))
                        tr.append(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), yb.to(dev).reshape(-1)).item())
                    model.train()
                val_ce = _full_ce(model, val, seq_len, batch, dev)
                _full_ce(model, test, seq_len, batch, dev)
                evals += 1
                if val_ce < best_val:
                    best_val = val_ce
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            if step >= steps:
                break
    if dev.type == "cuda":
        torch.cuda.synchronize()
    timed = steps - warmup_steps_untimed
    seconds = time.perf_counter() - (t0 if t0 is not None else time.perf_counter())
    return {"steps": steps, "timed_steps": timed, "seconds": seconds, "steps_per_s": timed / seconds if seconds else math.nan,
            "evaluations": evals, "best_val_ce": best_val, "kept_state": best_state is not None,
            "max_memory_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None}

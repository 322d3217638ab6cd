"""The scalar v(x_T) read off a model's output, computed stably in float64.

- classification: the target's log-odds z_y − log Σ_{c≠y} e^{z_c};
- language models: log p/(1 − p) of the target next token (by default the argmax next token of the
  full input), which is the same quantity: p/(1 − p) = e^{z_t} / Σ_{c≠t} e^{z_c}. Computing it
  as a difference of log-sum-exps never forms 1 − p, so it stays exact when p is within 1e-16 of 1
  or below 1e-300 (where log(p) − log(1 − p) in floating point would give ±inf or 0);
- regression: one output coordinate.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import NilValueError, ShapeError

ValueKind = Literal["log-odds", "output"]

__all__ = ["ValueKind", "log_odds", "log_odds_from_log_prob", "read_value", "select_position"]


def log_odds(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """z_y − logsumexp_{c≠y} z_c per row of ``logits`` [B, C] (float64); a single logit column is
    read as the log-odds of class 1 (target 1 → z, target 0 → −z)."""
    if logits.ndim != 2:
        raise ShapeError(f"log_odds: expected logits [batch, classes], found shape {tuple(logits.shape)}")
    z = logits.to(torch.float64)
    t = target.to(device=z.device, dtype=torch.int64).reshape(-1)
    if t.numel() == 1 and z.shape[0] != 1:
        t = t.expand(z.shape[0])
    if z.shape[1] == 1:
        return torch.where(t == 1, z[:, 0], -z[:, 0])
    if bool(((t < 0) | (t >= z.shape[1])).any()):
        raise NilValueError(f"log_odds: target outside the {z.shape[1]} classes")
    zy = z.gather(1, t[:, None])[:, 0]
    others = z.scatter(1, t[:, None], float("-inf"))
    return zy - torch.logsumexp(others, dim=1)


def log_odds_from_log_prob(log_p: torch.Tensor) -> torch.Tensor:
    """log p − log(1 − p) from log p ≤ 0 (for models that return log-probabilities), with
    log(1 − p) = log(−expm1(log p)) near p = 1 and log1p(−p) elsewhere (Mächler 2012)."""
    lp = log_p.to(torch.float64)
    log1m = torch.where(lp > -0.6931471805599453, torch.log(-torch.expm1(lp)), torch.log1p(-torch.exp(lp)))
    return lp - log1m


def select_position(output: torch.Tensor, position: int) -> torch.Tensor:
    """Sequence outputs [B, T, C] → [B, C] at ``position``; 2-D outputs pass through."""
    if output.ndim == 3:
        return output[:, position]
    if output.ndim == 2:
        return output
    if output.ndim == 1:
        return output[:, None]
    raise ShapeError(f"value: expected model outputs [batch, C] or [batch, T, C], found shape {tuple(output.shape)}")


def read_value(output: torch.Tensor, kind: ValueKind, target: torch.Tensor, position: int = -1) -> torch.Tensor:
    """v per row of a model output: the target's log-odds, or output coordinate ``target``."""
    z = select_position(output, position)
    if kind == "log-odds":
        return log_odds(z, target)
    if kind == "output":
        t = target.to(device=z.device, dtype=torch.int64).reshape(-1)
        if t.numel() == 1:
            t = t.expand(z.shape[0])
        return z.to(torch.float64).gather(1, t[:, None])[:, 0]
    raise NilValueError(f"value: kind must be 'log-odds' or 'output', found {kind!r}")

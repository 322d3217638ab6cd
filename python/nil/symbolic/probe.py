"""Symbolic-interaction summary columns of one trained sweep run, on its fixed capture sample.

Called by the sweep runner when a sweep asks for them (``nil sweep --symbolic N``). Players and
values follow the input and loss kind of the task, so every run of a budget is probed alike:

- token inputs [B, T] (byte LM): the last N positions, masked by token 0; v = log-odds of the
  argmax next token of the full window;
- real inputs (vectors, images): N entries evenly spread over the flattened input, masked by 0
  (inputs are standardised, so 0 is the mean); v = log-odds of the predicted class for ``ce``
  tasks, the first output coordinate for regression.

Columns are named ``symbolic_*`` (nil interval picks metric columns by name: see docs/symbolic.md).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..errors import NilValueError
from .analysis import summarize
from .decompose import and_or
from .evaluate import masked_values
from .players import Players
from .value import ValueKind

__all__ = ["probe_players", "symbolic_columns"]


def probe_players(x: torch.Tensor, n: int) -> Players:
    """The probe's players for samples ``x`` [B, ...] (see the module docstring)."""
    shape = tuple(x.shape[1:])
    if not x.is_floating_point():
        if len(shape) != 1 or n > shape[0]:
            raise NilValueError(f"symbolic probe: {n} token players need token inputs [B, T ≥ {n}], found {tuple(x.shape)}")
        return Players.tokens(shape[0], list(range(shape[0] - n, shape[0])))
    size = int(np.prod(shape))
    if n > size:
        raise NilValueError(f"symbolic probe: {n} players exceed the {size} input entries")
    flat = torch.full((size,), -1, dtype=torch.int64)
    flat[np.linspace(0, size - 1, n).round().astype(np.int64)] = torch.arange(n)
    return Players(flat.view(shape), n)


def symbolic_columns(model: torch.nn.Module, data: Any, n_players: int, device: torch.device | str,
                     samples: int = 16, max_iter: int = 2000) -> dict[str, float]:
    """Summary of the AND–OR interactions of ``model`` on the first ``samples`` capture samples."""
    if not 1 <= n_players <= 16:
        raise NilValueError(f"--symbolic: expected 1 to 16 players, found {n_players}")
    t0 = time.perf_counter()
    x = next(iter(data.capture_batches(samples))).to(device)
    players = probe_players(x, n_players)
    value: ValueKind = "output" if data.loss in ("mse", "recon") else "log-odds"
    mv = masked_values(model, x, players, baseline=0 if not x.is_floating_point() else "zero", value=value)
    d = and_or(mv.values, max_iter=max_iter)
    s = summarize(d, mv.values)
    return {
        "symbolic_players": float(n_players),
        "symbolic_samples": float(x.shape[0]),
        "symbolic_salient": s["salient_mean"],
        "symbolic_explanation_ratio": s["explanation_ratio"],
        "symbolic_strength_ratio": s["strength_ratio"],
        "symbolic_mean_order": s["mean_order"],
        "symbolic_peak_order": float(s["peak_order"]),
        "symbolic_or_share": s["or_share"],
        "symbolic_objective": s["objective_mean"],
        "symbolic_gap": s["gap_max"],
        "symbolic_seconds": time.perf_counter() - t0,
    }

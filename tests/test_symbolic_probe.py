"""The sweep's symbolic probe: players by input kind, and the symbolic_* columns of a run."""

from __future__ import annotations

import torch

from nil.models import build
from nil.symbolic.probe import probe_players, symbolic_columns
from nil.tasks import make_task
from nil.sweep_run import capture_columns


def test_probe_players_by_input_kind() -> None:
    tok = probe_players(torch.zeros(2, 10, dtype=torch.long), 4)
    assert tok.index.tolist() == [-1] * 6 + [0, 1, 2, 3]
    img = probe_players(torch.zeros(2, 1, 8, 8), 5)
    assert img.index.shape == (1, 8, 8) and sorted(img.index[img.index >= 0].tolist()) == [0, 1, 2, 3, 4]


def test_capture_step_adds_symbolic_columns() -> None:
    data = make_task("digits").make(200, "cpu")
    model = build("mlp", 2, 32, in_dim=64, out_dim=10, seed=0)
    cols = symbolic_columns(model, data, 5, "cpu")
    assert cols["symbolic_players"] == 5 and cols["symbolic_samples"] == 16
    assert 0 <= cols["symbolic_explanation_ratio"] <= 1 and cols["symbolic_salient"] > 0
    both = capture_columns(model, data, {"project": 4, "probes": 1, "symbolic": 4}, torch.device("cpu"))
    assert both["symbolic_players"] == 4 and any(k.startswith("agop") or "aofe" in k for k in both)

"""The worked example of docs/symbolic.md: a small MLP trained on scikit-learn's digits (a few
seconds on a CPU), its AND–OR interactions on 8 image patches, and what two seeds share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..models import build
from ..tasks import make_task
from .analysis import compare_groups, sharing, summarize
from .decompose import and_or, joint_and_or
from .evaluate import masked_values
from .players import Players

__all__ = ["DIGIT_PATCHES", "digits_players", "train_digits_mlp", "run_demo"]

#: The 8 central 2×2 patches of an 8×8 digit (the middle two columns of the 4×4 patch grid);
#: the outer columns stay as background.
DIGIT_PATCHES = (1, 2, 5, 6, 9, 10, 13, 14)


def digits_players() -> Players:
    """Players of the demo: the 8 central 2×2 patches of the 8×8 image."""
    return Players.patches(8, 8, 2, DIGIT_PATCHES)


@dataclass
class DigitsModel:
    """A trained MLP and the data it saw."""

    model: torch.nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    test_accuracy: float


def train_digits_mlp(seed: int = 0, steps: int = 250, width: int = 64, depth: int = 3) -> DigitsModel:
    """nil's MLP on the digits task, full-batch Adam for ``steps`` steps (CPU, a few seconds)."""
    data = make_task("digits").make(2000, "cpu")
    xtr, ytr = data.train.batch(torch.arange(len(data.train)))
    xte, yte = data.test.batch(torch.arange(len(data.test)))
    torch.manual_seed(seed)
    model = build("mlp", depth, width, in_dim=64, out_dim=10, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xtr), ytr)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return DigitsModel(model, xtr, ytr, xte, yte, acc)


def run_demo(samples: int = 8, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Two seeds of the digits MLP: each one's summary on test samples, train vs test profiles of
    the first, and the interactions the two share (a joint decomposition)."""
    a, b = train_digits_mlp(seed), train_digits_mlp(seed + 1)
    players = digits_players()
    xs, ys = a.x_test[:samples], a.y_test[:samples]
    va = masked_values(a.model, xs, players, target=ys, progress=progress)
    vb = masked_values(b.model, xs, players, target=ys, progress=progress)
    vtrain = masked_values(a.model, a.x_train[:samples], players, target=a.y_train[:samples], progress=progress)
    da, dtrain = and_or(va.values, max_iter=5000), and_or(vtrain.values, max_iter=5000)
    joint = joint_and_or(np.stack([va.values, vb.values], axis=1), max_iter=5000)
    return {
        "test_accuracy": [a.test_accuracy, b.test_accuracy],
        "forwards_per_second": va.per_second,
        "model_a": summarize(da, va.values),
        "train_vs_test": compare_groups({"train": dtrain, "test": da}),
        "sharing": sharing(joint).to_dict(),
        "decomposition": da,
        "values": va.values,
    }

"""scikit-learn's handwritten digits (1,797 8×8 grey images, 10 classes) for MLP/CNN
classification on real data.

A fixed permutation (``data_seed``) splits the images 60/20/20 into train/validation/test; pixels
are standardised with the mean and standard deviation of the training pixels only. The data budget
D = ratio·N labels sets how many samples training draws (several epochs of the 1,078 training
images). Loss: cross-entropy per image; ``accuracy`` is not part of the loss and not reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .._optional import require
from ._data import TaskData, TensorSplit, generator, subset
from ._task import Task

__all__ = ["Digits"]

_SPLIT, _SUBSETS = 1, 2


@dataclass
class Digits(Task):
    """10-way classification of 8×8 digit images; mlp sees 64 pixels, cnn a 1×8×8 image."""

    val_fraction: float = 0.2
    test_fraction: float = 0.2
    capture_subset: int = 256
    data_seed: int = 0

    name = "digits"
    families = ("mlp", "cnn")

    @property
    def units_per_sample(self) -> int:
        return 1

    def model_kwargs(self, family: str) -> dict[str, Any]:
        self.check_family(family)
        if family == "mlp":
            return {"in_dim": 64, "out_dim": 10}
        return {"in_ch": 1, "patch": 2, "out_dim": 10}

    def make(self, n_train_samples: int, device: torch.device | str = "cpu") -> TaskData:
        datasets: Any = require("sklearn.datasets", "the digits task", extra="sweep")
        bunch = datasets.load_digits()
        x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
        y = torch.tensor(bunch.target, dtype=torch.long)
        n = len(y)
        perm = torch.randperm(n, generator=generator(self.data_seed, _SPLIT))
        n_val, n_test = int(n * self.val_fraction), int(n * self.test_fraction)
        te, va, tr = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
        mean, std = x[tr].mean(), x[tr].std()
        x = (x - mean) / std
        g = generator(self.data_seed, _SUBSETS)
        data = TaskData(
            train=TensorSplit(x[tr], y[tr]),
            val=TensorSplit(x[va], y[va]),
            test=TensorSplit(x[te], y[te]),
            loss="ce",
            n_train_samples=max(1, n_train_samples),
            units_per_sample=1,
            val_idx=torch.arange(len(va)),
            train_eval_idx=torch.arange(len(tr)),
            capture_idx=subset(len(te), self.capture_subset, g),
            info={"pixel_mean": float(mean), "pixel_std": float(std), "split_sizes": [len(tr), len(va), len(te)]},
        )
        return data.to(device)

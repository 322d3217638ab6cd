"""Splits, task data and fixed evaluation subsets shared by every task (docs/method.md §8 R8).

A split hands out (inputs, targets) batches for index tensors; ``TaskData`` holds the three splits,
how many training samples the data budget buys, and the fixed subsets (validation during training,
the training-loss sample, the capture sample) as stored index tensors drawn by explicit
generators.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import torch

__all__ = ["Split", "TensorSplit", "WindowSplit", "TaskData", "LossKind", "subset", "generator"]

LossKind = Literal["mse", "ce", "lm", "recon"]


def generator(*seeds: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from a tuple of integers (e.g. (data_seed, purpose, n)),
    so every stream a task draws is independent and reproducible."""
    seq = np.random.SeedSequence([int(s) & 0xFFFFFFFF for s in seeds])
    return torch.Generator().manual_seed(int(seq.generate_state(1, dtype=np.uint64)[0] >> 1))


class Split(Protocol):
    """What the trainer needs from a split."""

    def __len__(self) -> int: ...

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def to(self, device: torch.device | str) -> Split: ...


@dataclass
class TensorSplit:
    """Inputs and targets as tensors with the sample on dimension 0."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``idx`` (an index tensor on the split's device)."""
        return self.x[idx], self.y[idx]

    def to(self, device: torch.device | str) -> TensorSplit:
        """The split on ``device``."""
        return TensorSplit(self.x.to(device), self.y.to(device))


@dataclass
class WindowSplit:
    """Byte windows of ``seq_len`` + 1 bytes cut from one byte stream at stored start offsets;
    inputs are the first ``seq_len`` bytes, targets the next-byte shift."""

    data: torch.Tensor  # uint8, 1-D
    starts: torch.Tensor  # int64
    seq_len: int

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows ``idx`` as (B, T) int64 inputs and targets."""
        offs = self.starts[idx].unsqueeze(1) + torch.arange(self.seq_len + 1, device=self.starts.device)
        w = self.data[offs].long()
        return w[:, :-1], w[:, 1:]

    def to(self, device: torch.device | str) -> WindowSplit:
        """The split on ``device``."""
        return WindowSplit(self.data.to(device), self.starts.to(device), self.seq_len)


def subset(n_total: int, n: int | None, g: torch.Generator) -> torch.Tensor:
    """``n`` distinct indices of range(n_total), sorted, drawn with ``g`` (all of them if n is None
    or at least n_total)."""
    if n is None or n >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=g)[:n].sort().values


@dataclass
class TaskData:
    """Everything a training run needs from a task, on one device.

    ``n_train_samples``: training samples the data budget D = ratio·N buys (may exceed
    ``len(train)`` for a finite dataset: then it is passed over for several epochs).
    ``val_idx``/``train_eval_idx``/``capture_idx``: the fixed subsets, indices into val, train and
    test; ``units_per_sample``: supervised scalars (regression outputs, tokens, labels) per sample.
    """

    train: Split
    val: Split
    test: Split
    loss: LossKind
    n_train_samples: int
    units_per_sample: int
    val_idx: torch.Tensor
    train_eval_idx: torch.Tensor
    capture_idx: torch.Tensor
    info: dict[str, object] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> TaskData:
        """The same data on ``device``."""
        return TaskData(
            self.train.to(device), self.val.to(device), self.test.to(device), self.loss,
            self.n_train_samples, self.units_per_sample, self.val_idx.to(device),
            self.train_eval_idx.to(device), self.capture_idx.to(device), dict(self.info),
        )

    def capture_batches(self, batch_size: int = 64) -> Iterator[torch.Tensor]:
        """The fixed capture sample of the test split, as input batches (docs/method.md R8: shared by all
        shapes and seeds of a budget)."""
        for i in range(0, len(self.capture_idx), batch_size):
            yield self.test.batch(self.capture_idx[i : i + batch_size])[0]

    def stored_indices(self) -> dict[str, np.ndarray]:
        """The fixed subsets as numpy arrays, for saving beside a runs table."""
        return {
            "val_idx": self.val_idx.cpu().numpy(),
            "train_eval_idx": self.train_eval_idx.cpu().numpy(),
            "capture_idx": self.capture_idx.cpu().numpy(),
        }

"""Teacher–student regression (docs/method.md §4.5–4.6): a frozen random teacher maps Gaussian inputs to
targets; students of every shape regress them.

Teachers: ``mlp`` — bias-free GELU MLP in→w→w→w→out with weights N(0, 1/fan_in) (the 1M MLP
sweep's teacher); ``gpt`` — a frozen 6-block decoder (d 64, head_dim 8, d_ff 256) on the input
read as a scalar sequence, its last-position output (the TS multi-budget teacher). Inputs are
x ~ N(0, I_in) (read as a length-``in_dim`` scalar sequence by gpt/gru students); targets are
standardised per output with the *training* mean and standard deviation only (docs/method.md §7 fix 17).
Every draw comes from an explicit generator derived from ``data_seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..errors import NilValueError
from ._data import TaskData, TensorSplit, generator, subset
from ._task import Task

__all__ = ["TeacherStudent"]

_TRAIN, _VAL, _TEST, _TEACHER, _SUBSETS = 1, 2, 3, 4, 5


@dataclass
class TeacherStudent(Task):
    """Regression of a frozen random teacher; loss = MSE per output element."""

    teacher: Literal["mlp", "gpt"] = "mlp"
    in_dim: int = 64
    out_dim: int = 64
    teacher_width: int = 256
    teacher_depth: int = 3
    n_val: int = 2000
    n_test: int = 2000
    val_subset: int | None = 512
    train_eval_subset: int | None = 512
    capture_subset: int = 256
    data_seed: int = 0

    name = "teacher-student"
    families = ("mlp", "gpt", "gru")

    def __post_init__(self) -> None:
        if self.teacher not in ("mlp", "gpt"):
            raise NilValueError(f"teacher-student: teacher must be 'mlp' or 'gpt', found {self.teacher!r}")

    @property
    def units_per_sample(self) -> int:
        return self.out_dim

    def model_kwargs(self, family: str) -> dict[str, Any]:
        self.check_family(family)
        if family == "mlp":
            return {"in_dim": self.in_dim, "out_dim": self.out_dim}
        if family == "gpt":
            return {"vocab": None, "in_dim": 1, "seq_len": self.in_dim, "out_dim": self.out_dim}
        return {"in_dim": 1, "out_dim": self.out_dim}

    @torch.no_grad()
    def _teacher_fn(self, device: torch.device | str) -> Any:
        g = generator(self.data_seed, _TEACHER)
        if self.teacher == "mlp":
            dims = [self.in_dim] + [self.teacher_width] * self.teacher_depth + [self.out_dim]
            weights = [(torch.randn(a, b, generator=g, dtype=torch.float64) / math.sqrt(a)).to(device)
                       for a, b in zip(dims[:-1], dims[1:])]

            def mlp(x: torch.Tensor) -> torch.Tensor:
                h = x.double()
                for i, w in enumerate(weights):
                    h = h @ w
                    if i < len(weights) - 1:
                        h = F.gelu(h)
                return h.float()

            return mlp
        from ..models.gpt import GPT
        from ..models.init import initialize

        with torch.device("meta"):
            shell = GPT(6, 64, vocab=None, in_dim=1, seq_len=self.in_dim, out_dim=self.out_dim, head_dim=8)
        return initialize(shell.to_empty(device="cpu"), g, "default").to(device).eval()

    @torch.no_grad()
    def make(self, n_train_samples: int, device: torch.device | str = "cpu") -> TaskData:
        teacher = self._teacher_fn(device)

        def draw(n: int, purpose: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.randn(n, self.in_dim, generator=generator(self.data_seed, purpose, n)).to(device)
            y = torch.cat([teacher(x[i : i + 8192]) for i in range(0, n, 8192)])
            return x, y

        xtr, ytr = draw(n_train_samples, _TRAIN)
        xva, yva = draw(self.n_val, _VAL)
        xte, yte = draw(self.n_test, _TEST)
        mean = ytr.mean(0)
        std = ytr.std(0).clamp_min(1e-12) if n_train_samples > 1 else torch.ones_like(mean)

        def norm(y: torch.Tensor) -> torch.Tensor:
            return (y - mean) / std

        g = generator(self.data_seed, _SUBSETS)
        return TaskData(
            train=TensorSplit(xtr, norm(ytr)),
            val=TensorSplit(xva, norm(yva)),
            test=TensorSplit(xte, norm(yte)),
            loss="mse",
            n_train_samples=n_train_samples,
            units_per_sample=self.out_dim,
            val_idx=subset(self.n_val, self.val_subset, g).to(device),
            train_eval_idx=subset(n_train_samples, self.train_eval_subset, g).to(device),
            capture_idx=subset(self.n_test, self.capture_subset, g).to(device),
            info={"target_mean": mean.cpu().tolist(), "target_std": std.cpu().tolist()},
        )

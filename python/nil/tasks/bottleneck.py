"""The bottleneck double-descent toy (docs/method.md §3.5, §6.1) with nil's fixes (fix 24).

x ∈ R^1000 with each coordinate non-zero with probability 0.01, non-zeros U[0, 1), rows
L2-normalised (zero rows stay zero). Model ŷ = ReLU(x·W1ᵀW1 + b), W1 ∈ R^{2×1000} Xavier normal,
b = 0; loss = mean over samples of Σ_dims (x − |ŷ|)². The swept variable is the data size, not the
shape: the training set holds ``data_size`` points (seeded 12345 + data_size), and — unlike the
reference — ONE test set of 5,000 points (seed 54321) serves every size. The reference's AGOP is the
closed form E[J Jᵀ] = (G G) ⊙ C with G = W1ᵀW1 and co-activation C_ij = E[m_i m_j]
(``output_agop``); the NFA object E[JᵀJ] = G·diag(p)·G is ``input_agop``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._data import TaskData, TensorSplit, generator
from ._task import Task

__all__ = ["Bottleneck", "BottleneckModel", "sparse_points", "output_agop", "input_agop"]


def sparse_points(n: int, dim: int, density: float, g: torch.Generator) -> torch.Tensor:
    """``n`` sparse non-negative unit vectors (zero rows stay zero)."""
    mask = torch.rand(n, dim, generator=g) < density
    x = torch.rand(n, dim, generator=g) * mask
    norm = x.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, x / norm.clamp_min(1e-30), x)


class BottleneckModel(nn.Module):
    """ŷ = ReLU(x·W1ᵀW1 + b) with a tied decoder."""

    def __init__(self, dim: int = 1000, hidden: int = 2, generator: torch.Generator | None = None) -> None:
        super().__init__()
        std = math.sqrt(2.0 / (dim + hidden))  # Xavier normal
        self.W1 = nn.Parameter(torch.randn(hidden, dim, generator=generator) * std)
        self.b = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W1.T @ self.W1 + self.b)

    @torch.no_grad()
    def initialize_from(self, generator: torch.Generator) -> None:
        """Re-draws W1 (Xavier normal, on the CPU from ``generator``) and zeroes b, in place; the
        draw equals the constructor's with the same generator state."""
        hidden, dim = self.W1.shape
        std = math.sqrt(2.0 / (dim + hidden))
        self.W1.copy_(torch.randn(hidden, dim, generator=generator) * std)
        self.b.zero_()


def _stats_columns(prefix: str, m: torch.Tensor) -> dict[str, float]:
    from ..interaction import interaction_stats

    s = interaction_stats(m.cpu().numpy())
    return {f"{prefix}_{k}": float(getattr(s, k)) for k in
            ("aofe_ratio", "null_rotation", "weighted_mean_cos2", "participation_ratio", "effective_rank", "top_share")}


def _closed_form_columns(model: BottleneckModel, data: TaskData, device: torch.device) -> dict[str, float]:
    """The run's metric columns on the test set from the closed forms: the reference's output
    AGOP (``agop_*``), the NFA input AGOP (``input_agop_*``) and WᵀW (``wtw_*``)."""
    if not isinstance(data.test, TensorSplit):
        raise TypeError(f"bottleneck: expected the test split as tensors, found {type(data.test).__name__}")
    x = data.test.x.to(device)
    G = (model.W1.T @ model.W1).detach().double()
    return {**_stats_columns("agop", output_agop(model, x)), **_stats_columns("input_agop", input_agop(model, x)),
            **_stats_columns("wtw", G)}


BottleneckModel.closed_form_columns = _closed_form_columns  # type: ignore[attr-defined]


def bottleneck_net(depth: int, width: int, dim: int = 1000) -> BottleneckModel:
    """The toy as a sweep family: one tied layer whose width is the bottleneck (``hidden``)."""
    from ..errors import NilValueError

    if depth != 1:
        raise NilValueError(f"bottleneck: the toy has one tied layer; expected depth 1, found {depth} (--depths 1)")
    return BottleneckModel(dim, width)


def bottleneck_param_count(depth: int, width: int, dim: int = 1000) -> Any:
    """W1 (width × dim) and the bias b (dim): the body; no embedding or head."""
    from ..errors import NilValueError
    from ..models._counts import ParamCount

    if depth != 1:
        raise NilValueError(f"bottleneck: the toy has one tied layer; expected depth 1, found {depth} (--depths 1)")
    return ParamCount(embedding=0, body=width * dim + dim, head=0)


@torch.no_grad()
def _masks(model: BottleneckModel, x: torch.Tensor) -> torch.Tensor:
    return (x.double() @ (model.W1.T @ model.W1).double() + model.b.double() > 0).double()


@torch.no_grad()
def output_agop(model: BottleneckModel, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """E_x[J Jᵀ] = (G G) ⊙ C in float64 (the reference's "AGOP", docs/method.md §3.5)."""
    G = (model.W1.T @ model.W1).double()
    C = torch.zeros_like(G)
    for i in range(0, len(x), chunk):
        m = _masks(model, x[i : i + chunk])
        C += m.T @ m
    return (G @ G) * (C / len(x))


@torch.no_grad()
def input_agop(model: BottleneckModel, x: torch.Tensor) -> torch.Tensor:
    """E_x[JᵀJ] = G·diag(p)·G, p_i = E[m_i], in float64 (the NFA object)."""
    G = (model.W1.T @ model.W1).double()
    p = _masks(model, x).mean(0)
    return G @ (p[:, None] * G)


@dataclass
class Bottleneck(Task):
    """Reconstruction of sparse unit vectors through a width-``hidden`` bottleneck."""

    data_size: int = 1000
    dim: int = 1000
    hidden: int = 2
    density: float = 0.01
    n_test: int = 5000
    n_val: int = 1000

    name = "bottleneck"
    families = ("bottleneck",)

    @property
    def units_per_sample(self) -> int:
        return 1

    @property
    def fixed_train_samples(self) -> int:
        """The training set is ``data_size`` points whatever the data budget (the size is swept)."""
        return self.data_size

    def model_kwargs(self, family: str) -> dict[str, Any]:
        """In a sweep the width is the bottleneck (``hidden`` is ``build_model``'s only)."""
        self.check_family(family)
        return {"dim": self.dim}

    def build_model(self, seed: int) -> BottleneckModel:
        """The model with W1 drawn from a generator seeded ``seed``."""
        return BottleneckModel(self.dim, self.hidden, torch.Generator().manual_seed(seed))

    def make(self, n_train_samples: int = 0, device: torch.device | str = "cpu") -> TaskData:
        """The data of ``data_size`` points; ``n_train_samples`` is ignored (the size is swept)."""
        xtr = sparse_points(self.data_size, self.dim, self.density, torch.Generator().manual_seed(12345 + self.data_size))
        xte = sparse_points(self.n_test, self.dim, self.density, torch.Generator().manual_seed(54321))
        xva = sparse_points(self.n_val, self.dim, self.density, generator(54321, 2))
        data = TaskData(
            train=TensorSplit(xtr, xtr),
            val=TensorSplit(xva, xva),
            test=TensorSplit(xte, xte),
            loss="recon",
            n_train_samples=self.data_size,
            units_per_sample=1,
            val_idx=torch.arange(self.n_val),
            train_eval_idx=torch.arange(self.data_size),
            capture_idx=torch.arange(self.n_test),
        )
        return data.to(device)

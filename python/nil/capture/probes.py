"""Output probes and projections, all drawn from explicit seeded generators (never the global RNG).

A probe v satisfies E[v vᵀ] = I, so E_v[Jᵀv vᵀJ] = JᵀJ: Gaussian N(0, 1) or Rademacher ±1 entries.
The exact estimator uses the scaled basis √m·e_c, c = 1..m, whose average outer product is I too:
exact and random probes then average to the same matrix with the same row count convention.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from ..errors import NilValueError

__all__ = ["ProbeKind", "Projector", "basis_probe", "draw_probes", "generator", "projection_matrix"]

ProbeKind = Literal["gaussian", "rademacher"]


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def draw_probes(
    shape: tuple[int, ...], kind: ProbeKind, gen: torch.Generator, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """One probe tensor of ``shape`` with iid Gaussian or Rademacher entries."""
    if kind == "gaussian":
        return torch.randn(shape, generator=gen, device=device, dtype=dtype)
    if kind == "rademacher":
        bits = torch.randint(0, 2, shape, generator=gen, device=device)
        return (bits * 2 - 1).to(dtype)
    raise NilValueError(f"probe_kind: expected 'gaussian' or 'rademacher', found {kind!r}")


def basis_probe(batch: int, outputs: int, c: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """√m·e_c for every sample (m = ``outputs``): one exact probe of the m-output basis."""
    v = torch.zeros(batch, outputs, dtype=dtype, device=device)
    v[:, c] = math.sqrt(outputs)
    return v


def projection_matrix(k: int, outputs: int, seed: int) -> torch.Tensor:
    """P (k × outputs), entries N(0, 1)/√k, drawn on the CPU from a generator seeded with ``seed``
    (the same P on every device). E[PᵀP] = I, so projecting keeps JᵀJ unbiased."""
    if k < 1:
        raise NilValueError(f"project: expected k >= 1, found {k}")
    g = generator(torch.device("cpu"), seed)
    return torch.randn(k, outputs, generator=g, dtype=torch.float32) / math.sqrt(k)


class Projector:
    """The output projection P of a capture: none, a given k×V matrix, or k seeded rows drawn once
    the output size V is known (at the first forward pass)."""

    def __init__(self, project: int | torch.Tensor | None, seed: int) -> None:
        if isinstance(project, bool) or not (
            project is None or isinstance(project, (int, torch.Tensor))
        ):
            raise NilValueError(
                f"project: expected None, an int k or a k×V tensor, found {type(project).__name__}"
            )
        if isinstance(project, torch.Tensor) and project.ndim != 2:
            raise NilValueError(f"project: a k×V matrix is needed, found shape {tuple(project.shape)}")
        self.spec = project
        self.seed = int(seed)
        self._matrix: torch.Tensor | None = project if isinstance(project, torch.Tensor) else None

    def matrix(self, outputs: int) -> torch.Tensor | None:
        """P for outputs of size ``outputs`` (drawn on first use when ``project`` is an int)."""
        if self.spec is None:
            return None
        if self._matrix is None:
            assert isinstance(self.spec, int)
            self._matrix = projection_matrix(self.spec, outputs, self.seed)
        return self._matrix

    def describe(self) -> int | str | None:
        """What the settings record: k, ``"given"`` or None."""
        if self.spec is None or isinstance(self.spec, int):
            return self.spec
        return f"given {tuple(self.spec.shape)}"

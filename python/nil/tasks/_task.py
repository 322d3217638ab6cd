"""The task interface: what the trainer and the sweep runner ask of a task."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any

import torch

from ..errors import NilValueError
from ._data import TaskData

__all__ = ["Task"]


class Task(ABC):
    """A learning problem that data budgets, model families and the trainer can be applied to.

    Subclasses are dataclasses whose fields are the task's options; ``config()`` is what a runs
    table records and hashes."""

    name: str = "task"
    families: tuple[str, ...] = ()

    @property
    @abstractmethod
    def units_per_sample(self) -> int:
        """Supervised scalars per training sample: D = ratio·N buys ⌈D / units⌉ samples."""

    @abstractmethod
    def model_kwargs(self, family: str) -> dict[str, Any]:
        """The shape options ``nil.models.build(family, ...)`` needs for this task's inputs/outputs."""

    @abstractmethod
    def make(self, n_train_samples: int, device: torch.device | str = "cpu") -> TaskData:
        """Generates or loads the data: ``n_train_samples`` training samples (a finite dataset is
        passed over repeatedly instead), fixed validation/test splits and evaluation subsets."""

    def config(self) -> dict[str, Any]:
        """The task's name and options (for the runs table and its config hash)."""
        opts: dict[str, Any] = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"task": self.name, **opts}

    def check_family(self, family: str) -> None:
        """Raises a clear error if ``family`` cannot learn this task."""
        if family not in self.families:
            raise NilValueError(
                f"task {self.name!r} supports the model families {list(self.families)}, not {family!r}"
            )

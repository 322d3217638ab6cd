"""Tasks for shape sweeps: teacher–student regression, byte-level language modelling
on a local corpus, scikit-learn digits, and the bottleneck double-descent toy.

``make_task(name, **options)`` returns a task; ``task.make(n_train_samples, device)`` returns the
``TaskData`` (splits, loss kind, fixed evaluation subsets) the trainer consumes. Every task is
deterministic under its ``data_seed`` and draws only from explicit generators.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import NilValueError
from ._data import LossKind, Split, TaskData, TensorSplit, WindowSplit, generator, subset
from ._task import Task
from .bottleneck import Bottleneck
from .bytes_lm import ByteLM
from .corpus import ByteCorpus, load_corpus
from .digits import Digits
from .losses import loss_count, loss_mean, loss_sum
from .teacher_student import TeacherStudent

__all__ = [
    "TASKS", "Bottleneck", "ByteCorpus", "ByteLM", "Digits", "LossKind", "Split", "Task", "TaskData",
    "TeacherStudent", "TensorSplit", "WindowSplit", "generator", "load_corpus", "loss_count", "loss_mean", "loss_sum",
    "make_task", "parse_task_options", "subset",
]

TASKS: dict[str, Callable[..., Task]] = {
    "ts-mlp": lambda **kw: TeacherStudent(teacher="mlp", **kw),
    "ts-gpt": lambda **kw: TeacherStudent(teacher="gpt", **kw),
    "bytes": ByteLM,
    "digits": Digits,
    "bottleneck": Bottleneck,
}
_CLASSES: dict[str, type[Task]] = {
    "ts-mlp": TeacherStudent, "ts-gpt": TeacherStudent, "bytes": ByteLM, "digits": Digits, "bottleneck": Bottleneck,
}


def make_task(name: str, **options: Any) -> Task:
    """The task ``name`` (one of ``TASKS``) with its options, e.g. ``make_task("ts-mlp", in_dim=32)``."""
    if name not in TASKS:
        raise NilValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    try:
        return TASKS[name](**options)
    except TypeError as e:
        fields = sorted(f.name for f in dataclasses.fields(_CLASSES[name]))  # type: ignore[arg-type]
        raise NilValueError(f"task {name!r}: {e}; its options are {fields}") from None


def _convert(text: str, annotation: Any) -> Any:
    if text.lower() in ("none", "null"):
        return None
    hint = annotation if not isinstance(annotation, str) else eval(annotation, {"Literal": typing.Literal})  # noqa: S307
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    for t in args:
        if t is int:
            return int(text)
        if t is float:
            return float(text)
    return text


def parse_task_options(name: str, pairs: Mapping[str, str]) -> dict[str, Any]:
    """Converts ``key=value`` strings (from the CLI) to the task's option types."""
    if name not in _CLASSES:
        raise NilValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    hints = {f.name: f.type for f in dataclasses.fields(_CLASSES[name])}  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    for k, v in pairs.items():
        if k not in hints:
            raise NilValueError(f"task {name!r} has no option {k!r}; its options are {sorted(hints)}")
        try:
            out[k] = _convert(v, hints[k])
        except ValueError:
            raise NilValueError(f"task {name!r}: option {k}={v!r} is not a valid {hints[k]}") from None
    return out

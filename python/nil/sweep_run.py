"""One run of a sweep: build the shape, train it, capture its interaction metrics, return its row.

``run_one`` takes a plain-dict ``RunSpec`` so it can cross process boundaries (a GPU worker
process, a Ray task) unchanged. The task data of a (task, budget) pair is cached per process:
every depth and seed of a budget trains on the same data (METHOD R8), and it is generated once.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch

from .errors import NilError
from .models import aspect_ratio, build, param_count
from .tasks import Task, TaskData, make_task
from .train import TrainConfig, train

__all__ = ["RunSpec", "run_one", "task_data", "capture_columns"]


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run's result (the config hash covers all of it)."""

    family: str
    task: str
    budget: int
    depth: int
    width: int
    active_params: int
    pad_params: int
    seed: int
    data_ratio: float
    task_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    capture: dict[str, Any] | None = None
    init: str | None = None
    width_rule: str = "pad"

    def config(self) -> dict[str, Any]:
        """The run's configuration as plain JSON-able data."""
        return asdict(self)

    def config_hash(self) -> str:
        """A short stable hash of ``config()`` (the run's identity for resuming)."""
        text = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def run_id(self) -> str:
        """A readable, unique directory name for the run."""
        return f"N{self.budget}-L{self.depth}-w{self.width}-s{self.seed}-{self.config_hash()}"


_DATA_CACHE: dict[str, TaskData] = {}


def task_data(task: Task, n_train_samples: int, device: torch.device | str) -> TaskData:
    """The task's data for ``n_train_samples`` on ``device``, generated once per process."""
    key = json.dumps([task.config(), n_train_samples, str(device)], sort_keys=True, default=str)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one budget at a time: bounded memory
        _DATA_CACHE[key] = task.make(n_train_samples, device)
    return _DATA_CACHE[key]


def n_train_samples(task: Task, budget: int, data_ratio: float) -> int:
    """Samples bought by the data budget D = data_ratio · budget supervised units."""
    return max(1, math.ceil(data_ratio * budget / task.units_per_sample))


def capture_columns(model: torch.nn.Module, data: TaskData, options: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The flat metric columns of ``nil.capture.interaction_report`` on the fixed capture sample."""
    try:
        from .capture import interaction_report
    except ImportError as e:
        raise NilError(
            "capture was requested but nil.capture is not available in this installation "
            f"({e}); run with --no-capture or install a nil with the capture module"
        ) from None
    opts = dict(options)
    batch_size = int(opts.pop("batch_size", 64))
    symbolic = opts.pop("symbolic", None)  # players of the symbolic-interaction probe (nil.symbolic.probe)
    batches = list(data.capture_batches(batch_size))
    report = interaction_report(model, batches, device=device, progress=False, **opts)
    cols = {f"{k}": (float(v) if isinstance(v, (int, float)) else v) for k, v in report.to_columns().items()}
    if symbolic is not None:
        from .symbolic.probe import symbolic_columns

        cols.update(symbolic_columns(model, data, int(symbolic), device))
    return cols


def run_one(
    spec_dict: dict[str, Any], device: str = "cpu", progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Trains and (optionally) captures the run ``spec_dict`` on ``device``; returns its row."""
    from . import __version__

    spec = RunSpec(**spec_dict)
    dev = torch.device(device)
    task = make_task(spec.task, **spec.task_options)
    kw = {**task.model_kwargs(spec.family), **spec.model_options}
    n_samples = n_train_samples(task, spec.budget, spec.data_ratio)
    data = task_data(task, n_samples, dev)
    model = build(spec.family, spec.depth, spec.width, pad=spec.pad_params, seed=spec.seed,
                  init=spec.init, device=dev, **kw)  # type: ignore[arg-type]
    config = TrainConfig(**{**spec.train, "betas": tuple(spec.train.get("betas", (0.9, 0.999)))})
    result = train(model, data, config, seed=spec.seed, progress=progress)
    counts = param_count(spec.family, spec.depth, spec.width, **kw)
    row: dict[str, Any] = {
        "family": spec.family,
        "task": spec.task,
        "budget": spec.budget,
        "depth": spec.depth,
        "width": spec.width,
        "ratio": aspect_ratio(spec.depth, spec.width),
        "width_over_depth": spec.width / spec.depth,
        "seed": spec.seed,
        "data_ratio": spec.data_ratio,
        "data_units": spec.data_ratio * spec.budget,
        "n_train_samples": n_samples,
        **counts.to_dict(),
        "pad_params": spec.pad_params,
        "pad_ratio": spec.pad_params / spec.budget,
        "budget_error": (counts.total - spec.budget) / spec.budget,
        "width_rule": spec.width_rule,
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "test_loss": result.test_loss,
        "loss_kind": data.loss,
        "steps": result.steps,
        "base_steps": result.base_steps,
        "max_steps": result.max_steps,
        "best_step": result.best_step,
        "warmup_steps": result.warmup_steps,
        "stopped_early": result.stopped_early,
        "diverged": result.diverged,
        "samples_seen": result.samples_seen,
        "seconds": result.seconds,
        "precision": result.precision,
        "protocol": _protocol(config, result),
    }
    capture_seconds = 0.0
    if spec.capture is not None:
        t0 = time.perf_counter()
        row.update(capture_columns(model, data, spec.capture, dev))
        capture_seconds = time.perf_counter() - t0
    row.update({
        "capture_seconds": capture_seconds,
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "host": platform.node(),
        "config_hash": spec.config_hash(),
        "config_json": json.dumps(spec.config(), sort_keys=True, default=str),
        "nil_version": __version__,
        "torch_version": torch.__version__,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    return row


def _protocol(config: TrainConfig, result: Any) -> str:
    """The effective protocol in words (METHOD §7 fix 20)."""
    stop = "stopped early" if result.stopped_early else "full schedule"
    return (f"AdamW lr {config.lr:g} wd {config.weight_decay:g}{' (no decay on norms/embeddings)' if config.no_decay_norm_emb else ''}, "
            f"batch {config.batch_size}, warm-up {result.warmup_steps} + cosine over {result.max_steps} steps "
            f"({config.step_factor:g}x base {result.base_steps}), {stop} at {result.steps}, "
            f"best-val checkpoint (step {result.best_step}), {result.precision}")

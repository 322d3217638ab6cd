"""One run of a sweep: build the shape, train it, capture its interaction metrics, return its row.

``run_one`` takes a plain-dict ``RunSpec`` so it can cross process boundaries (a GPU worker
process, a Ray task) unchanged. It is three steps that the packed runner (``nil.pack``) also uses:
``prepare_run`` (task data, the model built with the run's seed, the training settings),
training (``nil.train.train`` alone, or packed with other runs), and ``finish_run`` (the row:
shape and budget bookkeeping, losses and schedule, then the per-run metric hooks on the restored
best model, then provenance). The task data of a (task, budget) pair is cached per process: every
depth and seed of a budget trains on the same data (METHOD R8), and it is generated once.
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
from torch import nn

from .errors import NilError
from .models import aspect_ratio, build, param_count
from .tasks import Task, TaskData, make_task
from .train import TrainConfig, TrainResult, schedule, train

__all__ = ["RunSpec", "PreparedRun", "run_one", "prepare_run", "finish_run", "run_schedule", "task_data",
           "capture_columns", "n_train_samples"]


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
_DATA_CACHE_SIZE = 3  # budgets whose data a process keeps (packed runs of neighbouring budgets overlap)


def task_data(task: Task, n_train_samples: int, device: torch.device | str) -> TaskData:
    """The task's data for ``n_train_samples`` on ``device``, generated once per process (the
    few most recently used budgets are kept)."""
    key = json.dumps([task.config(), n_train_samples, str(device)], sort_keys=True, default=str)
    if key in _DATA_CACHE:
        _DATA_CACHE[key] = _DATA_CACHE.pop(key)  # most recently used last
    else:
        while len(_DATA_CACHE) >= _DATA_CACHE_SIZE:
            del _DATA_CACHE[next(iter(_DATA_CACHE))]
        _DATA_CACHE[key] = task.make(n_train_samples, device)
    return _DATA_CACHE[key]


def n_train_samples(task: Task, budget: int, data_ratio: float, rounding: str = "ceil") -> int:
    """Samples bought by the data budget D = data_ratio · budget supervised units: ⌈D/units⌉, or
    ⌊D/units⌋ with ``rounding="floor"`` (the reference's ⌊D/256⌋ windows)."""
    fixed = getattr(task, "fixed_train_samples", None)
    if fixed is not None:  # a task whose training set size is its own option (the bottleneck toy)
        return int(fixed)
    d = data_ratio * budget / task.units_per_sample
    return max(1, math.floor(d) if rounding == "floor" else math.ceil(d))


def _train_config(spec: RunSpec) -> TrainConfig:
    return TrainConfig(**{**spec.train, "betas": tuple(spec.train.get("betas", (0.9, 0.999)))})


def run_schedule(spec: RunSpec) -> dict[str, int]:
    """The run's training samples and steps (``n_train_samples``, ``base_steps``, ``max_steps``,
    ``warmup_steps``) from its settings alone, without data or model."""
    task = make_task(spec.task, **spec.task_options)
    config = _train_config(spec)
    n = n_train_samples(task, spec.budget, spec.data_ratio, config.rounding)
    base, max_steps, warmup = schedule(n, config)
    return {"n_train_samples": n, "base_steps": base, "max_steps": max_steps, "warmup_steps": warmup}


def capture_columns(model: torch.nn.Module, data: TaskData, options: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The flat metric columns of ``nil.capture.interaction_report`` on the fixed capture sample."""
    try:
        from .capture import interaction_report
    except ImportError as e:
        raise NilError(
            "capture was requested but nil.capture is not available in this installation "
            f"({e}); run with --no-capture or install a nil with the capture module"
        ) from None
    closed = getattr(model, "closed_form_columns", None)
    if callable(closed):  # a model whose AGOPs have closed forms (the bottleneck toy): no probes needed
        return dict(closed(data, device))
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


@dataclass
class PreparedRun:
    """A run ready to train: its spec, task, model options, data and the model built with its seed."""

    spec: RunSpec
    task: Task
    model_kwargs: dict[str, Any]
    n_samples: int
    data: TaskData
    model: nn.Module
    config: TrainConfig
    device: torch.device


def prepare_run(spec: RunSpec | dict[str, Any], device: str | torch.device = "cpu") -> PreparedRun:
    """The run's task data (cached per budget) and its model, built with seed = run seed."""
    if isinstance(spec, dict):
        spec = RunSpec(**spec)
    dev = torch.device(device)
    task = make_task(spec.task, **spec.task_options)
    kw = {**task.model_kwargs(spec.family), **spec.model_options}
    config = _train_config(spec)
    n_samples = n_train_samples(task, spec.budget, spec.data_ratio, config.rounding)
    data = task_data(task, n_samples, dev)
    model = build(spec.family, spec.depth, spec.width, pad=spec.pad_params, seed=spec.seed,
                  init=spec.init, device=dev, **kw)  # type: ignore[arg-type]
    return PreparedRun(spec, task, kw, n_samples, data, model, config, dev)


def finish_run(run: PreparedRun, result: TrainResult) -> dict[str, Any]:
    """The run's row: bookkeeping, losses and schedule, the per-run metrics of the restored best
    model (capture), and provenance."""
    from . import __version__

    spec, dev = run.spec, run.device
    counts = param_count(spec.family, spec.depth, spec.width, **run.model_kwargs)
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
        "n_train_samples": run.n_samples,
        **counts.to_dict(),
        "pad_params": spec.pad_params,
        "pad_ratio": spec.pad_params / spec.budget,
        "budget_error": (counts.total - spec.budget) / spec.budget,
        "width_rule": spec.width_rule,
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "test_loss": result.test_loss,
        "loss_kind": run.data.loss,
        "data_fingerprint": run.data.info.get("fingerprint"),
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
        "protocol": _protocol(run.config, result),
        "pack_size": result.pack_size,
        "cuda_graph": result.cuda_graph,
    }
    row.update(_metric_columns(run))
    row.update({
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "host": platform.node(),
        "config_hash": spec.config_hash(),
        "config_json": json.dumps(spec.config(), sort_keys=True, default=str),
        "nil_version": __version__,
        "torch_version": torch.__version__,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    return row


def _metric_columns(run: PreparedRun) -> dict[str, Any]:
    """The per-run metric hooks, run on the trained model (its restored best state, unstacked):
    capture (when the spec asks for it) and its time. A further optional per-run statistic adds
    its columns here, with its option in ``RunSpec`` so the configuration hash covers it."""
    cols: dict[str, Any] = {}
    seconds = 0.0
    if run.spec.capture is not None:
        t0 = time.perf_counter()
        cols.update(capture_columns(run.model, run.data, run.spec.capture, run.device))
        seconds = time.perf_counter() - t0
    cols["capture_seconds"] = seconds
    return cols


def run_one(
    spec_dict: dict[str, Any], device: str = "cpu", progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Trains and (optionally) captures the run ``spec_dict`` on ``device``; returns its row."""
    run = prepare_run(spec_dict, device)
    result = train(run.model, run.data, run.config, seed=run.spec.seed, progress=progress)
    return finish_run(run, result)


def _protocol(config: TrainConfig, result: Any) -> str:
    """The effective protocol in words (METHOD §7 fix 20)."""
    stop = "stopped early" if result.stopped_early else "full schedule"
    return (f"AdamW lr {config.lr:g} wd {config.weight_decay:g}{' (no decay on norms/embeddings)' if config.no_decay_norm_emb else ''}, "
            f"batch {config.batch_size}, warm-up {result.warmup_steps} + cosine over {result.max_steps} steps "
            f"({config.step_factor:g}x base {result.base_steps}), {stop} at {result.steps}, "
            f"best-val checkpoint (step {result.best_step}), {result.precision}")

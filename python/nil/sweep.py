"""Shape sweeps at a fixed parameter budget (DESIGN §6, METHOD §4): ``nil.sweep(...)``.

For every (budget, depth, seed) the runner solves the width from the closed-form counts, trains
the shape on the task with data budget D = data_ratio·N, captures its interaction metrics
(``nil.capture.interaction_report``) on the fixed capture sample, and appends one row to
``OUT/runs.parquet`` (schema: docs/sweep.md).

Resuming: a run is identified by the hash of its full configuration. Before training, the runner
writes ``OUT/runs/<run_id>/started.json``; when it finishes, ``result.json`` (the row) and
``subsets.npz`` (the stored evaluation indices) are written atomically, then the table is rewritten
atomically with the row appended. Re-running the same command skips every run whose hash is in the
table, re-appends finished runs whose table write was interrupted, and redoes runs that started
but never finished. A table never mixes configurations silently: when OUT already holds runs whose
configuration (everything but the budget, depth, width and seed: task, model, training, capture
and width-solver settings) differs from this call's, the call is refused naming the differences,
unless ``append=True`` (``--append``). More budgets, depths or seeds of the same configuration
extend the sweep without it. Shapes the budget rule refuses (too much pad, no fitting width) are listed in
``OUT/sweep.json`` and skipped.

Scheduling: one worker per visible GPU (worker processes, each pinned to one device), one
in-process worker on the CPU, or Ray tasks with GPU resources (``ray="local"`` or an address). On a
GPU the runs are packed (``nil.pack``): the seeds of a shape train as one batched model, every job
replays its step as a CUDA graph on its own stream, and up to ``runs_per_gpu`` runs train at once;
each run's result is the one it would have alone. ``time_limit`` bounds one call: runs that cannot
finish in time are not started, those still training at the limit are abandoned (redone next
time), and the table stays consistent.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import NilValueError
from .runs_table import RUNS_FILE, append_rows, atomic_write_bytes, atomic_write_json, read_runs

if TYPE_CHECKING:  # torch-dependent modules load on first use, so ``import nil`` stays light
    from .sweep_run import RunSpec
    from .train import TrainConfig

__all__ = ["sweep", "plan_sweep", "SweepPlan", "SweepOutcome", "summarize", "PRESETS", "resolve_devices",
           "train_config"]


@dataclass
class SweepPlan:
    """The runs a sweep consists of, and the shapes the budget rule refused."""

    runs: list[RunSpec]
    skipped: list[dict[str, Any]] = field(default_factory=list)


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise NilValueError(f"seeds must be at least 1, found {seeds}")
        return list(range(seeds))
    return [int(s) for s in seeds]


def plan_sweep(
    family: str,
    task: str,
    budgets: Sequence[int],
    depths: Sequence[int],
    seeds: int | Sequence[int] = 3,
    *,
    data_ratio: float = 20.0,
    task_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    rule: str = "pad",
    width_options: Mapping[str, Any] | None = None,
    train: TrainConfig | Mapping[str, Any] | str = "nil",
    capture: Mapping[str, Any] | None = None,
    init: str | None = None,
) -> SweepPlan:
    """Expands a sweep into its runs, solving each width from the closed-form counts only.

    ``train``: a ``TrainConfig``, a dict of its fields, or a preset name of ``nil.train.PRESETS``."""
    from .models import BudgetError, solve_width
    from .sweep_run import RunSpec
    from .tasks import make_task

    if not budgets or not depths:
        raise NilValueError("a sweep needs at least one budget and one depth")
    if data_ratio <= 0:
        raise NilValueError(f"data_ratio must be positive, found {data_ratio}")
    t = make_task(task, **dict(task_options or {}))
    kw = {**t.model_kwargs(family), **dict(model_options or {})}
    cfg = train_config(train)
    plan = SweepPlan(runs=[])
    for budget in budgets:
        for depth in depths:
            try:
                sol = solve_width(family, int(budget), int(depth), rule, **dict(width_options or {}), **kw)  # type: ignore[arg-type]
            except BudgetError as e:
                plan.skipped.append({"budget": int(budget), "depth": int(depth), "reason": str(e)})
                continue
            for seed in _seed_list(seeds):
                plan.runs.append(RunSpec(
                    family=family, task=task, budget=int(budget), depth=int(depth), width=sol.width,
                    active_params=sol.active_params, pad_params=sol.pad_params, seed=seed,
                    data_ratio=float(data_ratio), task_options=dict(task_options or {}),
                    model_options=dict(model_options or {}), train=cfg.to_dict(),
                    capture=dict(capture) if capture is not None else None, init=init, width_rule=rule,
                ))
    return plan


def train_config(train: TrainConfig | Mapping[str, Any] | str) -> TrainConfig:
    """A ``TrainConfig`` from itself, a dict of its fields, or a preset name."""
    from .train import PRESETS as TRAIN_PRESETS
    from .train import TrainConfig

    if isinstance(train, TrainConfig):
        return train
    if isinstance(train, str):
        if train not in TRAIN_PRESETS:
            raise NilValueError(f"unknown training preset {train!r}; expected one of {sorted(TRAIN_PRESETS)}")
        return TRAIN_PRESETS[train]
    fields = dict(train)
    if "betas" in fields:
        fields["betas"] = tuple(fields["betas"])
    return TrainConfig(**fields)


def resolve_devices(device: str = "auto") -> list[str]:
    """The devices to run workers on: every visible GPU for ``auto``/``cuda``, else the one given."""
    import torch

    if device in ("auto", "cuda"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n:
            return [f"cuda:{i}" for i in range(n)]
        if device == "cuda":
            raise NilValueError("device 'cuda' was requested but no CUDA device is visible")
        return ["cpu"]
    return [device]


# ---------------------------------------------------------------------------------------------
# Recording results


class _Recorder:
    """Writes markers, per-run files and table rows; the only writer of the table."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.table = out / RUNS_FILE

    def run_dir(self, spec: RunSpec) -> Path:
        return self.out / "runs" / spec.run_id

    def started(self, spec: RunSpec, device: str) -> None:
        atomic_write_json(self.run_dir(spec) / "started.json", {
            "config": spec.config(), "config_hash": spec.config_hash(), "device": device,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })

    def finished(self, spec: RunSpec, row: dict[str, Any], subsets: Mapping[str, np.ndarray]) -> None:
        d = self.run_dir(spec)
        buf = _npz_bytes(subsets)
        atomic_write_bytes(d / "subsets.npz", buf)
        atomic_write_json(d / "result.json", row)
        append_rows(self.table, [row])

    def recover(self) -> int:
        """Appends finished runs whose table write was interrupted; returns how many."""
        import json

        done = self.done_hashes()
        rows = []
        for result in sorted((self.out / "runs").glob("*/result.json")):
            row = json.loads(result.read_text())
            if row.get("config_hash") not in done:
                rows.append(row)
        append_rows(self.table, rows)
        return len(rows)

    def done_hashes(self) -> set[str]:
        table = read_runs(self.table)
        return set() if table.empty else set(table["config_hash"].astype(str))


@dataclass
class SweepOutcome:
    """What one call of ``sweep`` did (recorded in ``OUT/sweep.json`` under "outcome")."""

    planned: int = 0
    already_done: int = 0
    finished: int = 0
    abandoned: int = 0  # started, then given up at the time limit (redone by the next call)
    not_started: int = 0  # left for the next call by the time limit
    time_limit: float | None = None
    time_limit_reached: bool = False
    seconds: float = 0.0
    mode: str = ""
    runs_per_gpu: int | None = None
    max_concurrent: int = 0
    graphed_jobs: int = 0
    graph_failures: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every planned run is in the table."""
        return self.already_done + self.finished == self.planned

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "complete": self.complete}


_clock = time.time  # the clock of the time limit (tests replace it)


class _DeadlineReached(Exception):
    """Raised from a run's progress callback when the sweep's time limit has passed."""


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **dict(arrays))  # type: ignore[arg-type]
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Workers


def _execute(spec_dict: dict[str, Any], device: str, progress: Callable[[int, int], None] | None,
             threads: int | None, deadline: float | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Runs one spec (in this process) and returns its row and stored subsets; raises
    ``_DeadlineReached`` if the time limit passes while it trains."""
    import torch

    from .sweep_run import finish_run, prepare_run
    from .train import train

    def step(s: int, t: int) -> None:
        if deadline is not None and _clock() >= deadline:
            raise _DeadlineReached
        if progress is not None:
            progress(s, t)

    with _cpu_threads(device, threads):
        run = prepare_run(spec_dict, device)
        result = train(run.model, run.data, run.config, seed=run.spec.seed, progress=step)
        return finish_run(run, result), run.data.stored_indices()


class _cpu_threads:
    """Sets torch's thread count for CPU work and restores it afterwards."""

    def __init__(self, device: str, threads: int | None) -> None:
        self.apply = threads is not None and device == "cpu"
        self.threads = threads

    def __enter__(self) -> None:
        import torch

        self.old = torch.get_num_threads()
        if self.apply and self.threads is not None:
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.old)


_WORKER_DEVICE: str = "cpu"
_WORKER_EVENTS: Any = None


def _init_worker(devices: Any, events: Any) -> None:
    global _WORKER_DEVICE, _WORKER_EVENTS
    _WORKER_DEVICE = devices.get()
    _WORKER_EVENTS = events
    if _WORKER_DEVICE.startswith("cuda"):
        import torch

        torch.cuda.set_device(_WORKER_DEVICE)


def _worker_run(spec_dict: dict[str, Any], run_id: str, threads: int | None,
                deadline: float | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """One run in a worker process; None when the time limit stopped it (or came before it)."""
    events = _WORKER_EVENTS

    def progress(step: int, total: int) -> None:
        if events is not None:
            events.put(("step", run_id, step, total))

    if deadline is not None and _clock() >= deadline:
        return None
    if events is not None:
        events.put(("start", run_id, _WORKER_DEVICE, 0))
    try:
        return _execute(spec_dict, _WORKER_DEVICE, progress, threads, deadline)
    except _DeadlineReached:
        if events is not None:
            events.put(("drop", run_id, 0, 0))
        return None


class _Progress:
    """Overall and per-run progress bars (rich), one line per finished run on stderr
    (``enabled="lines"``, for logs), or nothing."""

    def __init__(self, enabled: bool | str, total: int) -> None:
        self.lines = enabled == "lines"
        self.enabled = enabled is True and total > 0
        self.total, self.done = total, 0
        self.bars: dict[str, Any] = {}
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self.overall = self.p.add_task("sweep: runs", total=total)
            self.p.start()

    def start(self, run_id: str, label: str) -> None:
        if self.enabled and run_id not in self.bars:
            self.bars[run_id] = self.p.add_task(f"  {label}", total=None)

    def step(self, run_id: str, step: int, total: int) -> None:
        if self.enabled and run_id in self.bars:
            self.p.update(self.bars[run_id], completed=step, total=total)

    def finish(self, run_id: str, row: Mapping[str, Any] | None = None) -> None:
        self.done += 1
        if self.enabled:
            self.drop(run_id)
            self.p.advance(self.overall)
        elif self.lines and row is not None:
            import sys

            print(f"[{self.done}/{self.total}] N={row['budget']:,} depth {row['depth']} width {row['width']} "
                  f"seed {row['seed']}: test loss {row['test_loss']:.4f}, {row['steps']} steps, "
                  f"{row['seconds']:.0f} s (pack {row.get('pack_size', 1)}), {time.strftime('%H:%M:%S')}",
                  file=sys.stderr, flush=True)

    def drop(self, run_id: str) -> None:
        if self.enabled and run_id in self.bars:
            self.p.remove_task(self.bars.pop(run_id))

    def close(self) -> None:
        if self.enabled:
            self.p.stop()


def _label(spec: RunSpec, device: str) -> str:
    return f"N={spec.budget:,} depth {spec.depth} width {spec.width} seed {spec.seed} [{device}]"


def _run_local(todo: list[RunSpec], device: str, rec: _Recorder, bars: _Progress, threads: int | None,
               deadline: float | None, outcome: SweepOutcome) -> None:
    for i, spec in enumerate(todo):
        if deadline is not None and _clock() >= deadline:
            outcome.not_started += len(todo) - i
            outcome.time_limit_reached = True
            return
        rec.started(spec, device)
        bars.start(spec.run_id, _label(spec, device))
        def step(s: int, t: int, run_id: str = spec.run_id) -> None:
            bars.step(run_id, s, t)

        try:
            row, subsets = _execute(spec.config(), device, step, threads, deadline)
        except _DeadlineReached:
            bars.drop(spec.run_id)
            outcome.abandoned += 1
            outcome.not_started += len(todo) - i - 1
            outcome.time_limit_reached = True
            return
        rec.finished(spec, row, subsets)
        bars.finish(spec.run_id, row)
        outcome.finished += 1


class _Pump:
    """Forwards worker events (start, progress, finished rows) to the recorder and the bars from a
    thread of the driver, the only writer of the table."""

    def __init__(self, events: Any, by_id: dict[str, RunSpec], rec: _Recorder, bars: _Progress,
                 outcome: SweepOutcome) -> None:
        self.events, self.by_id, self.rec, self.bars, self.outcome = events, by_id, rec, bars, outcome
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                kind, run_id, a, b = self.events.get(timeout=0.2)
            except (queue.Empty, EOFError, OSError):
                if self.stop.is_set():
                    return
                continue
            self.handle(kind, run_id, a, b)

    def handle(self, kind: str, run_id: str, a: Any, b: Any) -> None:
        if kind == "start":
            self.rec.started(self.by_id[run_id], str(a))
            self.bars.start(run_id, _label(self.by_id[run_id], str(a)))
        elif kind == "step":
            self.bars.step(run_id, int(a), int(b))
        elif kind == "drop":
            self.bars.drop(run_id)
        elif kind == "done":
            self.rec.finished(self.by_id[run_id], a, b)
            self.bars.finish(run_id, a)
            self.outcome.finished += 1

    def close(self) -> None:
        """Handles every event still queued, then stops."""
        self.stop.set()
        self.thread.join()


def _run_pool(todo: list[RunSpec], devices: list[str], rec: _Recorder, bars: _Progress, threads: int | None,
              deadline: float | None = None, outcome: SweepOutcome | None = None) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    outcome = outcome if outcome is not None else SweepOutcome()
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    device_q, events = manager.Queue(), manager.Queue()
    for d in devices:
        device_q.put(d)
    pump = _Pump(events, {s.run_id: s for s in todo}, rec, bars, outcome)
    try:
        with ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_init_worker, initargs=(device_q, events)) as pool:
            pending = {pool.submit(_worker_run, s.config(), s.run_id, threads, deadline): s for s in todo}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    spec = pending.pop(fut)
                    result = fut.result()
                    if result is None:
                        outcome.not_started += 1  # abandoned or never begun: redone by the next call
                        outcome.time_limit_reached = True
                        continue
                    row, subsets = result
                    rec.finished(spec, row, subsets)
                    bars.finish(spec.run_id, row)
                    outcome.finished += 1
    finally:
        pump.close()
        manager.shutdown()


# ---------------------------------------------------------------------------------------------
# Packed runs (nil.pack): several runs per device, the seeds of a shape as one batched model


@dataclass
class PackOptions:
    """How runs are packed on a device (see ``sweep``)."""

    runs_per_gpu: int | None = None
    cuda_graphs: bool | None = None
    memory_fraction: float = 0.85
    threads: int | None = 1


def _pack_groups(todo: Sequence[RunSpec], max_size: int | None) -> list[list[RunSpec]]:
    """Runs that differ only in their seed, in plan order, in groups of at most ``max_size``."""
    groups: dict[str, list[RunSpec]] = {}
    for spec in todo:
        key = json.dumps({k: v for k, v in spec.config().items() if k != "seed"}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(spec)
    out: list[list[RunSpec]] = []
    for g in groups.values():
        step = max_size or len(g)
        out.extend(g[i : i + step] for i in range(0, len(g), step))
    return out


def _pack_device(groups: Iterable[list[RunSpec]], device: str, opts: PackOptions, deadline: float | None,
                 on_start: Callable[[RunSpec], None], on_step: Callable[[RunSpec, int, int], None],
                 on_done: Callable[[RunSpec, dict[str, Any], dict[str, np.ndarray]], None],
                 on_abandon: Callable[[RunSpec], None]) -> Any:
    """Trains ``groups`` packed on one device in this process; returns the scheduler's stats."""
    from .pack import PackMember, PackRequest, PackScheduler
    from .sweep_run import PreparedRun, finish_run, prepare_run, run_schedule

    prepared: dict[str, PreparedRun] = {}

    def build(specs: list[RunSpec]) -> list[PackMember]:
        members = []
        for spec in specs:
            run = prepare_run(spec, device)
            prepared[spec.run_id] = run
            members.append(PackMember(run.model, run.data, run.config, spec.seed, progress=stepper(spec)))
        return members

    def stepper(spec: RunSpec) -> Callable[[int, int], None]:
        return lambda s, t: on_step(spec, s, t)

    def requests() -> Iterator[PackRequest]:
        for g in groups:
            s0 = g[0]
            yield PackRequest(items=list(g), build=partial(build, list(g)),
                              shape=(s0.budget, s0.depth, s0.width, len(g)), steps=run_schedule(s0)["max_steps"])

    def done(spec: RunSpec, member: Any, result: Any) -> None:
        run = prepared.pop(spec.run_id)
        on_done(spec, finish_run(run, result), run.data.stored_indices())

    def abandon(spec: RunSpec) -> None:
        prepared.pop(spec.run_id, None)
        on_abandon(spec)

    sched = PackScheduler(device, max_runs=opts.runs_per_gpu, memory_fraction=opts.memory_fraction,
                          cuda_graphs=opts.cuda_graphs, deadline=deadline)
    with _cpu_threads(device, opts.threads):
        return sched.run(requests(), on_start=on_start, on_done=done, on_abandon=abandon)


def _record_stats(outcome: SweepOutcome, stats: Any) -> None:
    outcome.max_concurrent = max(outcome.max_concurrent, stats.max_concurrent)
    outcome.graphed_jobs += stats.graphed_jobs
    outcome.graph_failures.extend(stats.graph_failures)
    outcome.time_limit_reached |= stats.deadline_reached
    outcome.abandoned += stats.abandoned
    outcome.not_started += stats.not_started


def _run_packed(todo: list[RunSpec], device: str, rec: _Recorder, bars: _Progress, opts: PackOptions,
                deadline: float | None, outcome: SweepOutcome) -> None:
    def done(spec: RunSpec, row: dict[str, Any], subsets: dict[str, np.ndarray]) -> None:
        rec.finished(spec, row, subsets)
        bars.finish(spec.run_id, row)
        outcome.finished += 1

    def start(spec: RunSpec) -> None:
        rec.started(spec, device)
        bars.start(spec.run_id, _label(spec, device))

    stats = _pack_device(_pack_groups(todo, opts.runs_per_gpu), device, opts, deadline, start,
                         lambda spec, s, t: bars.step(spec.run_id, s, t), done, lambda spec: bars.drop(spec.run_id))
    _record_stats(outcome, stats)


def _pack_worker(device: str, groups: Any, events: Any, opts: PackOptions, deadline: float | None) -> Any:
    """A worker process: packs groups pulled from the shared queue on its device; rows go back as events."""
    from .sweep_run import RunSpec

    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(device)

    def pull() -> Iterator[list[RunSpec]]:
        while True:
            try:
                g = groups.get_nowait()
            except (queue.Empty, EOFError, OSError):
                return
            yield [RunSpec(**d) for d in g]

    return _pack_device(
        pull(), device, opts, deadline,
        on_start=lambda spec: events.put(("start", spec.run_id, device, 0)),
        on_step=lambda spec, s, t: events.put(("step", spec.run_id, s, t)),
        on_done=lambda spec, row, subsets: events.put(("done", spec.run_id, row, subsets)),
        on_abandon=lambda spec: events.put(("drop", spec.run_id, 0, 0)),
    )


def _run_packed_pool(todo: list[RunSpec], devices: list[str], rec: _Recorder, bars: _Progress, opts: PackOptions,
                     deadline: float | None, outcome: SweepOutcome) -> None:
    """One packing worker process per device, pulling groups of runs from one shared queue."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    groups, events = manager.Queue(), manager.Queue()
    for g in _pack_groups(todo, opts.runs_per_gpu):
        groups.put([s.config() for s in g])
    pump = _Pump(events, {s.run_id: s for s in todo}, rec, bars, outcome)
    try:
        with ProcessPoolExecutor(len(devices), mp_context=ctx) as pool:
            futures = [pool.submit(_pack_worker, d, groups, events, opts, deadline) for d in devices]
            stats = [f.result() for f in futures]
    finally:
        pump.close()
        manager.shutdown()
    for st in stats:
        _record_stats(outcome, st)


def _ray_task(spec_dict: dict[str, Any], use_gpu: bool, threads: int | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    return _execute(spec_dict, "cuda:0" if use_gpu else "cpu", None, threads)


def _run_ray(todo: list[RunSpec], address: str, rec: _Recorder, bars: _Progress, threads: int | None) -> None:
    try:
        import ray
    except ImportError:
        raise NilValueError("--ray needs the ray package: pip install 'ray[default]'") from None

    package_root = str(Path(__file__).resolve().parents[1])
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}}
    started_here = not ray.is_initialized()
    local: dict[str, Any] = {"include_dashboard": False} if address == "local" else {}
    ray.init(address=None if address == "local" else address, runtime_env=env, ignore_reinit_error=True,
             log_to_driver=False, **local)
    try:
        _submit_ray(ray, todo, address, rec, bars, threads)
    finally:
        if started_here:
            ray.shutdown()


def _submit_ray(ray: Any, todo: list[RunSpec], address: str, rec: _Recorder, bars: _Progress, threads: int | None) -> None:
    import torch

    use_gpu = bool(ray.cluster_resources().get("GPU", 0)) and (address != "local" or torch.cuda.is_available())
    remote = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=1)(_ray_task)
    refs = {}
    for spec in todo:
        rec.started(spec, "ray")
        bars.start(spec.run_id, _label(spec, "ray"))
        refs[remote.remote(spec.config(), use_gpu, threads)] = spec
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        for ref in done:
            spec = refs.pop(ref)
            row, subsets = ray.get(ref)
            rec.finished(spec, row, subsets)
            bars.finish(spec.run_id, row)


# ---------------------------------------------------------------------------------------------
# The public entry point


def sweep(
    family: str,
    task: str,
    budgets: Sequence[int],
    depths: Sequence[int],
    seeds: int | Sequence[int] = 3,
    *,
    out: str | os.PathLike[str],
    data_ratio: float = 20.0,
    task_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    rule: str = "pad",
    width_options: Mapping[str, Any] | None = None,
    train: TrainConfig | Mapping[str, Any] | str = "nil",
    capture: bool | Mapping[str, Any] = True,
    init: str | None = None,
    device: str = "auto",
    ray: str | None = None,
    threads: int | None = 1,
    progress: bool | str = True,
    runs_per_gpu: int | None = None,
    cuda_graphs: bool | None = None,
    pack_memory: float = 0.85,
    time_limit: float | None = None,
    append: bool = False,
) -> Any:
    """Runs (or resumes) a shape sweep and returns the full runs table as a pandas DataFrame
    (``table.attrs["outcome"]``: what this call did, as in ``OUT/sweep.json``).

    ``capture``: True for ``interaction_report``'s defaults, a dict of its keyword arguments
    (plus ``batch_size``), or False. ``threads``: torch threads of a CPU worker (1 suits small
    models and shared machines). ``progress``: bars, ``"lines"`` (one line per finished run on
    stderr) or False. ``runs_per_gpu``: runs training at once on each device, packed
    (``nil.pack``); None: packed on a GPU (as many as memory admits, at most
    ``nil.pack.AUTO_MAX_RUNS``), one at a time on the CPU; 1: one at a time with the plain
    trainer. ``cuda_graphs``: replay packed steps as CUDA graphs (default on); ``pack_memory``:
    the share of GPU memory packed jobs may fill. ``time_limit``: seconds this call may train;
    runs that cannot finish are not started, runs still training at the limit are abandoned and
    redone by the next call. ``append``: add runs of another configuration to a table that holds
    runs of a different one (refused otherwise). See the module docstring for resuming and
    scheduling."""
    t_start, t_wall = _clock(), time.perf_counter()
    if time_limit is not None and time_limit <= 0:
        raise NilValueError(f"time_limit must be positive seconds, found {time_limit}")
    if runs_per_gpu is not None and runs_per_gpu < 1:
        raise NilValueError(f"runs_per_gpu must be at least 1, found {runs_per_gpu}")
    if ray is not None and (time_limit is not None or (runs_per_gpu or 1) > 1):
        raise NilValueError("--ray schedules one run per Ray task: --time-limit and --runs-per-gpu > 1 need a local device")
    cap = None if capture is False else ({} if capture is True else dict(capture))
    plan = plan_sweep(family, task, budgets, depths, seeds, data_ratio=data_ratio, task_options=task_options,
                      model_options=model_options, rule=rule, width_options=width_options, train=train,
                      capture=cap, init=init)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rec = _Recorder(out_dir)
    recovered = rec.recover()
    configuration = _configuration(plan, rule, width_options)
    if not append:
        _check_same_configuration(out_dir, rec, configuration)
    done = rec.done_hashes()
    todo = [s for s in plan.runs if s.config_hash() not in done]
    deadline = t_start + time_limit if time_limit is not None else None
    outcome = SweepOutcome(planned=len(plan.runs), already_done=len(plan.runs) - len(todo), time_limit=time_limit,
                           runs_per_gpu=runs_per_gpu)
    record = {
        "family": family, "task": task, "budgets": list(budgets), "depths": list(depths),
        "seeds": _seed_list(seeds), "data_ratio": data_ratio, "task_options": dict(task_options or {}),
        "model_options": dict(model_options or {}), "rule": rule, "width_options": dict(width_options or {}),
        "capture": cap, "configuration": configuration, "runs": len(plan.runs), "already_done": outcome.already_done,
        "recovered_rows": recovered, "skipped_shapes": plan.skipped,
    }
    atomic_write_json(out_dir / "sweep.json", record)
    bars = _Progress(progress, len(todo))
    try:
        if not todo:
            outcome.mode = "nothing to do"
        elif ray is not None:
            outcome.mode = "ray"
            _run_ray(todo, ray, rec, bars, threads)
            outcome.finished = len(todo)
        else:
            devices = resolve_devices(device)
            cuda = devices[0].startswith("cuda")
            packed = runs_per_gpu is not None and runs_per_gpu > 1 or (runs_per_gpu is None and cuda)
            opts = PackOptions(runs_per_gpu=runs_per_gpu, cuda_graphs=cuda_graphs, memory_fraction=pack_memory,
                               threads=threads)
            outcome.mode = f"{'packed' if packed else 'one at a time'} on {len(devices)} device(s)"
            if packed and len(devices) == 1:
                _run_packed(todo, devices[0], rec, bars, opts, deadline, outcome)
            elif packed:
                _run_packed_pool(todo, devices, rec, bars, opts, deadline, outcome)
            elif len(devices) == 1 or len(todo) <= 1:
                _run_local(todo, devices[0], rec, bars, threads, deadline, outcome)
            else:
                _run_pool(todo, devices, rec, bars, threads, deadline, outcome)
    finally:
        bars.close()
        outcome.seconds = time.perf_counter() - t_wall
        atomic_write_json(out_dir / "sweep.json", {**record, "outcome": outcome.to_dict()})
    table = read_runs(rec.table)
    table.attrs["outcome"] = outcome.to_dict()
    return table


#: RunSpec fields that place a run in the sweep's grid; every other field is its configuration.
_GRID_KEYS = ("budget", "depth", "width", "active_params", "pad_params", "seed")


def _common(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's configuration without its place in the grid, as plain JSON data."""
    out: dict[str, Any] = json.loads(json.dumps({k: v for k, v in config.items() if k not in _GRID_KEYS},
                                                sort_keys=True, default=str))
    return out


def _configuration(plan: SweepPlan, rule: str, width_options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The configuration every run of ``plan`` shares, plus the width solver's options (they choose
    the widths, so two settings put different shapes at one budget and depth); None without runs."""
    if not plan.runs:
        return None
    return {**_common(plan.runs[0].config()), "width_rule": rule,
            "width_options": json.loads(json.dumps(dict(width_options or {}), sort_keys=True))}


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _differences(stored: Mapping[str, Any], given: Mapping[str, Any], keys: Iterable[str] | None = None) -> list[str]:
    a, b = _flat(stored), _flat(given)
    names = sorted(set(a) | set(b)) if keys is None else sorted(keys)
    return [f"{k} = {b.get(k, '(unset)')!r} given, {a.get(k, '(unset)')!r} stored" for k in names
            if a.get(k, "(unset)") != b.get(k, "(unset)")]


def _check_same_configuration(out: Path, rec: _Recorder, given: dict[str, Any] | None) -> None:
    """Refuses (naming every difference) when OUT's table holds runs of another configuration than
    ``given``: the runs' own configurations (config_json), and the width solver's options recorded
    in OUT/sweep.json."""
    table = read_runs(rec.table)
    if given is None or table.empty:
        return
    width_keys = ("width_rule", "width_options")
    run_part = {k: v for k, v in given.items() if k not in width_keys}
    stored_runs: dict[str, dict[str, Any]] = {}
    if "config_json" in table:
        for text in table["config_json"].astype(str):
            try:
                c = _common(json.loads(text))
            except ValueError:
                continue
            c.pop("width_rule", None)
            stored_runs.setdefault(json.dumps(c, sort_keys=True), c)
    run_part.pop("width_rule", None)
    others = [c for c in stored_runs.values() if c != run_part]
    diffs = _differences(others[0], run_part) if others else []
    record = out / "sweep.json"
    if not diffs and record.is_file():
        try:
            old = json.loads(record.read_text()).get("configuration")
        except ValueError:
            old = None
        if isinstance(old, Mapping):
            diffs = _differences(old, given, [k for k in _flat(given) if k.startswith(width_keys)]
                                 + [k for k in _flat(old) if k.startswith(width_keys)])
    if diffs:
        n = len(stored_runs)
        held = f"{len(table)} runs of {'another configuration' if n <= 1 else f'{n} configurations'}"
        raise NilValueError(
            f"{out}: holds {held}; this call's differs: {'; '.join(diffs[:8])}"
            f"{f'; and {len(diffs) - 8} more' if len(diffs) > 8 else ''}. Mixing them in one runs table is "
            "refused: pass --append (append=True) to add these runs anyway, or choose another --out"
        )


def summarize(table: Any, metrics: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Per (budget, depth): width, R_D/W, seeds, mean and standard error of the test loss (and the
    mean of each metric column present), with ``best`` marking the lowest mean test loss of each
    budget."""
    if table is None or len(table) == 0:
        return []
    rows = []
    for (budget, depth), g in table.groupby(["budget", "depth"], sort=True):
        loss = g["test_loss"].astype(float)
        n = int(loss.notna().sum())
        r: dict[str, Any] = {
            "budget": int(budget), "depth": int(depth), "width": int(g["width"].iloc[0]),
            "ratio": float(g["ratio"].iloc[0]), "seeds": n, "test_loss": float(loss.mean()),
            "test_loss_se": float(loss.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
            "val_loss": float(g["val_loss"].astype(float).mean()),
        }
        for m in metrics:
            if m in g:
                r[m] = float(g[m].astype(float).mean())
        rows.append(r)
    for budget in {r["budget"] for r in rows}:
        group = [r for r in rows if r["budget"] == budget and math.isfinite(r["test_loss"])]
        best = min(group, key=lambda r: r["test_loss"]) if group else None
        for r in rows:
            if r["budget"] == budget:
                r["best"] = r is best
    return rows


# A small CPU sweep that shows the whole pipeline on a laptop in a few minutes (``nil sweep
# --preset demo``): teacher–student MLP, 2 budgets × 6 depths × 2 seeds, with capture.
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "family": "mlp",
        "task": "ts-mlp",
        "budgets": [60_000, 150_000],
        "depths": [2, 3, 4, 5, 6, 8],
        "seeds": 2,
        "data_ratio": 20.0,
        "task_options": {"in_dim": 32, "out_dim": 16, "teacher_width": 128, "n_val": 1000, "n_test": 2000,
                         "val_subset": 512, "capture_subset": 256},
        "width_options": {"multiple": 4, "min_width": 8},
        "train": {"lr": 3e-3, "weight_decay": 0.01, "batch_size": 128, "warmup_steps": 50, "step_factor": 1.5,
                  "eval_every": 50, "no_decay_norm_emb": True},
        "capture": {"project": 16, "probes": 8},
        "device": "cpu",
    },
}

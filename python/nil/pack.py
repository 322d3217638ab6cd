"""Packed training: several runs on one device at once, each trained exactly as ``nil.train.train``
would train it alone.

A 1M-parameter model keeps a GPU mostly idle: the time goes to launching hundreds of small kernels
per step from the interpreter. Packing removes that overhead with two levers.

- **Stacking.** Runs of one architecture, one task data and one training configuration (the seeds
  of a shape) train as ONE batched model. Each member is built with its own seed exactly as a single
  run is; the members' parameters are then stacked (``torch.func.stack_module_state``) and the
  forward pass is ``vmap(functional_call)`` over the stack, so one kernel serves every member. Each
  member draws its data order from its own generator (the single run's); the loss is the sum of the
  members' losses, whose gradients do not mix; gradient clipping is per member; one AdamW (fused on
  CUDA) updates the stacked parameters, an elementwise update equal to each member's own.
- **CUDA graphs and streams.** On CUDA every job (a stack, or a single run whose family vmap cannot
  batch, such as the GRU) captures its whole training step (batch gather, forward, backward,
  clipping, AdamW) in a CUDA graph after a few eager warm-up steps and replays it, one launch per
  step, on its own stream, so several jobs run concurrently. If capture fails the job stays eager.

Evaluation, best-state tracking and early stopping are per member (``nil.train.Tracker``, shared
with the plain trainer). At the end each member's best state is copied back into its own module,
and its final losses are computed by the plain trainer's ``final_losses`` on that module, so
capture afterwards sees the ordinary unstacked model.

``PackScheduler`` keeps up to ``max_runs`` runs training on one device, admitting new groups as
others finish while device memory allows. With a deadline it keeps the work in flight finishable:
from each job's measured step cost (its rate times the number of jobs sharing the device) it
predicts when everything running will be done, does not start a run that would push that past the
deadline, drops the runs latest in plan order while the device is overbooked, drops a run that
could not finish even alone, and abandons what is left at the deadline.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import NilValueError
from .tasks import TaskData, generator, loss_count, loss_mean, loss_sum
from .train import (
    TrainConfig,
    TrainResult,
    Tracker,
    _lr_lambda,
    _param_groups,
    _precision_name,
    _schedule,
    _use_bf16,
    check_config,
    evaluate,
    final_losses,
)

__all__ = ["PackMember", "PackRequest", "PackScheduler", "PackStats", "train_packed", "stack_signature",
           "AUTO_MAX_RUNS", "WARMUP_STEPS"]

# Runs a device trains at once when no limit is given (CUDA); memory may admit fewer.
AUTO_MAX_RUNS = 32
# Eager steps before a job captures its step in a CUDA graph (optimizer state, cuBLAS handles and
# the autograd engine initialise lazily; capture needs them settled).
WARMUP_STEPS = 3
_EVENT_EVERY = 8  # steps between the events that tell how far the device has got
_MAX_AHEAD = 128  # steps a job may run ahead of the device (keeps launch queues short and fair)
_clock = time.time  # the clock deadlines are read from (tests replace it)


@dataclass
class PackMember:
    """One run: its model (built with its seed on the device), data, settings and seed."""

    model: nn.Module
    data: TaskData
    config: TrainConfig
    seed: int
    progress: Callable[[int, int], None] | None = None


def stack_signature(member: PackMember) -> tuple[Any, ...]:
    """Members with equal signatures can be stacked: the same module types and simple attributes
    (head_dim, attention kind, ...), parameter and buffer shapes, the same data object and the same
    training configuration."""
    mods = tuple(
        (name, type(m).__qualname__,
         tuple(sorted((k, v) for k, v in vars(m).items()
                      if not k.startswith("_") and k != "training" and isinstance(v, (bool, int, float, str, type(None))))))
        for name, m in member.model.named_modules()
    )
    params = tuple((n, tuple(p.shape), str(p.dtype), p.requires_grad) for n, p in member.model.named_parameters())
    buffers = tuple((n, tuple(b.shape), str(b.dtype)) for n, b in member.model.named_buffers())
    return mods, params, buffers, id(member.data), repr(sorted(member.config.to_dict().items()))


class _StackedBest:
    """Per-member best states of stacked tensors (dim 0 = member), pre-allocated on the device."""

    def __init__(self, live: list[torch.Tensor]) -> None:
        self.live = [t.detach() for t in live]
        self.copy = [t.clone() for t in self.live]

    @torch.no_grad()
    def save(self, k: int) -> None:
        torch._foreach_copy_([c[k] for c in self.copy], [t[k] for t in self.live])

    @torch.no_grad()
    def restore(self, k: int) -> None:
        torch._foreach_copy_([t[k] for t in self.live], [c[k] for c in self.copy])


class _Member:
    """The running state of one member: its data order, evaluation tracker and end."""

    def __init__(self, spec: PackMember, base_steps: int) -> None:
        self.spec = spec
        self.order = generator(spec.seed, 0x5EED)  # the plain trainer's data-order stream
        self.tracker = Tracker(spec.config, base_steps)
        self.active = True
        self.steps = 0
        self.seconds = 0.0


class _Job:
    """Members of one stack trained together; a state machine the scheduler drives step by step."""

    def __init__(self, members: Sequence[PackMember], device: torch.device, *, graphs: bool,
                 stream: Any | None, stacked: bool) -> None:
        first = members[0]
        self.data, self.config, self.device = first.data, first.config, device
        check_config(self.config)
        self.K = len(members)
        self.stacked = stacked
        if self.K > 1 and not stacked:
            raise NilValueError("an unstacked job holds one member")
        self.bf16 = _use_bf16(self.config, device)
        self.n_train = len(self.data.train)
        self.batch, self.base, self.max_steps, self.warmup = _schedule(self.data.n_train_samples, self.n_train,
                                                                       self.config)
        self.members = [_Member(m, self.base) for m in members]
        self.models = [m.model for m in members]
        self.stream = stream
        self.want_graph = graphs and device.type == "cuda"
        self.graph: Any = None
        self.graph_failed: str | None = None
        if stream is not None:  # the models and the data were made on the default stream
            stream.wait_stream(torch.cuda.current_stream(device))
        with self.ctx():
            self._setup()
        self.step = 0
        self.evaluated = 0  # the last step whose evaluation was done
        self.report_every = max(1, min(self.config.eval_every, self.max_steps // 100 or 1))
        self.events: deque[tuple[int, Any]] = deque()
        self.completed = 0
        self.t0 = self.t_segment = time.perf_counter()
        self.segment_rate: float | None = None
        # Device seconds one step costs with the device to itself, estimated as 1 / (n * rate) from
        # a segment in which n jobs shared the device (fair sharing); None until measured.
        self.cost: float | None = None
        self.segments = 0  # evaluations done; the first segment also holds warm-up and graph capture

    # -- construction ---------------------------------------------------------------------------

    def _setup(self) -> None:
        model0 = self.models[0]
        if self.stacked:
            from torch.func import stack_module_state

            params, buffers = stack_module_state(self.models)
            self.params: dict[str, torch.Tensor] = dict(params)
            self.buffers: dict[str, torch.Tensor] = dict(buffers)
            self.skeleton = copy.deepcopy(model0).to("meta")
        else:
            self.params = dict(model0.named_parameters())
            self.buffers = dict(model0.named_buffers())
        names = {id(p): n for n, p in model0.named_parameters()}
        groups = [{"params": [self.params[names[id(p)]] for p in g["params"]], "weight_decay": g["weight_decay"]}
                  for g in _param_groups(model0, self.config)]
        kw: dict[str, Any] = {}
        if self.device.type == "cuda":
            kw["fused"] = True
        # A captured step reads the learning rate from one device tensor that every group shares,
        # filled before each replay; eager steps set the float as LambdaLR does.
        self.lr_tensor: torch.Tensor | None = None
        if self.want_graph:
            kw["capturable"] = True
            self.lr_tensor = torch.tensor(self.config.lr, dtype=torch.float32, device=self.device)
        self.opt = torch.optim.AdamW(groups, lr=self.lr_tensor if self.lr_tensor is not None else self.config.lr,
                                     betas=self.config.betas, **kw)
        if self.lr_tensor is not None:
            for g in self.opt.param_groups:
                g["lr"] = self.lr_tensor
        self.lr_fn = _lr_lambda(self.warmup, self.max_steps, self.config.min_lr_ratio)
        self.trainable = [p for p in self.params.values() if p.requires_grad]
        if self.stacked:
            self.best = _StackedBest([*self.params.values(), *self.buffers.values()])
        else:
            self.best = _StackedBest([t.unsqueeze(0) for t in model0.state_dict(keep_vars=True).values()])
        self.perms = self._draw_perms()
        self.pos = 0
        self.idx = torch.zeros((self.K, self.batch), dtype=torch.long, device=self.device)
        self.running = torch.zeros(self.K, device=self.device)
        for m in self.models:
            m.train()
        if self.stacked:
            self.skeleton.train()

    def _draw_perms(self) -> torch.Tensor:
        return torch.stack([torch.randperm(self.n_train, generator=m.order) for m in self.members]).to(self.device)

    def ctx(self) -> AbstractContextManager[Any]:
        """Runs what follows on the job's stream (CUDA) or as it is (CPU)."""
        return torch.cuda.stream(self.stream) if self.stream is not None else nullcontext()

    # -- the training step ----------------------------------------------------------------------

    def _call(self, p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call

        out: torch.Tensor = functional_call(self.skeleton, (p, b), (x,))
        return out

    def _forward(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Predictions (K, B, ...) for inputs (K, B, ...), or for one input batch every member shares."""
        if not self.stacked:
            pred: torch.Tensor = self.models[0](x if shared else x[0])
            return pred.unsqueeze(0)
        from torch.func import vmap

        with warnings.catch_warnings():  # ops without a batching rule (SDPA on the CPU) run member by member
            warnings.filterwarnings("ignore", message=".*batching rule.*")
            out: torch.Tensor = vmap(self._call, in_dims=(0, 0, None if shared else 0))(self.params, self.buffers, x)
        return out

    def _losses(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        kind = self.data.loss
        if not self.stacked:
            return loss_mean(kind, pred[0], y[0]).unsqueeze(0)
        from torch.func import vmap

        out: torch.Tensor = vmap(lambda p, t: loss_mean(kind, p, t))(pred, y)
        return out

    def _clip(self) -> None:
        max_norm = self.config.grad_clip
        if max_norm is None:
            return
        if not self.stacked:
            torch.nn.utils.clip_grad_norm_(self.trainable, max_norm)
            return
        # torch's clip_grad_norm_ for each member: the norm of the per-tensor norms, coefficient
        # max_norm / (norm + 1e-6) clamped at 1, multiplied into that member's gradients.
        grads = [p.grad for p in self.trainable if p.grad is not None]
        if not grads:
            return
        per_member = [[g[k] for g in grads] for k in range(self.K)]
        norms = torch._foreach_norm([v for vs in per_member for v in vs], 2.0)
        total = torch.linalg.vector_norm(torch.stack(norms).view(self.K, len(grads)), 2.0, dim=1)
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for k in range(self.K):
            torch._foreach_mul_(per_member[k], coef[k])

    def _body(self) -> None:
        """One training step from the index buffer on (what a CUDA graph captures)."""
        x, y = self.data.train.batch(self.idx.view(-1))
        x = x.view(self.K, self.batch, *x.shape[1:])
        y = y.view(self.K, self.batch, *y.shape[1:])
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=not self.want_graph):
            pred = self._forward(x)
        losses = self._losses(pred, y)
        losses.sum().backward()  # type: ignore[no-untyped-call]
        self._clip()
        self.opt.step()
        self.running += losses.detach()

    def _set_lr(self) -> None:
        value = self.config.lr * self.lr_fn(self.step)  # as LambdaLR computes it
        if self.lr_tensor is not None:
            self.lr_tensor.fill_(value)
            return
        for g in self.opt.param_groups:
            g["lr"] = value

    def _capture(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            graph.capture_begin(capture_error_mode="thread_local")
            try:
                self._body()
            finally:
                graph.capture_end()
        except Exception as e:  # unsupported op, driver refusal: keep training eagerly
            self.graph_failed = f"{type(e).__name__}: {e}"
            self.want_graph = False
            self.opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize(self.device)
            warnings.warn(f"nil.pack: CUDA graph capture failed, training this job eagerly ({self.graph_failed})",
                          RuntimeWarning, stacklevel=2)
            return
        self.graph = graph

    def enqueue_step(self) -> None:
        """Issues the next training step (asynchronously on CUDA)."""
        with self.ctx():
            if self.pos + self.batch > self.n_train:
                self.perms = self._draw_perms()
                self.pos = 0
            self.idx.copy_(self.perms[:, self.pos : self.pos + self.batch])
            self.pos += self.batch
            self._set_lr()
            if self.graph is None and self.want_graph and self.step >= WARMUP_STEPS:
                self._capture()
            if self.graph is not None:
                self.graph.replay()
            else:
                self.opt.zero_grad(set_to_none=True)
                self._body()
            self.step += 1
            if self.stream is not None and (self.step % _EVENT_EVERY == 0 or self.at_boundary()):
                ev = torch.cuda.Event()  # type: ignore[no-untyped-call]
                ev.record(self.stream)
                self.events.append((self.step, ev))
        if self.step % self.report_every == 0 or self.step == self.max_steps:
            for m in self.members:
                if m.active and m.spec.progress is not None:
                    m.spec.progress(self.step, self.max_steps)

    # -- scheduling state -----------------------------------------------------------------------

    def at_boundary(self) -> bool:
        """The last issued step is an evaluation step not yet evaluated."""
        s = self.step
        return s > self.evaluated and (s % self.config.eval_every == 0 or s == self.max_steps)

    def ahead(self) -> int:
        """Steps issued but (as far as the device has told) not yet done."""
        while self.events and self.events[0][1].query():
            self.completed = self.events.popleft()[0]
        if self.stream is None:
            self.completed = self.step
        return self.step - self.completed

    def can_issue(self) -> bool:
        """Another step may be issued now."""
        return not self.done and not self.at_boundary() and (self.stream is None or self.ahead() < _MAX_AHEAD)

    def boundary_ready(self) -> bool:
        return self.at_boundary() and self.ahead() == 0

    @property
    def done(self) -> bool:
        return not any(m.active for m in self.members)

    def evaluate_boundary(self) -> None:
        """Validation of every member at the current step; tracking, best states, stops."""
        with self.ctx():
            vals = self._validation()
            sums = self.running.tolist()
            self.running.zero_()
            now = time.perf_counter()
            done_steps = self.step - self.evaluated
            self.segment_rate = done_steps / max(now - self.t_segment, 1e-9)
            self.segments += 1
            self.t_segment = now
            self.evaluated = self.step
            for k, m in enumerate(self.members):
                if not m.active:
                    continue
                save, stop = m.tracker.observe(self.step, sums[k], vals[k])
                if save:
                    self.best.save(k)
                if stop or self.step >= self.max_steps:
                    m.active = False
                    m.steps, m.seconds = self.step, now - self.t0
                    if m.tracker.best_step == 0:  # never improved: the plain trainer keeps the live state
                        self.best.save(k)

    def _validation(self) -> list[float]:
        d = self.data
        if not self.stacked:
            return [evaluate(self.models[0], d.val, d.val_idx, d.loss, self.config.eval_batch_size, self.bf16)]
        from torch.func import vmap

        self.skeleton.eval()
        totals = torch.zeros(self.K, dtype=torch.float64, device=self.device)
        count = 0
        bs = self.config.eval_batch_size
        with torch.no_grad():
            for i in range(0, len(d.val_idx), bs):
                x, y = d.val.batch(d.val_idx[i : i + bs])
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    pred = self._forward(x, shared=True)
                totals += vmap(lambda p: loss_sum(d.loss, p, y)[0])(pred).double()
                count += loss_count(d.loss, y)
        self.skeleton.train()
        return [t / count if count else math.nan for t in totals.tolist()]

    def finish(self) -> list[TrainResult]:
        """Restores each member's best state into its own module and evaluates it as the plain
        trainer does at its end."""
        results = []
        with self.ctx():
            for k, m in enumerate(self.members):
                self.best.restore(k)
                if self.stacked:
                    with torch.no_grad():
                        model = self.models[k]
                        for name, t in [*model.named_parameters(), *model.named_buffers()]:
                            src = self.params[name] if name in self.params else self.buffers[name]
                            t.copy_(src[k])
                for p in self.models[k].parameters():  # the last step's gradients (a graph's memory)
                    p.grad = None
                tr, va, te = final_losses(self.models[k], self.data, self.config, self.bf16)
                tk = m.tracker
                results.append(TrainResult(
                    train_loss=tr, val_loss=va, test_loss=te, steps=m.steps, best_step=tk.best_step,
                    base_steps=self.base, max_steps=self.max_steps, warmup_steps=self.warmup, seconds=m.seconds,
                    samples_seen=m.steps * self.batch, stopped_early=tk.stopped_early, diverged=tk.diverged,
                    precision=_precision_name(self.bf16), history=tk.history, pack_size=self.K,
                    cuda_graph=self.graph is not None,
                ))
        if self.stream is not None:  # later work on the default stream (capture) sees the final state
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
        return results

    def release(self) -> None:
        """Drops the job's device state (stacked tensors, optimizer, graph)."""
        self.graph = None
        for name in ("params", "buffers", "opt", "best", "perms", "idx", "running", "trainable", "skeleton",
                     "lr_tensor"):
            if hasattr(self, name):
                delattr(self, name)


def _job_costs(running: list[_Running]) -> list[float]:
    """The measured step costs of the running, unfinished jobs."""
    return [j.cost for r in running for j in r.jobs if not j.done and j.cost is not None]


def _stackable(members: Sequence[PackMember], device: torch.device) -> bool:
    """Whether vmap can run the members' forward pass (a GRU cannot), tried on two validation samples."""
    if len(members) < 2:
        return False
    from torch.func import functional_call, stack_module_state, vmap

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*batching rule.*")
            params, buffers = stack_module_state([m.model for m in members[:2]])
            skeleton = copy.deepcopy(members[0].model).to("meta")
            x, _ = members[0].data.val.batch(members[0].data.val_idx[:2])
            vmap(lambda p, b: functional_call(skeleton, (p, b), (x,)))(params, buffers)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# The scheduler


@dataclass
class PackRequest:
    """A group of runs that may share one job: its members are built only when it is admitted.

    ``shape``: runs of one shape cost alike (rates and memory are predicted from measured jobs of
    the same shape); ``steps``: the runs' max_steps, for the time prediction."""

    items: list[Any]
    build: Callable[[], list[PackMember]]
    shape: Hashable = None
    steps: int | None = None


@dataclass
class PackStats:
    """What a scheduler run did."""

    finished: int = 0
    abandoned: int = 0
    not_started: int = 0
    max_concurrent: int = 0
    jobs: int = 0
    graphed_jobs: int = 0
    graph_failures: list[str] = field(default_factory=list)
    deadline_reached: bool = False


@dataclass
class _Running:
    request: PackRequest
    jobs: list[_Job]
    members: list[PackMember]
    memory: int = 0


class PackScheduler:
    """Trains requests on one device, several at once.

    ``max_runs``: runs training at once (``None``: ``AUTO_MAX_RUNS`` on CUDA, 1 on the CPU);
    ``memory_fraction``: the share of the device's memory that running jobs may fill (CUDA);
    ``cuda_graphs``: capture each job's step (default: on CUDA); ``stack``: train the members of
    a request as one batched model when vmap can run it; ``deadline``: a ``time.time()`` after
    which nothing runs (unfinished runs are abandoned and reported)."""

    def __init__(self, device: torch.device | str, *, max_runs: int | None = None, memory_fraction: float = 0.85,
                 cuda_graphs: bool | None = None, stack: bool = True, deadline: float | None = None) -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        cuda = self.device.type == "cuda"
        self.max_runs = max_runs if max_runs is not None else (AUTO_MAX_RUNS if cuda else 1)
        if self.max_runs < 1:
            raise NilValueError(f"runs per device must be at least 1, found {self.max_runs}")
        if not 0 < memory_fraction <= 1:
            raise NilValueError(f"memory_fraction must be in (0, 1], found {memory_fraction}")
        self.memory_fraction = memory_fraction
        self.graphs = cuda if cuda_graphs is None else (cuda_graphs and cuda)
        self.stack = stack
        self.deadline = deadline
        self.stats = PackStats()
        self._costs: dict[Hashable, float] = {}  # device seconds per step of a shape's job, last measured
        self._memory: dict[Hashable, int] = {}  # device bytes of a shape's job, measured
        self._streams: list[Any] = []
        self._cached = False  # memory of finished jobs may sit in the allocator's cache

    # -- admission ------------------------------------------------------------------------------

    def _fits(self, req: PackRequest, running: list[_Running]) -> bool:
        n = sum(len(r.request.items) for r in running)
        if not running:
            return True
        if n + len(req.items) > self.max_runs:
            return False
        if self.device.type != "cuda":
            return True
        need = self._memory.get(req.shape, max(self._memory.values(), default=0))
        free, total = torch.cuda.mem_get_info(self.device)
        if free - need <= (1 - self.memory_fraction) * total and self._cached:
            torch.cuda.empty_cache()  # once per finished job, and only when memory is short
            self._cached = False
            free, total = torch.cuda.mem_get_info(self.device)
        return free - need > (1 - self.memory_fraction) * total

    def _hopeless(self, req: PackRequest, running: list[_Running]) -> bool:
        """With a deadline: the measured step costs say the request cannot finish in time, alone or
        after the work already in flight (the device is shared, so its share of time is what counts).
        The cost is its shape's latest, else the mean of the running jobs' (nothing measured: admit)."""
        if self.deadline is None or req.steps is None:
            return False
        costs = _job_costs(running)
        cost = self._costs.get(req.shape, sum(costs) / len(costs) if costs else None)
        if cost is None:
            return False
        work = self._work(running)
        return _clock() + (work or 0.0) + req.steps * cost * len(req.items) > self.deadline

    def _work(self, running: list[_Running]) -> float | None:
        """Device seconds the running jobs still need (unmeasured jobs at their shape's or the mean
        cost); None while nothing is measured."""
        costs = _job_costs(running)
        if not costs:
            return None
        mean = sum(costs) / len(costs)
        total = 0.0
        for r in running:
            for j in r.jobs:
                if not j.done:
                    c = j.cost if j.cost is not None else self._costs.get(r.request.shape, mean)
                    total += (j.max_steps - j.step) * c
        return total

    def _stream(self) -> Any:
        if self.device.type != "cuda":
            return None
        return self._streams.pop() if self._streams else torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]

    def _admit(self, req: PackRequest, on_start: Callable[[Any], None]) -> _Running:
        cuda = self.device.type == "cuda"
        before = (torch.cuda.memory_reserved(self.device), torch.cuda.memory_allocated(self.device)) if cuda else (0, 0)
        members = req.build()
        if len(members) != len(req.items):
            raise NilValueError(f"a pack request built {len(members)} members for {len(req.items)} runs")
        for item in req.items:
            on_start(item)
        groups: list[list[PackMember]] = []
        if self.stack and len(members) > 1 and _stackable(members, self.device):
            sig: dict[Any, list[PackMember]] = {}
            for m in members:
                sig.setdefault(stack_signature(m), []).append(m)
            groups = list(sig.values())
        else:
            groups = [[m] for m in members]
        jobs = [_Job(g, self.device, graphs=self.graphs, stream=self._stream(), stacked=len(g) > 1) for g in groups]
        run = _Running(req, jobs, members)
        if cuda:  # issue the eager warm-up and the capture now, to measure the job's memory (the
            # allocator reserves memory when work is issued, so no synchronisation is needed)
            for job in jobs:
                while job.step <= WARMUP_STEPS and not job.at_boundary():
                    job.enqueue_step()
            reserved = torch.cuda.memory_reserved(self.device) - before[0]
            allocated = torch.cuda.memory_allocated(self.device) - before[1]
            run.memory = max(0, reserved, allocated)
            self._memory[req.shape] = max(run.memory, self._memory.get(req.shape, 0))
        self.stats.jobs += len(jobs)
        return run

    # -- the loop -------------------------------------------------------------------------------

    def run(self, requests: Iterator[PackRequest], *, on_start: Callable[[Any], None],
            on_done: Callable[[Any, PackMember, TrainResult], None],
            on_abandon: Callable[[Any], None] | None = None) -> PackStats:
        """Trains every request; ``on_done(item, member, result)`` gets each run when it ends
        (its module holds the restored best state), ``on_abandon(item)`` each run given up at the
        deadline or not started because it could not finish in time."""
        def abandon(items: Sequence[Any], started: bool) -> None:
            for item in items:
                if on_abandon is not None:
                    on_abandon(item)
            if started:
                self.stats.abandoned += len(items)
            else:
                self.stats.not_started += len(items)

        running: list[_Running] = []
        held: PackRequest | None = None
        exhausted = False
        try:
            while True:
                if self.deadline is not None and _clock() >= self.deadline:
                    self.stats.deadline_reached = True
                    for r in running:
                        abandon(r.request.items, True)
                    running = []
                    if held is not None:
                        abandon(held.items, False)
                    for req in requests:
                        abandon(req.items, False)
                    break
                while True:  # admit what fits
                    if held is None and not exhausted:
                        held = next(requests, None)
                        exhausted = held is None
                    if held is None or not self._fits(held, running):
                        break
                    if self._hopeless(held, running):
                        abandon(held.items, False)
                        held = None
                        continue
                    try:
                        running.append(self._admit(held, on_start))
                    except torch.cuda.OutOfMemoryError:
                        if not running:
                            raise
                        self.max_runs = max(1, sum(len(r.request.items) for r in running))
                        self._cleanup()
                        break
                    held = None
                    self.stats.max_concurrent = max(self.stats.max_concurrent,
                                                    sum(len(r.request.items) for r in running))
                if not running:
                    if held is None and exhausted:
                        break
                    continue
                self._advance(running)
                for r in list(running):
                    if all(j.done for j in r.jobs):
                        running.remove(r)
                        self._finish(r, on_done)
                    elif self._behind(r):
                        running.remove(r)
                        self._drop(r)
                        abandon(r.request.items, True)
                for r in self._overbooked(running):
                    running.remove(r)
                    self._drop(r)
                    abandon(r.request.items, True)
        finally:
            for r in running:
                self._drop(r)
        return self.stats

    def _advance(self, running: list[_Running]) -> None:
        """Issues steps round-robin (each job up to its next evaluation), evaluates jobs whose
        evaluation step the device has reached, and waits briefly when nothing can move."""
        jobs = [j for r in running for j in r.jobs if not j.done]
        moved = False
        for _ in range(_EVENT_EVERY):
            issued = False
            for j in jobs:
                if j.can_issue():
                    j.enqueue_step()
                    issued = True
            moved |= issued
            if not issued:
                break
        for j in jobs:
            if j.boundary_ready():
                j.evaluate_boundary()
                if j.segment_rate and j.segments >= 2:  # the first segment's rate includes the
                    # warm-up, the graph capture and the admission of later jobs: it overstates cost
                    j.cost = 1.0 / (len(jobs) * j.segment_rate)
                    self._costs[self._shape_of(j, running)] = j.cost
                moved = True
        if not moved:
            time.sleep(0.0005)

    @staticmethod
    def _shape_of(job: _Job, running: list[_Running]) -> Hashable:
        for r in running:
            if job in r.jobs:
                return r.request.shape
        return None

    def _overbooked(self, running: list[_Running]) -> list[_Running]:
        """With a deadline: the requests latest in plan order whose removal lets the rest of the
        work in flight finish in time (all of it shared, so shedding work speeds up the rest)."""
        if self.deadline is None:
            return []
        kept = list(running)
        while len(kept) > 1:
            work = self._work(kept)
            if work is None or _clock() + work <= self.deadline:
                break
            kept.pop()
        return running[len(kept):]

    def _behind(self, r: _Running) -> bool:
        """With a deadline: a job of the request could not finish in time even with the device to
        itself (its measured cost, not its crowded rate: a crowded job speeds up as others end)."""
        if self.deadline is None:
            return False
        now = _clock()
        return any(not j.done and j.cost is not None and now + (j.max_steps - j.step) * j.cost > self.deadline
                   for j in r.jobs)

    def _finish(self, r: _Running, on_done: Callable[[Any, PackMember, TrainResult], None]) -> None:
        results: dict[int, TrainResult] = {}
        for job in r.jobs:
            if job.graph is not None:
                self.stats.graphed_jobs += 1
            if job.graph_failed:
                self.stats.graph_failures.append(job.graph_failed)
            for m, res in zip(job.members, job.finish()):
                results[id(m.spec)] = res
            self._release(job)
        for item, member in zip(r.request.items, r.members):
            on_done(item, member, results[id(member)])
            self.stats.finished += 1

    def _drop(self, r: _Running) -> None:
        for job in r.jobs:
            if job.stream is not None:
                job.stream.synchronize()
            self._release(job)

    def _release(self, job: _Job) -> None:
        stream = job.stream
        job.release()
        if stream is not None:
            self._streams.append(stream)
        self._cached = True

    def _cleanup(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def train_packed(members: Sequence[PackMember], *, max_runs: int | None = None, cuda_graphs: bool | None = None,
                 stack: bool = True, memory_fraction: float = 0.85) -> list[TrainResult]:
    """Trains every member as ``nil.train.train(member.model, member.data, member.config,
    seed=member.seed)`` would, several at once; returns their results in order and leaves each
    model holding its restored best state. Members with equal ``stack_signature`` (the seeds of
    one shape on one data) are stacked into one batched model; all run on the device of their data."""
    if not members:
        return []
    device = members[0].data.val_idx.device
    sched = PackScheduler(device, max_runs=max_runs if max_runs is not None else len(members),
                          cuda_graphs=cuda_graphs, stack=stack, memory_fraction=memory_fraction)
    groups: dict[Any, list[int]] = {}
    for i, m in enumerate(members):
        groups.setdefault(stack_signature(m) if stack else i, []).append(i)
    def builder(idx: list[int]) -> Callable[[], list[PackMember]]:
        return lambda: [members[i] for i in idx]

    requests = [PackRequest(items=list(idx), build=builder(idx)) for idx in groups.values()]
    results: dict[int, TrainResult] = {}

    def done(item: Any, member: PackMember, result: TrainResult) -> None:
        results[int(item)] = result

    sched.run(iter(requests), on_start=lambda item: None, on_done=done)
    return [results[i] for i in range(len(members))]

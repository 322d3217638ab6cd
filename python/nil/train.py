"""The trainer of shape sweeps (docs/method.md §4.4 with nil's fixes R8, R9, fix 12–13).

AdamW with linear warm-up and cosine decay; the data budget D = ratio·N has already been turned
into ``data.n_train_samples`` by the task, which sets base_steps = ⌈samples / batch⌉ (at least
``min_base_steps``) and max_steps = ⌈step_factor · base_steps⌉. Every ``eval_every`` steps the
loss on the task's FIXED validation subset decides the best checkpoint, which is kept as a copy
on the model's own device (pre-allocated, copied in place; no CPU round trip). At the end the best
state is restored and the train loss (fixed training sample), validation loss (the subset) and the
full test loss are evaluated once. On CUDA the forward pass runs under bfloat16 autocast (losses
and optimizer state stay float32) and attention uses SDPA. Data order and every random draw come
from a generator seeded by ``seed``; the global RNG is never touched.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from .errors import NilValueError
from .tasks import TaskData, generator, loss_mean, loss_sum
from .tasks._data import Split

__all__ = ["TrainConfig", "TrainResult", "Tracker", "train", "evaluate", "final_losses", "schedule", "check_config", "PRESETS"]

Precision = Literal["auto", "bf16", "fp32"]
Rounding = Literal["ceil", "floor"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule and evaluation settings of one run (recorded in every runs-table row)."""

    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 64
    warmup_steps: int = 300
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    step_factor: float = 1.5
    min_base_steps: int = 1
    max_steps: int | None = None
    eval_every: int = 200
    patience: int | None = None
    min_delta: float = 1e-6
    no_decay_norm_emb: bool = False
    precision: Precision = "auto"
    eval_batch_size: int = 256
    # How a data budget becomes samples (⌈D/units⌉ or ⌊D/units⌋, applied by the sweep runner) and
    # base steps (⌈samples/batch⌉ or ⌊samples/batch⌋); "floor" is the reference's (docs/method.md §4.4).
    rounding: Rounding = "ceil"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for a runs table. ``rounding`` appears only when it is not the default
        "ceil", so the configuration hashes of runs made before the field existed still match."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        if d["rounding"] == "ceil":
            del d["rounding"]
        return d

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, TrainConfig] = {
    # docs/method.md §4.4, the byte-level NTP sweep: wd on all parameters, 300 warm-up steps, at least 200
    # base steps, 1.5× cosine, evaluation every 200 with patience 10 (never fired), float32.
    # Windows ⌊D/T⌋ and base steps ⌊windows/64⌋ as the reference rounds them.
    "reference-ntp": TrainConfig(lr=3e-4, weight_decay=0.01, batch_size=64, warmup_steps=300, grad_clip=1.0,
                                 step_factor=1.5, min_base_steps=200, eval_every=200, patience=10, precision="fp32",
                                 rounding="floor"),
    # docs/method.md §4.5, TS Transformer multi-budget.
    "reference-ts": TrainConfig(lr=3e-4, weight_decay=1e-4, batch_size=256, warmup_steps=300, grad_clip=1.0,
                                step_factor=1.5, eval_every=200, patience=8, precision="fp32"),
    # docs/method.md §4.6, the 1M MLP sweep (3× base steps, lr 1e-3, no decay).
    "reference-mlp": TrainConfig(lr=1e-3, weight_decay=0.0, batch_size=128, warmup_steps=244, grad_clip=1.0,
                                 step_factor=3.0, eval_every=50, patience=8, precision="fp32"),
    # nil's default: the reference optimiser with norms and embeddings out of weight decay.
    "nil": TrainConfig(no_decay_norm_emb=True),
}


@dataclass
class TrainResult:
    """Outcome of one run: losses of the restored best state and the bookkeeping of the schedule."""

    train_loss: float
    val_loss: float
    test_loss: float
    steps: int
    best_step: int
    base_steps: int
    max_steps: int
    warmup_steps: int
    seconds: float
    samples_seen: int
    stopped_early: bool
    diverged: bool
    precision: str
    history: list[dict[str, float]] = field(default_factory=list)
    pack_size: int = 1  # runs trained as one batched model with this one (nil.pack)
    cuda_graph: bool = False  # whether its training step was replayed as a CUDA graph

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (history included)."""
        return dataclasses.asdict(self)


def _use_bf16(config: TrainConfig, device: torch.device) -> bool:
    if config.precision == "bf16":
        return True
    return config.precision == "auto" and device.type == "cuda"


def _autocast(device: torch.device, bf16: bool) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


@torch.no_grad()
def evaluate(
    model: nn.Module, split: Split, idx: torch.Tensor, kind: Any, batch_size: int = 256, bf16: bool = False
) -> float:
    """Mean loss of ``model`` over the samples ``idx`` of ``split`` (float64 sums, one sync)."""
    was_training = model.training
    model.eval()
    device = idx.device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for i in range(0, len(idx), batch_size):
        x, y = split.batch(idx[i : i + batch_size])
        with _autocast(device, bf16):
            pred = model(x)
        s, c = loss_sum(kind, pred, y)
        total += s.double()
        count += c
    model.train(was_training)
    return float(total.item()) / count if count else math.nan


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """One group, or decay/no-decay groups with norms, embeddings, biases and other vectors undecayed."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not config.no_decay_norm_emb:
        return [{"params": [p for _, p in params], "weight_decay": config.weight_decay}]
    no_decay_ids: set[int] = set()
    for m in model.modules():
        if isinstance(m, (nn.Embedding, nn.LayerNorm, nn.GroupNorm)):
            no_decay_ids.update(id(p) for p in m.parameters(recurse=False))
    no_decay_ids.update(id(p) for n, p in params if n.split(".")[-1] == "pos_emb")  # gpt's position table
    decay = [p for _, p in params if p.dim() >= 2 and id(p) not in no_decay_ids]
    rest = [p for _, p in params if p.dim() < 2 or id(p) in no_decay_ids]
    return [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _lr_lambda(warmup: int, max_steps: int, min_ratio: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, max_steps - warmup)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


class _BestState:
    """The best-validation state as pre-allocated copies on the model's device."""

    def __init__(self, model: nn.Module) -> None:
        self.live = [t for t in model.state_dict(keep_vars=True).values()]
        self.copy = [t.detach().clone() for t in self.live]

    @torch.no_grad()
    def save(self) -> None:
        torch._foreach_copy_(self.copy, [t.detach() for t in self.live])

    @torch.no_grad()
    def restore(self) -> None:
        torch._foreach_copy_([t.detach() for t in self.live], self.copy)


def schedule(n_samples: int, config: TrainConfig) -> tuple[int, int, int]:
    """(base_steps, max_steps, warmup_steps) of a run that trains on ``n_samples`` samples:
    base = max(min_base_steps, ⌈n/batch⌉) (⌊n/batch⌋ with ``rounding="floor"``), max =
    ⌈step_factor·base⌉ unless ``max_steps`` is set, and a warm-up longer than the run shrinks to a
    tenth of it."""
    passes = n_samples // config.batch_size if config.rounding == "floor" else math.ceil(n_samples / config.batch_size)
    base = max(config.min_base_steps, passes)
    max_steps = config.max_steps if config.max_steps is not None else math.ceil(config.step_factor * base)
    warmup = config.warmup_steps if config.warmup_steps < max_steps else max(1, max_steps // 10)
    return base, max_steps, warmup


def _schedule(n_samples: int, n_train: int, config: TrainConfig) -> tuple[int, int, int, int]:
    return (min(config.batch_size, n_train), *schedule(n_samples, config))


def check_config(config: TrainConfig) -> None:
    """Raises a clear error for settings no run can use."""
    if config.batch_size < 1 or config.eval_every < 1:
        raise NilValueError(f"batch_size and eval_every must be positive, found {config.batch_size}, {config.eval_every}")
    if config.rounding not in ("ceil", "floor"):
        raise NilValueError(f"rounding must be 'ceil' or 'floor', found {config.rounding!r}")


class Tracker:
    """The evaluation bookkeeping of one run: history, best validation loss and step, patience.

    ``observe`` is called at every evaluation; it says whether to save the state as the new best
    and whether the run stops (diverged, or early stopping). The plain and the packed trainer
    share it, so a packed member stops, and keeps its best state, exactly where it would alone."""

    def __init__(self, config: TrainConfig, base_steps: int) -> None:
        self.config, self.base = config, base_steps
        self.best_val, self.best_step, self.stale = math.inf, 0, 0
        self.history: list[dict[str, float]] = []
        self.stopped_early = self.diverged = False

    def observe(self, step: int, running_sum: float, val: float) -> tuple[bool, bool]:
        """Records the evaluation at ``step`` (``running_sum``: training-batch losses summed since
        the last one); returns (save as best, stop)."""
        n_since = step - (self.history[-1]["step"] if self.history else 0)
        self.history.append({"step": step, "train_batch_loss": running_sum / n_since, "val_loss": val})
        if not math.isfinite(val):
            self.diverged = True
            return False, True
        save = val < self.best_val - self.config.min_delta
        if save:
            self.best_val, self.best_step, self.stale = val, step, 0
        else:
            self.stale += 1
        patience = self.config.patience
        if patience is not None and step >= self.base and self.stale >= patience:
            self.stopped_early = True
            return save, True
        return save, False


def final_losses(model: nn.Module, data: TaskData, config: TrainConfig, bf16: bool) -> tuple[float, float, float]:
    """Train loss on the fixed training sample, validation loss on the subset and test loss on the
    whole test split, each evaluated once (the end of every run)."""
    device = data.val_idx.device
    train_loss = evaluate(model, data.train, data.train_eval_idx, data.loss, config.eval_batch_size, bf16)
    val_loss = evaluate(model, data.val, data.val_idx, data.loss, config.eval_batch_size, bf16)
    all_test = torch.arange(len(data.test), device=device)
    test_loss = evaluate(model, data.test, all_test, data.loss, config.eval_batch_size, bf16)
    model.eval()
    return train_loss, val_loss, test_loss


def train(
    model: nn.Module,
    data: TaskData,
    config: TrainConfig = TrainConfig(),
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Trains ``model`` (already on the data's device) on ``data`` and returns its losses.

    ``progress(step, max_steps)`` is called every few steps (for a progress bar)."""
    device = data.val_idx.device
    check_config(config)
    bf16 = _use_bf16(config, device)
    n_train = len(data.train)
    batch, base, max_steps, warmup = _schedule(data.n_train_samples, n_train, config)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(_param_groups(model, config), lr=config.lr, betas=config.betas, **fused)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(warmup, max_steps, config.min_lr_ratio))
    order = generator(seed, 0x5EED)
    best = _BestState(model)
    tracker = Tracker(config, base)
    params = [p for p in model.parameters() if p.requires_grad]
    perm = torch.randperm(n_train, generator=order).to(device)
    pos = 0
    running = torch.zeros((), device=device)
    t0 = time.perf_counter()
    model.train()
    step = 0
    report_every = max(1, min(config.eval_every, max_steps // 100 or 1))
    while step < max_steps:
        if pos + batch > n_train:
            perm = torch.randperm(n_train, generator=order).to(device)
            pos = 0
        x, y = data.train.batch(perm[pos : pos + batch])
        pos += batch
        with _autocast(device, bf16):
            pred = model(x)
        loss = loss_mean(data.loss, pred, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        sched.step()
        running += loss.detach()
        step += 1
        if progress is not None and (step % report_every == 0 or step == max_steps):
            progress(step, max_steps)
        if step % config.eval_every == 0 or step == max_steps:
            val = evaluate(model, data.val, data.val_idx, data.loss, config.eval_batch_size, bf16)
            save, stop = tracker.observe(step, float(running.item()), val)
            running.zero_()
            if save:
                best.save()
            if stop:
                break
    seconds = time.perf_counter() - t0
    if tracker.best_step > 0:
        best.restore()
    train_loss, val_loss, test_loss = final_losses(model, data, config, bf16)
    return TrainResult(
        train_loss=train_loss, val_loss=val_loss, test_loss=test_loss, steps=step, best_step=tracker.best_step,
        base_steps=base, max_steps=max_steps, warmup_steps=warmup, seconds=seconds,
        samples_seen=step * batch, stopped_early=tracker.stopped_early, diverged=tracker.diverged,
        precision=_precision_name(bf16), history=tracker.history,
    )


def _precision_name(bf16: bool) -> str:
    return "bf16-autocast" if bf16 else "fp32"

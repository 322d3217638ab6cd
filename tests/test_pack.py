"""Packed training (nil.pack) gives each run the result it has alone, and packed sweeps with a time
limit stop cleanly and resume.

Tolerance. The CPU runs are float32. A member trained alone in a pack (one member, no vmap) runs
the same operations in the same order as ``nil.train.train``, so its losses are compared for
equality. A stacked member's forward pass goes through ``vmap``, which batches the matrix
products over the members: each product then rounds differently at the level of float32's unit
roundoff (6e-8), and a few dozen optimiser steps carry that into the losses at about 1e-7
relative (measured: at most 2.2e-7 on these runs). The tests allow 1e-5 relative, fifty times the
measured spread and far below any difference a wrong batch, seed, learning rate, clipping or
checkpoint would make (those move the losses by 1e-3 or more).
"""

from __future__ import annotations

import math

import pytest
import torch

from nil.models import build
from nil.pack import PackMember, PackScheduler, train_packed
from nil.runs_table import read_runs
from nil.sweep import sweep
from nil.tasks import make_task
from nil.train import TrainConfig, train

RTOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest (conftest)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    for i in range(30):
        (d / f"{i}.py").write_text(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" * (10 + i))
    return str(d)


def _byte_data(corpus):
    task = make_task("bytes", corpus=corpus, seq_len=16, val_fraction=0.2, test_fraction=0.2, val_windows=32,
                     train_eval_windows=32)
    return task.make(200, "cpu"), {"vocab": 256, "seq_len": 16}


def _ts_data():
    task = make_task("ts-mlp", in_dim=8, out_dim=4, teacher_width=16, n_val=64, n_test=128, val_subset=32)
    return task.make(1000, "cpu"), {"in_dim": 8, "out_dim": 4}


CFG = TrainConfig(lr=3e-3, batch_size=16, warmup_steps=5, eval_every=10, max_steps=40)


def _assert_same(alone, packed, exact=False):
    for a, b in zip(alone, packed, strict=True):
        assert (a.steps, a.best_step, a.stopped_early, a.diverged, a.base_steps, a.max_steps, a.warmup_steps,
                a.samples_seen, a.precision) == (b.steps, b.best_step, b.stopped_early, b.diverged, b.base_steps,
                                                 b.max_steps, b.warmup_steps, b.samples_seen, b.precision)
        assert [h["step"] for h in a.history] == [h["step"] for h in b.history]
        pairs = [(a.train_loss, b.train_loss), (a.val_loss, b.val_loss), (a.test_loss, b.test_loss)]
        pairs += [(x[k], y[k]) for x, y in zip(a.history, b.history) for k in ("val_loss", "train_batch_loss")]
        for x, y in pairs:
            if exact:
                assert x == y or (math.isnan(x) and math.isnan(y))
            else:
                assert y == pytest.approx(x, rel=RTOL, nan_ok=True)


@pytest.mark.parametrize("family,depth,width", [("gpt", 2, 16), ("mlp", 3, 16)])
def test_stacked_seeds_match_runs_alone(corpus, family, depth, width):
    data, kw = _byte_data(corpus) if family == "gpt" else _ts_data()
    seeds = [0, 1, 2]
    alone = [train(build(family, depth, width, seed=s, **kw), data, CFG, seed=s) for s in seeds]
    models = [build(family, depth, width, seed=s, **kw) for s in seeds]
    packed = train_packed([PackMember(m, data, CFG, s) for m, s in zip(models, seeds)])
    assert [r.pack_size for r in packed] == [3, 3, 3]
    _assert_same(alone, packed)
    # Each member's module holds its restored best state, as the plain trainer leaves it.
    ref = build(family, depth, width, seed=1, **kw)
    train(ref, data, CFG, seed=1)
    for (n, p), q in zip(ref.named_parameters(), models[1].parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6, msg=n)
    # A member alone in its job runs the plain trainer's operations: identical results.
    one = train_packed([PackMember(build(family, depth, width, seed=0, **kw), data, CFG, 0)])
    _assert_same(alone[:1], one, exact=True)


def test_early_stopping_divergence_and_best_state_are_per_member():
    data, kw = _ts_data()
    # Patience 1 with a demanding min_delta stops the seeds at different evaluations; lr 0.5
    # makes seed 2 diverge (its other settings are those of the others, so it stacks with them).
    cfg = CFG.replace(max_steps=80, patience=1, min_delta=0.02, min_base_steps=1, grad_clip=None)
    seeds = [0, 1, 2, 3]
    alone = [train(build("mlp", 2, 16, seed=s, **kw), data, cfg, seed=s) for s in seeds]
    packed = train_packed([PackMember(build("mlp", 2, 16, seed=s, **kw), data, cfg, s) for s in seeds])
    _assert_same(alone, packed)
    assert len({r.steps for r in alone}) > 1 and any(r.stopped_early for r in alone)


def test_divergent_member_does_not_touch_the_others():
    data, kw = _ts_data()

    def model(seed):  # seed 2 starts with an overflowing weight: its losses are inf/NaN from step 1
        m = build("mlp", 2, 16, seed=seed, **kw)
        if seed == 2:
            with torch.no_grad():
                next(m.parameters()).mul_(1e38)
        return m

    seeds = [0, 1, 2]
    alone = [train(model(s), data, CFG, seed=s) for s in seeds]
    packed = train_packed([PackMember(model(s), data, CFG, s) for s in seeds])
    assert [r.diverged for r in alone] == [False, False, True] and alone[2].best_step == 0
    _assert_same(alone, packed)  # per-member clipping keeps the NaN gradients to their member
    assert all(math.isfinite(r.test_loss) for r in packed[:2])


def test_a_family_vmap_cannot_batch_trains_member_by_member():
    kw = {"in_dim": 1, "out_dim": 4}
    task = make_task("ts-mlp", in_dim=8, out_dim=4, teacher_width=16, n_val=64, n_test=128, val_subset=32)
    data = task.make(400, "cpu")
    cfg = CFG.replace(max_steps=20)
    alone = [train(build("gru", 1, 8, seed=s, **kw), data, cfg, seed=s) for s in (0, 1)]
    packed = train_packed([PackMember(build("gru", 1, 8, seed=s, **kw), data, cfg, s) for s in (0, 1)])
    assert [r.pack_size for r in packed] == [1, 1]
    _assert_same(alone, packed, exact=True)


def test_scheduler_limits_concurrent_runs_and_interleaves_jobs():
    data, kw = _ts_data()
    members = [PackMember(build("mlp", d, 16, seed=0, **kw), data, CFG, 0) for d in (1, 2, 3)]
    alone = [train(build("mlp", d, 16, seed=0, **kw), data, CFG, seed=0) for d in (1, 2, 3)]
    sched = PackScheduler("cpu", max_runs=2)
    from nil.pack import PackRequest

    results = {}
    reqs = [PackRequest(items=[i], build=lambda i=i: [members[i]]) for i in range(3)]
    stats = sched.run(iter(reqs), on_start=lambda item: None,
                      on_done=lambda item, m, r: results.__setitem__(item, r))
    assert stats.max_concurrent == 2 and stats.finished == 3
    _assert_same(alone, [results[i] for i in range(3)], exact=True)


TASK = {"in_dim": 8, "out_dim": 4, "teacher_width": 16, "n_val": 128, "n_test": 256, "val_subset": 64,
        "capture_subset": 32}
FAST = TrainConfig(lr=3e-3, batch_size=64, warmup_steps=5, eval_every=10)


def _sweep(out, **kw):
    args = dict(family="mlp", task="ts-mlp", budgets=[2000, 4000], depths=[1, 2], seeds=2, out=out,
                data_ratio=2.0, task_options=TASK, width_options={"multiple": 2, "min_width": 4}, train=FAST,
                capture=False, device="cpu", progress=False)
    args.update(kw)
    return sweep(**args)


def _compare_tables(a, b):
    a, b = a.set_index("config_hash"), b.set_index("config_hash")
    assert set(a.index) == set(b.index)
    for h in a.index:
        for col in ("train_loss", "val_loss", "test_loss"):
            assert b.loc[h, col] == pytest.approx(a.loc[h, col], rel=RTOL)
        assert a.loc[h, "steps"] == b.loc[h, "steps"] and a.loc[h, "best_step"] == b.loc[h, "best_step"]


def test_packed_sweep_rows_equal_one_at_a_time(tmp_path):
    alone = _sweep(tmp_path / "alone", runs_per_gpu=1)
    packed = _sweep(tmp_path / "packed", runs_per_gpu=4)
    assert set(alone["pack_size"]) == {1} and set(packed["pack_size"]) == {2}  # the two seeds of a shape
    _compare_tables(alone, packed)
    assert packed.attrs["outcome"]["complete"] and packed.attrs["outcome"]["mode"].startswith("packed")
    captured = _sweep(tmp_path / "capture", runs_per_gpu=4, budgets=[2000], depths=[2],
                      capture={"project": 4, "probes": 2})
    assert captured["out_aofe_ratio"].between(0, 1).all()  # capture ran on the unstacked models


class _FakeClock:
    """A clock that advances a fixed amount at every reading: deadlines fall at a fixed point of
    the run, whatever the machine's speed."""

    def __init__(self, tick: float) -> None:
        self.t, self.tick = 1000.0, tick

    def __call__(self) -> float:
        self.t += self.tick
        return self.t


# The fake clock ticks 1 s per reading; a full call reads it about 300 times one run at a time (once
# per step) and about 40 times packed (once per scheduling round): the limits fall mid-sweep.
@pytest.mark.parametrize("runs_per_gpu,limit", [(1, 165), (4, 20)])
def test_time_limit_stops_cleanly_and_the_next_call_completes_the_table(tmp_path, monkeypatch, runs_per_gpu, limit):
    import importlib
    import time

    modules = [importlib.import_module("nil.sweep"), importlib.import_module("nil.pack")]  # nil.sweep is also a function
    clock = _FakeClock(1.0)
    for m in modules:
        monkeypatch.setattr(m, "_clock", clock)
    first = _sweep(tmp_path, runs_per_gpu=runs_per_gpu, time_limit=limit)
    o = first.attrs["outcome"]
    assert o["time_limit_reached"] and not o["complete"] and o["abandoned"] >= 1
    assert 0 < len(first) == o["finished"] < 8 and o["finished"] + o["abandoned"] + o["not_started"] == 8
    assert len(read_runs(tmp_path)) == len(first)  # the stored table is the returned one
    for m in modules:
        monkeypatch.setattr(m, "_clock", time.time)
    final = _sweep(tmp_path, runs_per_gpu=runs_per_gpu)
    assert len(final) == 8 and final.attrs["outcome"]["complete"] and final["config_hash"].is_unique
    kept = final.set_index("config_hash").loc[first["config_hash"], "finished_at"]
    assert list(kept) == list(first["finished_at"])  # runs of the first call were not retrained
    _compare_tables(_sweep(tmp_path / "reference", runs_per_gpu=1), final)


def test_time_limit_with_no_time_left_trains_nothing(tmp_path):
    table = _sweep(tmp_path, runs_per_gpu=2, time_limit=1e-9)
    assert len(table) == 0 and table.attrs["outcome"]["not_started"] == 8


@pytest.mark.slow
def test_packed_worker_processes_match(tmp_path):
    from nil.sweep import PackOptions, SweepOutcome, _Progress, _Recorder, _run_packed_pool, plan_sweep

    plan = plan_sweep("mlp", "ts-mlp", [2000], [1, 2], 2, data_ratio=2.0, task_options=TASK,
                      width_options={"multiple": 2, "min_width": 4}, train=FAST)
    outcome = SweepOutcome()
    _run_packed_pool(plan.runs, ["cpu", "cpu"], _Recorder(tmp_path), _Progress(False, 4), PackOptions(runs_per_gpu=2),
                     None, outcome)
    assert outcome.finished == 4
    pooled = read_runs(tmp_path)
    assert set(pooled["pack_size"]) == {2}
    _compare_tables(_sweep(tmp_path / "alone", budgets=[2000], runs_per_gpu=1), pooled)


def test_cli_plan_reproduces_the_reference_step_counts(capsys, tmp_path):
    import json

    from nil.cli import main

    assert main(["sweep", "--family", "gpt", "--task", "bytes", "--budgets", "0.3M,0.6M,1M,1.3M,1.6M,2M,2.3M,2.7M,3M",
                 "--depths", "1,2,3,4,5,6,8,10,12,16,20,24", "--seeds", "1", "--data-ratio", "60",
                 "--train-preset", "reference-ntp", "--out", str(tmp_path / "unused"), "--plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    steps = {s["budget"]: s["max_steps"] for s in plan["shapes"]}
    windows = {s["budget"]: s["n_train_samples"] for s in plan["shapes"]}
    assert plan["runs"] == 108 and not plan["skipped"]
    assert (steps[300_000], steps[1_000_000], steps[3_000_000]) == (1647, 5493, 16479)  # METHOD §4.4
    assert windows[300_000] == 70_312 and windows[3_000_000] == 703_125
    assert plan["max_steps_total"] == 975_528  # the reference's optimizer steps in all (issue 17)


class _FakeJob:
    def __init__(self, step: int, max_steps: int, cost: float | None) -> None:
        self.step, self.max_steps, self.cost, self.done = step, max_steps, cost, False


def _running(*jobs: _FakeJob, shape: str = "s"):
    from nil.pack import PackRequest, _Running

    return _Running(PackRequest(items=[object()], build=list, shape=shape, steps=jobs[0].max_steps), list(jobs), [])


def test_deadline_predictions_use_step_costs_not_crowded_rates(monkeypatch):
    """The case that abandoned a whole GPU call: 32 runs admitted at once each crawl at 1/32 of the
    device; the crowded rate says none can finish, the costs say the first ones can."""
    import nil.pack as m

    monkeypatch.setattr(m, "_clock", lambda: 0.0)
    sched = m.PackScheduler("cpu", deadline=100.0)
    # 4 jobs sharing the device, each 1,000 steps left at 0.02 device-s per step alone: 80 s in all.
    running = [_running(_FakeJob(0, 1000, 0.02), shape=f"s{i}") for i in range(4)]
    assert sched._work(running) == pytest.approx(80.0)
    assert not any(sched._behind(r) for r in running)  # each alone needs 20 s
    req = m.PackRequest(items=[object()], build=list, shape="new", steps=1000)
    assert not sched._hopeless(req, running)  # 80 s in flight + 20 s at the mean cost: exactly 100 s
    monkeypatch.setattr(m, "_clock", lambda: 1.0)
    assert sched._hopeless(req, running)  # one second later it does not fit
    sched.deadline = 15.0
    assert all(sched._behind(r) for r in running)  # 20 s alone > 15 s left
    sched.deadline = 50.0
    assert sched._overbooked(running) == running[2:]  # the two latest go: 40 s of work is left
    sched.deadline = 500.0
    assert sched._overbooked(running) == []
    unmeasured = [_running(_FakeJob(0, 1000, None))]
    assert sched._work(unmeasured) is None and not sched._hopeless(req, unmeasured)
    sched.deadline = None
    assert not sched._hopeless(req, running) and not sched._behind(running[0])

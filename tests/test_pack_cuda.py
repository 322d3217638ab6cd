"""Packed training on CUDA: graphed, stacked jobs on their own streams give the runs' results alone.

GPU float32 tolerance: cuBLAS picks different kernels for a batched product than for a single one
(and the fused, capturable AdamW reads its learning rate from a tensor), so products round
differently at float32's unit roundoff; over 60 steps that reaches about 1e-6 relative. The tests
allow 1e-4 relative. bf16 autocast is compared loosely (its roundoff is 4e-3 per operation)."""

from __future__ import annotations

import pytest
import torch

from nil.models import build
from nil.pack import PackMember, PackScheduler, PackRequest, train_packed
from nil.tasks import make_task
from nil.train import TrainConfig, train

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def data():
    task = make_task("bytes", seq_len=64, max_bytes=3_000_000, test_windows=64)
    return task.make(4096, "cuda")


KW = {"vocab": 256, "seq_len": 64}
CFG = TrainConfig(batch_size=16, max_steps=60, eval_every=20, warmup_steps=10, precision="fp32")


def _compare(alone, packed, rel):
    for a, b in zip(alone, packed, strict=True):
        assert (a.steps, a.best_step, len(a.history)) == (b.steps, b.best_step, len(b.history))
        for x, y in zip(a.history, b.history):
            assert y["val_loss"] == pytest.approx(x["val_loss"], rel=rel)
        assert b.test_loss == pytest.approx(a.test_loss, rel=rel)


@pytest.mark.parametrize("seeds", [1, 3])
def test_graphed_packed_runs_match_runs_alone_fp32(data, seeds):
    alone = [train(build("gpt", 2, 32, seed=s, device="cuda", **KW), data, CFG, seed=s) for s in range(seeds)]
    packed = train_packed([PackMember(build("gpt", 2, 32, seed=s, device="cuda", **KW), data, CFG, s)
                           for s in range(seeds)])
    assert all(r.cuda_graph for r in packed) and {r.pack_size for r in packed} == {seeds}
    _compare(alone, packed, 1e-4)


def test_concurrent_shapes_on_streams_match_bf16(data):
    cfg = CFG.replace(precision="bf16")
    shapes = [(1, 48), (2, 32), (4, 24)]
    alone = [train(build("gpt", d, w, seed=0, device="cuda", **KW), data, cfg, seed=0) for d, w in shapes]
    sched = PackScheduler("cuda", max_runs=3)
    results = {}
    reqs = [PackRequest(items=[i], shape=shapes[i], build=lambda i=i: [
        PackMember(build("gpt", *shapes[i], seed=0, device="cuda", **KW), data, cfg, 0)]) for i in range(3)]
    stats = sched.run(iter(reqs), on_start=lambda item: None, on_done=lambda item, m, r: results.__setitem__(item, r))
    assert stats.max_concurrent == 3 and stats.graphed_jobs == 3 and not stats.graph_failures
    _compare(alone, [results[i] for i in range(3)], 2e-2)


def test_packed_sweep_on_cuda_writes_the_rows(tmp_path):
    from nil.sweep import sweep

    table = sweep("gpt", "bytes", [60_000], [1, 2], 2, out=tmp_path, data_ratio=2.0,
                  task_options={"seq_len": 64, "max_bytes": 3_000_000, "test_windows": 64},
                  train=CFG.replace(max_steps=None, min_base_steps=1), capture={"project": 8, "probes": 2},
                  device="cuda", progress=False)
    assert len(table) == 4 and set(table["pack_size"]) == {2} and table["cuda_graph"].all()
    assert table.attrs["outcome"]["complete"] and table["out_aofe_ratio"].between(0, 1).all()
    assert torch.cuda.memory_allocated() < 2**30

"""Capture under torch.distributed (gloo, two CPU processes) equals the single-process result,
both by all-reducing the accumulators and by merging the ranks' own shard directories."""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from capture_models import TinyGPT

import nil
from nil.capture import capture_agop
from nil.distributed import all_reduce_capture, rank_dir

pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")
WORLD = 2


def _model() -> TinyGPT:
    torch.manual_seed(0)
    return TinyGPT(vocab=13, ctx=6, d=8, depth=2, heads=2).eval()


def _batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 13, (3, 6), generator=g) for _ in range(4)]


def _rank(rank: int, tmp: str, errors: mp.Queue) -> None:  # type: ignore[type-arg]
    import torch.distributed as dist

    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=WORLD)
        mine = _batches()[rank::WORLD]
        layers = {"blocks.0": 8, "blocks.1": 8}
        with nil.ShardWriter(rank_dir(Path(tmp) / "capture"), layers=layers, dtype="float32") as sink:
            local = capture_agop(_model(), mine, probes="exact", progress=False, sink=sink)
        total = all_reduce_capture(local)
        np.savez(Path(tmp) / f"rank{rank}.npz", **{n: r.matrix for n, r in total.items()},
                 counts=np.array([total[n].count for n in sorted(total)]))
        dist.destroy_process_group()
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def test_ddp_capture_equals_single_process(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, str(tmp_path), errors)) for r in range(WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert errors.empty(), errors.get()
    assert all(p.exitcode == 0 for p in procs)
    single = capture_agop(_model(), _batches(), probes="exact", progress=False)
    for rank in range(WORLD):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert list(got["counts"]) == [single[n].count for n in sorted(single)]
        for name, rec in single.items():
            np.testing.assert_allclose(got[name], rec.matrix, rtol=1e-10, atol=1e-14)
    # The ranks' own capture directories merge to the same answer (rows stored in float32).
    merged = nil.merge(tmp_path / "merged.safetensors", *sorted((tmp_path / "capture").iterdir()))
    for name, rec in single.items():
        assert merged[name].count == rec.count
        np.testing.assert_allclose(merged[name].matrix(), rec.matrix, rtol=1e-5, atol=1e-9)

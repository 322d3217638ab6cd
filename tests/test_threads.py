"""Thread pool: NIL_NUM_THREADS is honoured and forked children (DataLoader workers) never hang."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys

import numpy as np
import pytest

import nil
from nil import _core

REPO_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")


def _child_work(q: mp.Queue) -> None:  # type: ignore[type-arg]
    acc = nil.AgopAccumulator(64)
    acc.update(np.ones((5000, 64), np.float32))
    q.put((acc.count, _core.num_threads()))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_forked_child_runs_single_threaded_without_deadlock():
    # Warm the parent's pool first, as a training script would before starting workers.
    nil.AgopAccumulator(64).update(np.ones((5000, 64), np.float32))
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_work, args=(q,))
    p.start()
    p.join(timeout=60)
    assert not p.is_alive(), "forked child deadlocked"
    count, threads = q.get(timeout=5)
    assert count == 5000
    assert threads == (int(os.environ["NIL_NUM_THREADS"]) if os.environ.get("NIL_NUM_THREADS") else 1)


def test_nil_num_threads_is_honoured():
    env = dict(os.environ, NIL_NUM_THREADS="3", PYTHONPATH=REPO_PY)
    out = subprocess.run(
        [sys.executable, "-c", "from nil import _core; print(_core.num_threads())"],
        capture_output=True, text=True, env=env, check=True,
    )
    assert out.stdout.strip() == "3"


def _child_files(path: str, q: mp.Queue) -> None:  # type: ignore[type-arg]
    acc = nil.AgopAccumulator(8)
    acc.update(np.ones((100, 8), np.float32))
    acc.save(os.path.join(path, "child.safetensors"))
    with nil.ShardWriter(os.path.join(path, "child-capture"), layers={"a": 8}, dtype="float32", shard_bytes=1024) as w:
        w.write({"a": np.ones((200, 8), np.float32)})
    q.put(nil.analyze(os.path.join(path, "child-capture"))[0].rows)


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_forked_child_can_write_files_after_the_parent_did(tmp_path):
    # Every binding runs on nil's fork-aware pool, never on rayon's global pool, whose threads
    # would be missing in the child (blake3 hashing and Gram mirroring are parallel).
    _child_files(str(tmp_path), mp.get_context("fork").Queue())  # warm everything in the parent
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_files, args=(str(tmp_path / "c"), q))
    os.makedirs(tmp_path / "c")
    p.start()
    p.join(timeout=60)
    assert not p.is_alive(), "forked child deadlocked"
    assert q.get(timeout=5) == 200

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

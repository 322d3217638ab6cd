"""Shard analysis on Ray: groups of shards become Ray tasks that return exact partial sums, merged
in shard order on the driver, so a cluster gives the single-machine answer (up to f64 rounding).

The capture directory must be readable at the same path from every node (a shared filesystem)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from ..accumulator import AgopAccumulator, NonFinite, PrecisionName, _fast, _skip
from ..errors import NilValueError
from ._paths import input_kind

__all__ = ["connect", "reduce_on_ray", "shard_groups"]


def connect(address: str, num_cpus: int | None = None) -> Any:
    """Connects to the Ray cluster at ``address`` (``"local"`` starts one on this machine, with
    ``num_cpus`` CPUs if given) and returns the ``ray`` module; an existing connection is reused."""
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is an optional dependency
        raise NilValueError("--ray needs the 'ray' package: pip install 'ray[default]'") from e
    if not ray.is_initialized():
        here = str(Path(__file__).resolve().parents[2])  # this checkout's python/ directory
        env = {
            "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p),
            # Each task reserves one CPU, so its nil pool gets one thread (as Ray does for OpenMP).
            "NIL_NUM_THREADS": "1",
        }
        ray.init(
            address=None if address == "local" else address,
            num_cpus=num_cpus if address == "local" else None,
            runtime_env={"env_vars": env},
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    return ray


def shard_groups(n_shards: int, n_tasks: int) -> list[tuple[int, int]]:
    """Splits shards 0..n into at most ``n_tasks`` contiguous, disjoint, non-empty ranges."""
    n_tasks = max(1, min(n_tasks, n_shards))
    per = -(-n_shards // n_tasks)
    return [(lo, min(lo + per, n_shards)) for lo in range(0, n_shards, per)]


def _reduce_range(
    path: str, layers: list[str] | None, skip: bool, fast: bool, lo: int, hi: int
) -> tuple[list[tuple[str, Any, int, int]], list[str]]:
    """Runs in a Ray worker: the exact sums of shards lo..hi (numpy arrays travel, not bindings)."""
    raw, sources = _core.reduce_capture(path, layers, skip, fast, None, (lo, hi))
    return [(n, a.sum(), int(a.count), int(a.nonfinite)) for n, a in raw], list(sources)


def reduce_on_ray(
    path: str | os.PathLike[str],
    address: str,
    layers: list[str] | None = None,
    nonfinite: NonFinite = "raise",
    *,
    precision: PrecisionName = "fast",
    tasks: int | None = None,
) -> tuple[dict[str, AgopAccumulator], list[str]]:
    """Per-layer accumulators of a capture, reduced by Ray tasks over groups of shards.

    ``tasks`` defaults to four per CPU of the cluster (at most one per shard)."""
    if input_kind(path) != "capture":  # names a missing path, a FIFO or a symlink loop first
        raise NilValueError(f"{path}: --ray analyses capture directories; a partial file needs no cluster")
    p = os.fspath(Path(path).resolve())
    skip, fast = _skip(nonfinite), _fast(precision)
    n_shards = len(json.loads(_core.manifest_read(p)).get("shards", []))  # absent = none, as the core reads it
    if n_shards == 0:
        raise NilValueError(f"{p}/manifest.json: empty capture: the manifest lists no shards")
    ray = connect(address)
    n_tasks = tasks or 4 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    remote = ray.remote(num_cpus=1)(_reduce_range)
    refs = [remote.remote(p, layers, skip, fast, lo, hi) for lo, hi in shard_groups(n_shards, n_tasks)]
    policy: NonFinite = "skip" if skip else "raise"
    total: dict[str, AgopAccumulator] = {}
    sources: list[str] = []
    for parts, srcs in ray.get(refs):  # in shard order: the merge order is fixed
        sources.extend(srcs)
        for name, s, count, bad in parts:
            acc = AgopAccumulator.from_sum(np.asarray(s), count, bad, policy=policy)
            if name in total:
                total[name].merge(acc)
            else:
                total[name] = acc
    for acc in total.values():
        acc.precision = precision
    return total, sources

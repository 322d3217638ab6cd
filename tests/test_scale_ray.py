"""Shard analysis on a local Ray instance equals local analysis; shard ranges partition exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from shard_helpers import agop, make_capture, stored

import nil
from nil import _core
from nil.shards.ray_reduce import shard_groups

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    rows = {"blocks.0": rng.standard_normal((900, 12)), "blocks.1": rng.standard_normal((900, 5))}
    path = tmp_path_factory.mktemp("ray") / "cap"
    make_capture(path, rows, dtype="float32", batches=9, shard_bytes=4096)
    return path, rows


def test_shard_groups_partition_every_shard() -> None:
    for n in (1, 2, 7, 16):
        for t in (1, 3, 8, 40):
            groups = shard_groups(n, t)
            covered = [i for lo, hi in groups for i in range(lo, hi)]
            assert covered == list(range(n)) and all(hi > lo for lo, hi in groups)


def test_shard_ranges_sum_to_the_whole(capture: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = capture
    n = len(json.loads((path / "manifest.json").read_text())["shards"])
    assert n >= 3
    whole, src = _core.reduce_capture(str(path), None, False, False, None, None)
    parts = [_core.reduce_capture(str(path), None, False, False, None, r) for r in shard_groups(n, 3)]
    assert sum((p[1] for p in parts), []) == src
    for i, (name, acc) in enumerate(whole):
        total = sum(p[0][i][1].sum() for p in parts)
        np.testing.assert_allclose(total, acc.sum(), rtol=1e-12)
    with pytest.raises(nil.NilValueError, match="requested"):
        _core.reduce_capture(str(path), None, False, False, None, (0, n + 1))


def test_analyze_on_local_ray_equals_local(capture: tuple[Path, dict[str, np.ndarray]], run_cli) -> None:
    path, rows = capture
    try:
        on_ray = nil.analyze(path, ray="local")
    finally:
        ray.shutdown()
    local = nil.analyze(path)
    assert [r.layer for r in on_ray] == [r.layer for r in local]
    for a, b in zip(on_ray, local):
        assert a.rows == b.rows == 900
        np.testing.assert_allclose(a.accumulator.matrix(), b.accumulator.matrix(), rtol=1e-10)
        np.testing.assert_allclose(a.accumulator.matrix(), agop(stored(rows[a.layer], "float32")), rtol=1e-5, atol=1e-7)
    proc = run_cli("analyze", str(path), "--ray", "local", "--json", check=True, timeout=300)
    out = json.loads(proc.stdout)
    assert [r["layer"] for r in out["layers"]] == ["blocks.0", "blocks.1"]
    assert out["layers"][0]["aofe_ratio"] == pytest.approx(local[0].aofe_ratio, rel=1e-9)

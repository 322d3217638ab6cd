"""Mutated shard and manifest bytes never crash the interpreter: the reader raises a nil error
(or, for a harmless mutation, succeeds), and verify reports instead of raising."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nil
from shard_helpers import make_capture, replace_shard
from hypothesis_profiles import examples


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "cap"
    rng = np.random.default_rng(0)
    make_capture(path, {"a": rng.standard_normal((12, 5)), "b": rng.standard_normal((12, 3))}, batches=2, shard_bytes=1)
    return path


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, at, val in ops:
        at = at % (len(b) + 1)
        if kind == "flip" and b:
            b[at % len(b)] ^= val
        elif kind == "truncate":
            del b[at:]
        elif kind == "insert":
            b[at:at] = bytes([val])
    return bytes(b)


def check(path: Path) -> None:
    try:
        nil.analyze(path)
    except nil.NilError:
        pass
    report = nil.verify(path)
    assert all(p.message for p in report.problems)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(["manifest", "shard", "shard+checksum"]),
    shard=st.integers(0, 1),
    ops=st.lists(mutation, min_size=1, max_size=4),
)
def test_mutated_bytes_raise_nil_errors(pristine, target, shard, ops):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cap"
        shutil.copytree(pristine, path)
        if target == "manifest":
            f = path / "manifest.json"
            f.write_bytes(mutate(f.read_bytes(), ops))
        else:
            f = path / "shards" / f"{shard:06d}.safetensors"
            data = mutate(f.read_bytes(), ops)
            if target == "shard":
                f.write_bytes(data)
            else:  # re-record size and checksum so the header and tensor checks are what catch it
                replace_shard(path, shard, raw=data)
        check(path)

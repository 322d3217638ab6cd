"""The device reduction of a capture (``nil analyze --device cuda``), run here on torch's CPU device:
the same accumulators as the Rust core within the documented tolerance (docs/shard-format.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from shard_helpers import make_capture

import nil
from nil.errors import NilValueError, NonFiniteError
from nil.shards import reduce
from nil.shards.device_reduce import reduce_on_device

# The documented tolerance: max |G_device - G_exact| <= 1e-5 * max |G_exact| (float32 block products).
TOL = 1e-5


def _rows(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Correlated columns with a non-zero mean: the Gram is not dominated by its diagonal.
    a = rng.standard_normal((301, 24)) @ rng.standard_normal((24, 24)) * 0.3 + 0.5
    b = rng.standard_normal((301, 40)) * np.linspace(0.1, 3, 40)
    return {"a": a, "b": b}


def _max_rel(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(x - y).max() / np.abs(y).max())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("block_rows", [7, 16384])
def test_device_reduction_matches_the_core(tmp_path, dtype, block_rows):
    make_capture(tmp_path / "c", _rows(), dtype=dtype, batches=5, shard_bytes=3000)
    want, want_src = reduce(tmp_path / "c", precision="exact")
    got, src = reduce_on_device(tmp_path / "c", device="cpu", block_rows=block_rows, buffers=3,
                                product_rows=5 if block_rows == 7 else 4096)
    assert src == want_src and len(src) > 3
    assert list(got) == list(want)
    for n in want:
        assert got[n].count == want[n].count == 301 and got[n].nonfinite == 0
        assert _max_rel(got[n].matrix(), want[n].matrix()) < TOL, n


def test_layers_and_nonfinite_rows(tmp_path):
    rows = _rows(1)
    rows["a"][[3, 200]] = [np.nan, np.inf] + [0.0] * 22  # two bad rows of layer a
    make_capture(tmp_path / "c", rows, batches=3, shard_bytes=2000)
    with pytest.raises(NonFiniteError, match="layer a, row"):
        reduce_on_device(tmp_path / "c", device="cpu")
    got, _ = reduce_on_device(tmp_path / "c", ["a"], "skip", device="cpu", block_rows=50)
    want, _ = reduce(tmp_path / "c", ["a"], "skip", precision="exact")
    assert list(got) == ["a"]
    assert (got["a"].count, got["a"].nonfinite) == (want["a"].count, want["a"].nonfinite) == (299, 2)
    assert _max_rel(got["a"].matrix(), want["a"].matrix()) < TOL
    with pytest.raises(NilValueError, match="layer zz"):
        reduce_on_device(tmp_path / "c", ["zz"], device="cpu")


def test_analyze_on_a_device_gives_the_cpu_statistics(tmp_path):
    make_capture(tmp_path / "c", _rows(2), batches=4)
    cpu = {r.layer: r for r in nil.analyze(tmp_path / "c")}
    accs, _ = reduce(tmp_path / "c", device="cpu")  # "cpu" is the Rust core's reduction
    accs_dev, _ = reduce_on_device(tmp_path / "c", device=torch.device("cpu"))
    for n, rec in cpu.items():
        assert abs(nil.interaction_stats(accs_dev[n].matrix()).aofe_ratio - rec.aofe_ratio) < 1e-5
        assert accs[n].count == accs_dev[n].count


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_missing_is_a_clear_error(tmp_path, capsys):
    from nil.cli import main

    make_capture(tmp_path / "c", _rows(), batches=2)
    with pytest.raises(NilValueError, match="no CUDA device"):
        nil.analyze(tmp_path / "c", device="cuda")
    assert main(["analyze", str(tmp_path / "c"), "--device", "cuda"]) != 0
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cuda_device_reduction_matches_the_core(tmp_path, dtype):
    make_capture(tmp_path / "c", _rows(3), dtype=dtype, batches=5, shard_bytes=3000)
    want, _ = reduce(tmp_path / "c", precision="exact")
    got, _ = reduce_on_device(tmp_path / "c", device="cuda", block_rows=64)
    for n in want:
        assert got[n].count == want[n].count
        assert _max_rel(got[n].matrix(), want[n].matrix()) < TOL, n
    recs = {r.layer: r for r in nil.analyze(tmp_path / "c", device="cuda")}
    assert set(recs) == set(want)


def test_a_shard_that_fails_its_checksum_stops_the_reduction(tmp_path):
    make_capture(tmp_path / "c", _rows(4), batches=4, shard_bytes=3000)
    f = sorted((tmp_path / "c" / "shards").glob("*.safetensors"))[2]
    b = bytearray(f.read_bytes())
    b[-3] ^= 0x40  # one bit of the last row
    f.write_bytes(bytes(b))
    with pytest.raises(Exception, match="000002") as cpu_err:
        reduce(tmp_path / "c")
    with pytest.raises(type(cpu_err.value), match="000002"):
        reduce_on_device(tmp_path / "c", device="cpu")


def test_tolerance_holds_over_many_full_float32_blocks(tmp_path):
    """20,000 rows with a large common mean (every product positive: rounding errors do not cancel)."""
    rng = np.random.default_rng(5)
    rows = {"a": rng.standard_normal((20000, 64)) * 0.2 + 1.0}
    make_capture(tmp_path / "c", rows, batches=3, shard_bytes=1 << 20)
    want, _ = reduce(tmp_path / "c", precision="exact")
    got, _ = reduce_on_device(tmp_path / "c", device="cpu")
    assert got["a"].count == 20000
    assert _max_rel(got["a"].matrix(), want["a"].matrix()) < TOL


def test_a_shard_truncated_before_its_pass_is_an_error_naming_it(tmp_path, monkeypatch):
    """Rows are read with read(2), never a memory map: a shard cut short under the reduction is a
    FormatError naming the file (a mapped reader would die of SIGBUS)."""
    from nil.errors import FormatError
    from nil.shards import device_reduce as m

    path = tmp_path / "cap"
    with nil.ShardWriter(path, {"a": 8}, dtype="float32", shard_bytes=1000) as w:
        for _ in range(3):
            w.write({"a": np.ones((64, 8), dtype=np.float32)})
    shard = sorted((path / "shards").glob("*.safetensors"))[1]
    real = m._core.shard_stream

    def truncating(p, layers, slots, acquire, ready, verified):  # type: ignore[no-untyped-def]
        def after(i: int, digest: str) -> None:
            verified(i, digest)
            if i == 0:  # shard 0 reduced, shard 1 not yet opened
                with open(shard, "r+b") as f:
                    f.truncate(shard.stat().st_size - 100)
        real(p, layers, slots, acquire, ready, after)

    monkeypatch.setattr(m._core, "shard_stream", truncating)
    with pytest.raises(FormatError, match=shard.name):
        m.reduce_on_device(path, device="cpu")


def test_each_shard_is_read_once_and_the_sources_are_the_digests_verified(tmp_path, monkeypatch):
    """One stream over the capture, no separate verification pass (whose bytes could differ from
    those reduced); the sources returned are the digests of the shards verified, in order."""
    from nil.shards import device_reduce as m

    make_capture(tmp_path / "c", _rows(6), batches=3, shard_bytes=3000)
    calls: list[int] = []
    seen: list[int] = []
    real = m._core.shard_stream

    def counted(p, layers, slots, acquire, ready, verified):  # type: ignore[no-untyped-def]
        calls.append(1)
        real(p, layers, slots, acquire, ready, lambda i, d: (seen.append(i), verified(i, d)))

    monkeypatch.setattr(m._core, "shard_verify", lambda *a: pytest.fail("a second pass over a shard"))
    monkeypatch.setattr(m._core, "shard_stream", counted)
    _, src = m.reduce_on_device(tmp_path / "c", device="cpu", block_rows=16)
    _, want = reduce(tmp_path / "c")
    assert calls == [1] and seen == list(range(len(want))) and src == want and len(src) > 2


def test_an_empty_capture_is_an_error_not_zero_rows(tmp_path):
    from nil.errors import FormatError

    with nil.ShardWriter(tmp_path / "c", {"a": 4}, dtype="float32"):
        pass
    with pytest.raises(Exception, match="no shards") as cpu_err:
        reduce(tmp_path / "c")
    with pytest.raises(FormatError, match="empty capture"):
        reduce_on_device(tmp_path / "c", device="cpu")
    assert isinstance(cpu_err.value, FormatError)


def test_a_failure_on_the_device_side_stops_the_reader(tmp_path):
    """A non-finite row raises (checked once per shard) and the reader thread does not hang."""
    rows = _rows(7)
    rows["b"][150] = np.nan
    make_capture(tmp_path / "c", rows, batches=5, shard_bytes=3000)
    with pytest.raises(NonFiniteError, match=r"layer b, row \d+") as e:
        reduce_on_device(tmp_path / "c", device="cpu", block_rows=3, buffers=2)
    assert ".safetensors" in str(e.value)
    with pytest.raises(NilValueError, match="must be positive"):
        reduce_on_device(tmp_path / "c", device="cpu", buffers=0)

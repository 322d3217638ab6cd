"""ShardWriter's staging ring (nil.shards.staging): the rows it writes are bit for bit those of the
unstaged path and of the in-memory capture; the ring blocks when full and frees its buffers."""

from __future__ import annotations

import json
import queue
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
from capture_models import TinyGPT
from safetensors.numpy import load_file

import nil
from nil.capture import capture_agop
from nil.shards.staging import RowStager

pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}


def read_rows(path: Path) -> dict[str, np.ndarray]:
    """Every layer's rows of a capture, in write order (shards in manifest order)."""
    m = json.loads((path / "manifest.json").read_text())
    parts: dict[str, list[np.ndarray]] = {layer["name"]: [] for layer in m["layers"]}
    for s in m["shards"]:
        for n, a in load_file(str(path / s["file"])).items():
            parts[n].append(a)
    return {n: np.concatenate(p) for n, p in parts.items() if p}


class Tee:
    """A sink that keeps a numpy copy of every row and passes the rows on."""

    def __init__(self, sink: Any) -> None:
        self.sink, self.rows = sink, {}

    def write(self, rows: dict[str, torch.Tensor]) -> None:
        for n, r in rows.items():
            self.rows.setdefault(n, []).append(r.detach().cpu().numpy().copy())
        self.sink.write(rows)


def capture_to_shards(path: Path, device: str, dtype: str, staging: int, row_dtype: str | None = None
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    torch.manual_seed(0)
    gpt = TinyGPT(vocab=29, ctx=16, d=32, depth=3, heads=4).eval().to(device)
    g = torch.Generator().manual_seed(1)
    tokens = [torch.randint(0, 29, (6, 16), generator=g).to(device) for _ in range(3)]
    names = [f"blocks.{i}" for i in range(3)]
    with nil.ShardWriter(path, dict.fromkeys(names, 32), dtype=dtype, meta={"family": "gpt"},
                         shard_bytes=4096, staging=staging) as w:
        tee = Tee(w)
        got = capture_agop(gpt, tokens, layers=names, probes=3, sink=tee, micro_batch=4, progress=False,
                           dtype=row_dtype)
    kept = {n: np.concatenate(p) for n, p in tee.rows.items()}
    return read_rows(path), kept, got


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_staged_shards_hold_the_capture_rows_bit_for_bit(tmp_path, dtype):
    staged, kept, got = capture_to_shards(tmp_path / "staged", "cpu", dtype, staging=2)
    plain, _, _ = capture_to_shards(tmp_path / "plain", "cpu", dtype, staging=0)
    assert set(staged) == set(kept) == set(got)
    for n in kept:
        assert len(kept[n]) == got[n].count
        want = kept[n].astype(NP[dtype])  # the in-memory rows (float64 on the CPU) in the shard dtype
        assert staged[n].dtype == want.dtype
        assert staged[n].view(np.uint8).tobytes() == want.view(np.uint8).tobytes(), n
        assert plain[n].view(np.uint8).tobytes() == want.view(np.uint8).tobytes(), n


def test_ring_blocks_when_every_buffer_is_in_flight_and_grows_buffers():
    st = RowStager("cpu", slots=2)
    a = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    b = torch.arange(40, dtype=torch.float32).reshape(5, 8).to(torch.bfloat16)
    s1 = st.stage({"a": a, "b": b})
    s2 = st.stage({"a": a * 2})
    with pytest.raises(queue.Empty):
        st.stage({"a": a}, timeout=0.05)
    a.add_(100)  # the staged rows are copies: later changes of the source do not show
    r1 = s1.take()
    assert r1["a"].dtype == np.float64 and np.array_equal(r1["a"], np.arange(12.0).reshape(3, 4))
    assert r1["b"].dtype == ml_dtypes.bfloat16
    assert np.array_equal(r1["b"].astype(np.float32), np.arange(40, dtype=np.float32).reshape(5, 8))
    big = torch.randn(64, 33)
    s3 = st.stage({"big": big, "t": big.t()})  # reuses the freed buffer, grown to fit; a strided view
    r3 = s3.take()
    assert np.array_equal(r3["big"], big.numpy()) and np.array_equal(r3["t"], big.t().numpy())
    assert np.array_equal(s2.take()["a"], (np.arange(12.0) * 2).reshape(3, 4))
    s2.release()  # a second release does not free a buffer twice
    assert st._free.qsize() == 2


def test_writer_error_frees_the_staged_buffers(tmp_path):
    w = nil.ShardWriter(tmp_path / "run", {"a": 4}, dtype="float16", meta={"family": "mlp"}, staging=1)
    w._error = RuntimeError("disk gone")  # as if the writer thread had failed
    with pytest.raises(RuntimeError, match="disk gone"):
        w.write({"a": torch.zeros(2, 4)})
    w.close()

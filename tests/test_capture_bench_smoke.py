"""The GPU capture benchmark runs at a tiny size on the CPU and prints its JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_capture_gpu_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benches" / "bench_capture_gpu.py"), "--smoke", "--device", "cpu",
         "--sink-dir", str(tmp_path), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("capture bench on cpu")
    for case in ("1m", "10m"):
        res = summary[case]
        assert res["params"] == res["params_formula"]
        assert res["reference_s"] > 0 and res["nil_sdpa_vmap_s"] > 0
        assert res["nil_vmap_vs_loop_max_rel_diff"] < 1e-5
        assert res["nil_replicate_vs_vmap_max_rel_diff"] < 1e-4
    gpt2 = summary["gpt2"]
    assert gpt2["per_probe_over_train_step"] > 0
    assert gpt2["rows_per_layer"] == 2 * 4 * 32
    assert list(tmp_path.iterdir()) == [out], "the sink's files are deleted afterwards"


def test_bench_capture_gpu_quick_streaming_case(tmp_path: Path) -> None:
    """The issue-14 case (--cases gpt2): capture alone and with each of the three sinks, one line out."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benches" / "bench_capture_gpu.py"), "--quick", "--cases", "gpt2",
         "--device", "cpu", "--sink-dir", str(tmp_path), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    g = json.loads(out.read_text())["gpt2"]
    assert list(g["sinks"]) == ["shards", "shards-unstaged", "memmap"]
    rows = g["sink_rows_per_layer"]
    assert rows == 2 * 4 * 8  # probes x sequences x ceil(32 / stride 4)
    # float16 rows of 2 layers x 32 columns; the shard files add headers and a manifest
    assert g["sink_bytes_per_capture"]["memmap"] >= 2 * rows * 32 * 2
    assert g["sink_bytes_per_capture"]["shards"] == g["sink_bytes_per_capture"]["shards-unstaged"] > 2 * rows * 32 * 2
    for k in g["sinks"]:
        assert g[f"sink_{k}_s"] > 0 and len(g["sink_times_s"][k]) == 1
        assert f"{k} " in proc.stdout
    assert list(tmp_path.iterdir()) == [out], "the sinks' files are deleted afterwards"

"""The analyze benchmark (benches/bench_analyze_gpu.py) at its --quick size on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_analyze_quick(tmp_path: Path) -> None:
    out = tmp_path / "analyze.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benches" / "bench_analyze_gpu.py"), "--quick", "--device", "cpu",
         "--dir", str(tmp_path), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("analyze bench")
    r = json.loads(out.read_text())
    assert 0.015e9 < r["bytes"] < 0.03e9 and r["shards"] >= 1
    assert r["rows_per_layer"] * 4 * 64 * 2 <= r["bytes"]
    for k in ("cpu", "device", "page_cache_read", "disk_read"):
        assert r[f"{k}_gb_per_s"] > 0
    assert r["max_rel_diff_device_vs_cpu"] < 1e-5
    assert list(tmp_path.iterdir()) == [out], "the capture is deleted afterwards"

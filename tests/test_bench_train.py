"""benches/bench_train_gpu.py --smoke: the GPU training benchmark runs end to end on a CPU."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_benchmark_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "benches" / "bench_train_gpu.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert summary == json.loads(proc.stdout)
    for side in ("nil", "reference"):
        r = summary[side]
        assert r["steps"] == 30 and r["timed_steps"] == 25 and r["evaluations"] == 3
        assert math.isfinite(r["steps_per_s"]) and r["steps_per_s"] > 0
        assert 0 < r["best_val_ce"] < math.log(256) + 0.5
    assert summary["speedup_steps_per_s"] == pytest.approx(
        summary["nil"]["steps_per_s"] / summary["reference"]["steps_per_s"])
    assert summary["shape"]["params"] == 12 * 16**2 + 4 * 16 + 16 * (256 + 32 + 256 + 2)  # T = 32 here

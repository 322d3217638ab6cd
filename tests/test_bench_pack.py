"""benches/bench_pack_gpu.py --quick: the packed-training GPU benchmark runs end to end on a CPU."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pack_benchmark_quick(tmp_path):
    out = tmp_path / "pack.json"
    proc = subprocess.run([sys.executable, str(REPO / "benches" / "bench_pack_gpu.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert summary == json.loads(proc.stdout)
    names = [c["name"] for c in summary["cases"]]
    assert names == ["alone", "graph-1", "stack-2", "stack-2-eager", "shapes-2", "shapes-2x3", "shapes-2-fp32"]
    for c in summary["cases"]:
        assert c["run_steps"] > 0 and math.isfinite(c["steps_per_s"]) and c["steps_per_s"] > 0
        assert c["speedup_vs_alone"] == pytest.approx(c["steps_per_s"] / summary["cases"][0]["steps_per_s"])
        assert c["gpu_util_mean"] is None  # no GPU: no utilisation is reported, none is made up
    packed = {c["name"]: c for c in summary["cases"][1:]}
    assert all(c["losses_finite"] for c in packed.values())
    assert packed["shapes-2x3"]["runs"] == 6 and packed["shapes-2x3"]["jobs"] == 2 and packed["shapes-2x3"]["stacked"] == 3
    # Packed seeds equal the runs alone (float32 on the CPU; tolerance reasoning in tests/test_pack.py).
    (eq,) = summary["equality"]
    assert eq["same_steps_and_best_steps"] and eq["stacked"] == 3
    assert eq["max_rel_diff_val_history"] < 1e-5 and eq["max_rel_diff_test"] < 1e-5
    assert summary["corpus"]["stdlib"]["train"] > 0 and set(summary["targets"]) == {"speedup_4x", "gpu_util_85"}

"""The symbolic benchmark's --quick mode runs end to end on the CPU and reports every part."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_symbolic_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "benches" / "bench_symbolic.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert [t["n"] for t in r["transforms"]] == [6, 8]
    assert all(t["roundtrip_err_rel"] < 1e-12 for t in r["transforms"])
    if "shapiq_agreement_rel" in r["transforms"][0]:
        assert r["transforms"][0]["shapiq_agreement_rel"] < 1e-12
    s = r["solver"]
    assert s["pdhg"][-1]["max_iter"] == 400 and s["dense_sgd_published"]["steps"] == 50
    assert {f["model"].split()[0] for f in r["forwards"]} == {"mlp", "gpt"}
    assert all(f["per_second"] > 0 for f in r["forwards"])

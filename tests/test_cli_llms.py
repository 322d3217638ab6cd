"""`nil llms` as a user runs it (subprocess)."""

from __future__ import annotations

import json

from nil.llms import shapes


def test_json_lists_every_model_with_ratio_and_source(run_cli, tmp_path):
    png = tmp_path / "plots" / "mmlu.png"
    proc = run_cli("llms", "--lo", "0.01", "--hi", "0.02", "--permutations", "300", "--json", "--plot", str(png), check=True)
    out = json.loads(proc.stdout)
    assert out["interval"]["lo"] == 0.01 and out["interval"]["hi"] == 0.02
    assert len(out["models"]) == len(shapes())
    for m in out["models"]:
        assert m["ratio"] == m["layers"] / m["hidden"]
        assert m["source"] and m["name"]
        assert m["position"] in ("inside", "below", "above")
    qwen = next(m for m in out["models"] if m["name"] == "Qwen2.5-3B")
    assert qwen["position"] == "inside" and qwen["distance"] == 0
    assert any(s["protocol"] == "oll-raw" and s["score"] == 32.03 for s in qwen["scores"])
    comp = out["comparison"]
    assert comp["protocol"] == "oll-raw" and comp["variant"] == "base"
    assert [a["label"] for a in comp["associations"]][:2] == ["raw", "| log10 params"]
    assert all(set(r["source"].split(";")) <= set(out["sources"]) for r in comp["rows"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tables_and_verdict_from_an_interval_file(run_cli, tmp_path):
    f = tmp_path / "interval.json"
    f.write_text(json.dumps({"interval": {"lo": 0.012, "hi": 0.03}, "frontier": {}}))
    proc = run_cli("llms", "--interval", str(f), "--protocol", "qwen-base-5shot", "--permutations", "300", check=True)
    assert "Qwen3-4B-Base" in proc.stdout and "50.58" in proc.stdout
    assert "n = 17" in proc.stdout and "CI" in proc.stdout
    assert "Q3R:" in proc.stdout  # the source legend resolves every key printed


def test_list_protocols(run_cli):
    proc = run_cli("llms", "--list-protocols", "--json", check=True)
    keys = {p["key"] for p in json.loads(proc.stdout)["protocols"]}
    assert {"oll-raw", "oll-norm", "tiger-5shot-cot"} <= keys


def test_bad_interval_file_is_reported_with_its_name(run_cli, tmp_path):
    f = tmp_path / "runs.json"
    f.write_text(json.dumps({"layers": []}))
    proc = run_cli("llms", "--interval", str(f))
    assert proc.returncode == 1
    assert "runs.json" in proc.stderr and '"interval"' in proc.stderr
    missing = run_cli("llms", "--interval", str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "nope.json" in missing.stderr
    half = run_cli("llms", "--lo", "0.01")
    assert half.returncode == 2 and "--hi" in half.stderr

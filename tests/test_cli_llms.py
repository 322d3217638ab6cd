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


def test_interval_json_from_nil_interval_feeds_nil_llms(run_cli, tmp_path):
    """The two verbs chained as a user would: runs → `nil interval --json` → `nil llms --interval`."""
    import csv
    import math

    import numpy as np

    rng = np.random.default_rng(0)
    runs = tmp_path / "runs.csv"
    with runs.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["budget", "depth", "width", "ratio", "seed", "test_loss"])
        for n in (3e5, 1e6, 3e6):
            for d in (1, 2, 3, 4, 6, 8, 12, 16, 24):
                width = max(8, round(math.sqrt(n / (12 * d))))
                r = d / width
                for s in range(2):
                    loss = 1.5 + 30 * n**-0.25 + 0.05 * (math.log(r) - math.log(0.02)) ** 2 + 0.002 * rng.standard_normal()
                    w.writerow([n, d, width, r, s, loss])
    fit = run_cli("interval", str(runs), "--bootstrap", "50", "--permutations", "50", "--json", check=True)
    iv_file = tmp_path / "interval.json"
    iv_file.write_text(fit.stdout)
    iv = json.loads(fit.stdout)["interval"]
    for flag in ((), ("--smooth",)):
        proc = run_cli("llms", "--interval", str(iv_file), *flag, "--permutations", "100", "--json")
        if iv["lo"] is None and not flag:
            assert proc.returncode == 1 and "interval" in proc.stderr
            continue
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        lo, hi = out["interval"]["lo"], out["interval"]["hi"]
        for m in out["models"]:
            inside = lo <= m["ratio"] <= hi
            assert (m["position"] == "inside") == inside and (m["distance"] == 0) == inside


def test_csv_holds_the_compared_checkpoints(run_cli):
    import csv
    import io

    from nil.llms import scores

    proc = run_cli("llms", "--csv", "--protocol", "gemma3-report-it", "--variant", "instruct", "--lo", "0.01", "--hi", "0.02",
                   "--permutations", "50", check=True)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert {r["name"] for r in rows} == {s.checkpoint for s in scores("gemma3-report-it", "instruct")}
    for r in rows:
        assert float(r["ratio"]) == int(r["layers"]) / int(r["hidden"]) and r["source"] == "G3R"

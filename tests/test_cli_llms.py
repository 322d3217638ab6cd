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
            assert "using nil's smooth interval" in proc.stderr
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


def _disjoint_bands_runs(path):
    """Two budgets whose optima lie a factor 20 apart: the reference's ε-bands do not intersect,
    nil's smooth bands (wider, from the fitted parabola) do."""
    import csv
    import math

    import numpy as np

    rng = np.random.default_rng(0)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["budget", "depth", "width", "ratio", "seed", "test_loss"])
        for n, opt in ((3e5, 0.004), (3e6, 0.08)):
            for d in (1, 2, 3, 4, 6, 8, 12, 16, 24):
                width = max(8, round(math.sqrt(n / (12 * d))))
                r = d / width
                for s in range(2):
                    loss = 1.5 + 30 * n**-0.25 + 0.02 * (math.log(r) - math.log(opt)) ** 2 + 0.002 * rng.standard_normal()
                    w.writerow([n, d, width, r, s, loss])


def test_empty_reference_interval_falls_back_to_the_smooth_one(run_cli, tmp_path):
    """`nil llms --interval fit.json` on a fit whose reference interval is empty (as the demo's is)
    uses nil's smooth interval, says so in one line, and matches `--smooth`."""
    runs = tmp_path / "runs.csv"
    _disjoint_bands_runs(runs)
    fit = run_cli("interval", str(runs), "--bootstrap", "50", "--permutations", "50", "--json", check=True)
    doc = json.loads(fit.stdout)
    assert doc["interval"]["empty"] is True and doc["smooth_interval"]["empty"] is False
    f = tmp_path / "fit.json"
    f.write_text(fit.stdout)
    plain = run_cli("llms", "--interval", str(f), "--permutations", "100", "--json")
    assert plain.returncode == 0, plain.stderr
    note = [line for line in plain.stderr.splitlines() if line.strip()]
    assert len(note) == 1 and "reference interval" in note[0] and "empty" in note[0] and "smooth" in note[0]
    smooth = run_cli("llms", "--interval", str(f), "--smooth", "--permutations", "100", "--json", check=True)
    assert smooth.stderr.strip() == ""
    got, want = json.loads(plain.stdout)["interval"], json.loads(smooth.stdout)["interval"]
    assert (got["lo"], got["hi"]) == (want["lo"], want["hi"]) == (doc["smooth_interval"]["lo"], doc["smooth_interval"]["hi"])
    # the human-readable output names the interval it used
    table = run_cli("llms", "--interval", str(f), "--permutations", "100", check=True)
    assert "smooth_interval" in table.stdout

    # both empty: one line naming the flags that give an interval, exit status 1
    doc["smooth_interval"] = dict(doc["interval"])
    f.write_text(json.dumps(doc))
    both = run_cli("llms", "--interval", str(f), "--permutations", "100")
    assert both.returncode == 1 and "--lo X --hi Y" in both.stderr and "Traceback" not in both.stderr

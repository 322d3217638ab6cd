"""`nil demo` as a user runs it."""

import json


def test_demo_prints_tables(run_cli):
    proc = run_cli("demo", "--rows", "2000", "--dim", "32", check=True)
    assert "Per-layer AGOP interaction statistics" in proc.stdout
    assert "low-rank" in proc.stdout


def test_demo_json_recovers_known_structure(run_cli):
    out = json.loads(run_cli("demo", "--rows", "4000", "--dim", "32", "--json", check=True).stdout)
    layers = {r["layer"]: r for r in out["layers"]}
    # A rank-4 signal has participation ratio near 4; isotropic rows near the dimension.
    assert 3.0 < layers["low-rank"]["participation_ratio"] < 5.0
    assert layers["isotropic"]["participation_ratio"] > 25
    assert abs(out["nfa"]["fitted_gamma"] - 0.75) < 1e-4


def test_no_command_prints_help(run_cli):
    proc = run_cli()
    assert proc.returncode == 2
    assert "demo" in proc.stdout

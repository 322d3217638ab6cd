"""Every verb's human output fits the terminal (issue 13): run as a user runs it, with COLUMNS=100
(and narrower), no line is longer than the width, nothing is cut with an ellipsis, and every
number of the JSON output appears whole in the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.cells import cell_len

import nil
from nil.cli._table import fmt, render_table

REPO = Path(__file__).resolve().parent.parent
LAYERS = {f"model.transformer.h.{i}.mlp.c_fc": 24 for i in range(3)}


def _nil(*args: str, cwd: Path, columns: int = 100, timeout: float = 600) -> str:
    env = {**os.environ, "COLUMNS": str(columns), "PYTHONPATH": str(REPO / "python")}
    proc = subprocess.run([sys.executable, "-m", "nil", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def _fits(text: str, columns: int = 100) -> None:
    lines = text.splitlines()
    assert lines, "no output"
    long = [line for line in lines if cell_len(line) > columns]  # display cells: R̂ is one
    assert not long, f"{len(long)} line(s) wider than {columns}:\n" + "\n".join(long[:5])
    assert "…" not in text, text
    box = "│┃┏┓┗┛┡┩└┘┌┐├┤╇╈┼━─"
    cropped = [line for line in lines if line[:1] in box and line.rstrip()[-1:] not in box]
    assert not cropped, "table rows cut at the edge (rich crops what does not fit):\n" + "\n".join(cropped[:5])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("width")
    rng = np.random.default_rng(0)
    with nil.ShardWriter(d / "cap", LAYERS, dtype="float32") as w:  # tiny values: 1e-09-like statistics
        w.write({n: rng.standard_normal((50, 24)) * 1e-4 for n in LAYERS})
    sys.path.insert(0, str(REPO / "tests"))
    from test_interval import _reference_csv

    _reference_csv(d / "runs.csv")
    np.save(d / "v.npy", rng.standard_normal((2, 16)))
    return d


@pytest.mark.parametrize("columns", [100, 60])
def test_analyze_fits_and_keeps_every_number_whole(data, columns):
    text = _nil("analyze", "cap", "--no-progress", cwd=data, columns=columns)
    _fits(text, columns)
    layers = json.loads(_nil("analyze", "cap", "--json", cwd=data))["layers"]
    for r in layers:
        for k in ("aofe_ratio", "null_rotation", "weighted_mean_cos2", "participation_ratio", "effective_rank"):
            assert fmt(r[k]) in text, (k, fmt(r[k]))
    if columns == 60:
        assert "(1/" in text  # too wide for 60 columns: split, the layer names repeated
    for name in LAYERS:
        assert text.count(name) >= (2 if columns == 60 else 1)


def test_verify_merge_interactions_demo_fit(data):
    for args in (["verify", "cap"], ["merge", "m.safetensors", "cap", "--force", "--no-progress"],
                 ["interactions", "--values", "v.npy"], ["demo", "--rows", "2000", "--dim", "32"]):
        _fits(_nil(*args, cwd=data))


def test_interval_fits_and_keeps_its_numbers(data):
    text = _nil("interval", "runs.csv", "--bootstrap", "100", "--permutations", "100", cwd=data)
    _fits(text)
    out = json.loads(_nil("interval", "runs.csv", "--bootstrap", "100", "--permutations", "100", "--json", cwd=data))
    for b in out["budgets"]:
        assert f"{b['argmin_ratio']:.3g}" in text


def test_sweep_summary_fits(data):
    text = _nil("sweep", "--family", "mlp", "--task", "ts-mlp", "--budgets", "2k,4k", "--depths", "1-4", "--seeds", "1",
                "--data-ratio", "2", "--out", "sw", "--task-arg", "in_dim=8", "--task-arg", "out_dim=4",
                "--task-arg", "teacher_width=16", "--task-arg", "n_test=256", "--task-arg", "n_val=128",
                "--multiple", "2", "--min-width", "4", "--lr", "3e-3", "--batch-size", "64", "--warmup", "5",
                "--eval-every", "10", "--project", "4", "--probes", "2", "--device", "cpu", "--no-progress",
                "--threads", "1", cwd=data)
    _fits(text)
    assert "Shape sweep" in text
    # `make demo`'s interval command, as the Makefile has it, on this sweep of the demo's kind
    make = (REPO / "Makefile").read_text().replace("\\\n", " ")
    line = next(x for x in make.splitlines() if "-m nil interval" in x)
    args = line.split("-m nil ", 1)[1].replace("$(DEMO_OUT)", "sw").split()
    shown = _nil(*args, cwd=data)
    _fits(shown)
    assert "In short: the loss is lowest at depth/width R* ≈" in shown
    assert "open sw/plots/loss_vs_ratio.png first" in " ".join(shown.split())
    assert (data / "sw" / "plots" / "loss_vs_ratio.png").is_file()


def test_render_table_never_narrows_a_number_column():
    cells = [[f"layer.{i}", *(fmt(1.2345678e-7 * (i + 1)) for _ in range(12))] for i in range(3)]
    cols = ["layer", *(f"statistic_{j}" for j in range(12))]
    from rich.console import Console

    con = Console(width=70, record=True, file=open(os.devnull, "w"))
    tables = render_table("t", cols, cells, total=70)
    assert len(tables) > 1
    for t in tables:
        con.print(t)
    text = con.export_text()
    assert all(len(line) <= 70 for line in text.splitlines())
    for row in cells:
        for c in row:
            assert c in text
    one = render_table("t", cols, cells[:1], total=70)  # one wide row: transposed
    assert len(one) == 1 and [str(c.header) for c in one[0].columns] == ["statistic", "value"]


def test_analyze_hides_an_all_zero_count_unless_all_metrics(data):
    text = _nil("analyze", "cap", "--no-progress", cwd=data)
    assert "nonfinite" not in text.split("(hidden")[0] and "--all-metrics shows them" in text
    full = _nil("analyze", "cap", "--no-progress", "--all-metrics", cwd=data, columns=200)
    assert "nonfinite" in full and "(hidden" not in full


def test_counts_are_not_default_interval_metrics(tmp_path):
    from nil.interval import resolve_columns

    rng = np.random.default_rng(1)
    n = 12
    runs = {"budget": [1e6] * 6 + [2e6] * 6, "ratio": [0.01, 0.02, 0.04, 0.08, 0.16, 0.32] * 2,
            "test_loss": list(rng.random(n) + 1), "agop_aofe_ratio_mean": list(rng.random(n)),
            "agop_nonfinite": list(rng.integers(0, 5, n).astype(float)), "capture_seconds": list(rng.random(n))}
    cols = resolve_columns(runs)
    assert list(cols.metrics) == ["agop_aofe_ratio_mean"]
    assert "agop_nonfinite" in resolve_columns(runs, metrics=["agop_nonfinite"]).metrics  # named: taken


def test_confidence_intervals_write_rounding_noise_of_zero_as_zero():
    from types import SimpleNamespace

    from nil.cli.interval import _band, _ci

    assert _ci(SimpleNamespace(lo=4.6e-17, hi=1.0, defined=1.0, at_bound=0.0)) == "[0, 1]"
    assert _ci(SimpleNamespace(lo=-3.1e-18, hi=0.25, defined=1.0, at_bound=0.0)) == "[0, 0.25]"
    assert _band(0.0098, 0.0517) == "[0.0098, 0.0517]"  # small but real values are kept
    assert _band(1e-7, 2e-7) == "[1e-07, 2e-07]"


def test_a_wide_label_column_and_a_folding_text_column_share_the_width():
    """rich alone narrows the widest text column and then crops the table at the edge; nil gives
    each column its width so that nothing is cropped and the text folds."""
    from rich.console import Console

    cols = ["metric", "budget", "n", "spearman ρ", "p", "pearson r", "p "]
    cells = [["agop_participation_ratio_mean", "150k", "5", "-0.40 [-1.00, 1.00] (99.5% defined)", "0.51", "0.36",
              "0.0099"]] * 2
    con = Console(width=100, record=True, file=open(os.devnull, "w"))
    for t in render_table("x", cols, cells, left=("metric",), total=100):
        con.print(t)
    lines = con.export_text().splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert any(line.rstrip().endswith("0.0099 │") for line in lines), lines
    assert "agop_participation_ratio_mean" in "\n".join(lines) and "(99.5% defined)" in "\n".join(lines)


def test_llms_fits_with_its_sources_and_verdict(tmp_path):
    """The verdict and the source lines wrap too (they were single lines of up to 353 characters)."""
    text = _nil("llms", "--permutations", "200", cwd=tmp_path)
    _fits(text)
    assert "sources:" in text

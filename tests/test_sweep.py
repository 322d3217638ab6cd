"""nil.sweep and `nil sweep` as a user runs them: the runs table, resuming, recovery of interrupted
runs, the worker pool, capture columns, and the CLI."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from nil.models import param_count, solve_width
from nil.runs_table import append_rows, read_runs
from nil.sweep import PRESETS, plan_sweep, summarize, sweep
from nil.train import TrainConfig


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest (conftest)


TASK = {"in_dim": 8, "out_dim": 4, "teacher_width": 16, "n_val": 128, "n_test": 256, "val_subset": 64,
        "capture_subset": 32}
WIDTH = {"multiple": 2, "min_width": 4}
FAST = TrainConfig(lr=3e-3, batch_size=64, warmup_steps=5, eval_every=10)


def _sweep(out, **kw):
    args = dict(family="mlp", task="ts-mlp", budgets=[2000, 4000], depths=[1, 2, 3], seeds=2, out=out,
                data_ratio=2.0, task_options=TASK, width_options=WIDTH, train=FAST, capture=False,
                device="cpu", progress=False)
    args.update(kw)
    return sweep(**args)


def test_sweep_writes_one_correct_row_per_run(tmp_path):
    table = _sweep(tmp_path)
    assert len(table) == 12 and table["config_hash"].is_unique
    for _, r in table.iterrows():
        sol = solve_width("mlp", r.budget, r.depth, **WIDTH, in_dim=8, out_dim=4)
        assert (r.width, r.active_params, r.pad_params) == tuple(sol)
        assert r.active_params == param_count("mlp", r.depth, r.width, in_dim=8, out_dim=4).total
        assert r.active_params + r.pad_params == r.budget
        assert r.ratio == pytest.approx(r.depth / r.width) and r.pad_ratio == pytest.approx(r.pad_params / r.budget)
        assert r.n_train_samples == math.ceil(2.0 * r.budget / 4)
        assert r.steps == r.max_steps == math.ceil(1.5 * math.ceil(r.n_train_samples / 64))
        assert math.isfinite(r.test_loss) and math.isfinite(r.val_loss) and math.isfinite(r.train_loss)
        assert r.family == "mlp" and r.task == "ts-mlp" and r.nil_version and r.seconds > 0
        assert json.loads(r.config_json)["budget"] == r.budget
    assert set(table.groupby(["budget", "depth"]).seed.apply(tuple)) == {(0, 1)}
    assert pd.read_parquet(tmp_path / "runs.parquet").shape == table.shape
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert saved["runs"] == 12 and saved["already_done"] == 0
    idx = list((tmp_path / "runs").glob("*/subsets.npz"))
    assert len(idx) == 12


def test_rerun_skips_finished_runs_and_recovers_interrupted_ones(tmp_path):
    first = _sweep(tmp_path)
    again = _sweep(tmp_path)  # nothing to do: identical table, nothing retrained
    pd.testing.assert_frame_equal(first, again)
    # Interrupt two runs: one finished its files but not the table write (recovered as is), one
    # only started (redone).
    hashes = list(first["config_hash"])
    kept = first[~first["config_hash"].isin(hashes[:2])]
    (tmp_path / "runs.parquet").unlink()
    append_rows(tmp_path / "runs.parquet", kept.to_dict("records"))
    started_only = next(p for p in (tmp_path / "runs").iterdir() if p.name.endswith(hashes[1]))
    (started_only / "result.json").unlink()
    third = _sweep(tmp_path)
    assert len(third) == 12 and set(third["config_hash"]) == set(hashes)
    old = first.set_index("config_hash")["finished_at"]
    new = third.set_index("config_hash")["finished_at"]
    recovered = third.set_index("config_hash").loc[hashes[0]]
    assert recovered["finished_at"] == old[hashes[0]]  # from result.json, not retrained
    assert (started_only / "result.json").exists()
    redone = third.set_index("config_hash").loc[hashes[1]]
    assert redone["test_loss"] == pytest.approx(first.set_index("config_hash").loc[hashes[1], "test_loss"], rel=1e-6)
    assert (new.drop(hashes[:2]) == old.drop(hashes[:2])).all()


def test_runs_are_deterministic_and_new_settings_are_new_runs(tmp_path):
    a = _sweep(tmp_path / "a", budgets=[2000], depths=[2], seeds=1)
    b = _sweep(tmp_path / "b", budgets=[2000], depths=[2], seeds=1)
    assert a.loc[0, "test_loss"] == b.loc[0, "test_loss"] and a.loc[0, "config_hash"] == b.loc[0, "config_hash"]
    c = _sweep(tmp_path / "a", budgets=[2000], depths=[2], seeds=1, train=FAST.replace(lr=1e-3), append=True)
    assert len(c) == 2 and c["config_hash"].nunique() == 2


def test_another_configuration_into_the_same_out_is_refused_naming_the_difference(tmp_path):
    from nil.errors import NilValueError

    first = _sweep(tmp_path, budgets=[2000], depths=[2], seeds=1)
    before = (tmp_path / "runs.parquet").read_bytes()
    with pytest.raises(NilValueError) as e:
        _sweep(tmp_path, budgets=[2000], depths=[2], seeds=1, train=FAST.replace(lr=1e-3), data_ratio=3.0)
    msg = str(e.value)
    assert str(tmp_path) in msg and "1 runs of another configuration" in msg and "--append" in msg
    assert "train.lr = 0.001 given, 0.003 stored" in msg and "data_ratio = 3.0 given, 2.0 stored" in msg
    with pytest.raises(NilValueError, match=r"width_options.min_width = 6 given, 4 stored"):
        _sweep(tmp_path, budgets=[2000], depths=[2], seeds=1, width_options={**WIDTH, "min_width": 6})
    assert (tmp_path / "runs.parquet").read_bytes() == before  # nothing was trained or written
    # the same configuration resumes without a flag, and more budgets/depths/seeds extend it
    again = _sweep(tmp_path, budgets=[2000], depths=[2], seeds=1)
    pd.testing.assert_frame_equal(first, again)
    more = _sweep(tmp_path, budgets=[2000], depths=[1, 2], seeds=1)
    assert len(more) == 2


def test_plan_lists_refused_shapes():
    plan = plan_sweep("mlp", "ts-mlp", [2000], [1, 40, 200], 1, task_options=TASK, width_options=WIDTH)
    assert [r.depth for r in plan.runs] == [1]
    assert [s["depth"] for s in plan.skipped] == [40, 200]
    assert "above the maximum 15%" in plan.skipped[0]["reason"] and "does not fit" in plan.skipped[1]["reason"]


def test_worker_pool_matches_in_process_results(tmp_path):
    from nil.sweep import _Progress, _Recorder, _run_pool

    plan = plan_sweep("mlp", "ts-mlp", [2000], [1, 2], 1, data_ratio=2.0, task_options=TASK,
                      width_options=WIDTH, train=FAST)
    rec = _Recorder(tmp_path)
    _run_pool(plan.runs, ["cpu", "cpu"], rec, _Progress(False, 2), 1)
    pooled = read_runs(tmp_path).set_index("config_hash")
    local = _sweep(tmp_path / "local", budgets=[2000], depths=[1, 2], seeds=1).set_index("config_hash")
    assert set(pooled.index) == set(local.index)
    for h in local.index:
        assert pooled.loc[h, "test_loss"] == pytest.approx(local.loc[h, "test_loss"], rel=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("NIL_TEST_RAY"), reason="starts a local Ray instance (~35 s); set NIL_TEST_RAY=1")
def test_ray_local_runs_match_in_process_results(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray_table = _sweep(tmp_path / "ray", budgets=[2000], depths=[1, 2], seeds=1, ray="local").set_index("config_hash")
    local = _sweep(tmp_path / "local", budgets=[2000], depths=[1, 2], seeds=1).set_index("config_hash")
    assert set(ray_table.index) == set(local.index)
    for h in local.index:
        assert ray_table.loc[h, "test_loss"] == pytest.approx(local.loc[h, "test_loss"], rel=1e-6)
    assert len(list((tmp_path / "ray" / "runs").glob("*/result.json"))) == 2


def test_capture_columns_enter_the_table(tmp_path):
    table = _sweep(tmp_path, budgets=[2000], depths=[2], seeds=1, capture={"project": 4, "probes": 4})
    row = table.iloc[0]
    for col in ("agop_aofe_ratio_mean", "out_aofe_ratio", "agop_aofe_ratio_L0", "nfa_pearson_mean"):
        assert col in table.columns, col
    assert 0.0 <= row["out_aofe_ratio"] <= 1.0 and 0.0 <= row["agop_aofe_ratio_mean"] <= 1.0
    assert row["capture_seconds"] > 0


def test_summary_marks_the_best_depth_per_budget():
    table = pd.DataFrame({
        "budget": [1, 1, 1, 1, 2, 2], "depth": [1, 1, 2, 2, 1, 2], "width": [4, 4, 2, 2, 8, 4],
        "ratio": [0.25, 0.25, 1, 1, 0.125, 0.5], "test_loss": [1.0, 1.2, 0.9, 0.95, 0.5, 0.7],
        "val_loss": [1.0] * 6, "seed": [0, 1, 0, 1, 0, 0],
    })
    rows = {(r["budget"], r["depth"]): r for r in summarize(table)}
    assert rows[(1, 2)]["best"] and not rows[(1, 1)]["best"] and rows[(2, 1)]["best"]
    assert rows[(1, 1)]["test_loss"] == pytest.approx(1.1)
    assert rows[(1, 1)]["test_loss_se"] == pytest.approx(0.1)
    assert math.isnan(rows[(2, 2)]["test_loss_se"])


def test_cli_sweep_plan_json_and_resume(run_cli, tmp_path, capsys):
    from nil.cli import main

    args = ["sweep", "--family", "mlp", "--task", "ts-mlp", "--budgets", "2k,4k", "--depths", "1-2", "--seeds", "1",
            "--data-ratio", "2", "--out", str(tmp_path), "--task-arg", "in_dim=8", "--task-arg", "out_dim=4",
            "--task-arg", "teacher_width=16", "--task-arg", "n_test=256", "--multiple", "2", "--min-width", "4",
            "--lr", "3e-3", "--batch-size", "64", "--warmup", "5", "--eval-every", "10", "--no-capture",
            "--device", "cpu", "--no-progress"]
    assert main([*args, "--plan", "--json"]) == 0  # the planner through the same entry point, in-process
    plan = json.loads(capsys.readouterr().out)
    assert plan["runs"] == 4 and {s["budget"] for s in plan["shapes"]} == {2000, 4000}
    assert not (tmp_path / "runs.parquet").exists()
    out = json.loads(run_cli(*args, "--json", check=True).stdout)
    assert out["runs"] == 4 and sum(r["best"] for r in out["summary"]) == 2
    before = (tmp_path / "runs.parquet").stat().st_mtime_ns
    text = run_cli(*args, check=True).stdout
    assert "Shape sweep" in text and (tmp_path / "runs.parquet").stat().st_mtime_ns == before
    other = [*args[:args.index("--lr") + 1], "1e-3", *args[args.index("--lr") + 2:]]
    other = [*other[:other.index("--budgets") + 1], "2k", *other[other.index("--budgets") + 2:]]
    from cli_helpers import one_line_error

    one_line_error(run_cli(*other), str(tmp_path), "train.lr = 0.001 given, 0.003 stored", "--append")
    assert (tmp_path / "runs.parquet").stat().st_mtime_ns == before
    out = json.loads(run_cli(*other, "--append", "--json", check=True).stdout)
    assert out["runs"] == 6
    assert main(["sweep", "--family", "gpt", "--task", "digits", "--budgets", "1k", "--depths", "1",
                 "--out", str(tmp_path / "x")]) == 1
    assert "supports the model families" in capsys.readouterr().err


def test_demo_preset_is_a_valid_sweep():
    p = PRESETS["demo"]
    plan = plan_sweep(p["family"], p["task"], p["budgets"], p["depths"], p["seeds"], data_ratio=p["data_ratio"],
                      task_options=p["task_options"], width_options=p["width_options"], train=p["train"],
                      capture=p["capture"])
    assert len(p["budgets"]) == 2 and len(p["depths"]) >= 5 and p["seeds"] == 2
    assert len(plan.runs) == 2 * len(p["depths"]) * 2 and not plan.skipped


FAMILY_TASKS = [
    ("gpt", "bytes", {"seq_len": 32, "val_fraction": 0.2, "test_fraction": 0.2, "capture_windows": 16}, {}, 20000),
    ("gpt", "ts-gpt", {"in_dim": 12, "out_dim": 4, "n_test": 64, "n_val": 64, "capture_subset": 16}, {}, 8000),
    ("gru", "ts-mlp", {"in_dim": 12, "out_dim": 4, "n_test": 64, "n_val": 64, "capture_subset": 16}, {}, 3000),
    ("cnn", "digits", {"capture_subset": 16}, {}, 5000),
    ("mlp", "digits", {"capture_subset": 16}, {"style": "residual"}, 5000),
]


@pytest.mark.parametrize("family,task,task_options,model_options,budget", FAMILY_TASKS,
                         ids=[f"{f}-{t}" for f, t, *_ in FAMILY_TASKS])
def test_every_family_and_task_sweeps_with_capture(tmp_path, family, task, task_options, model_options, budget):
    if task == "bytes":
        corpus = tmp_path / "corpus"
        corpus.mkdir()
        for i in range(30):
            (corpus / f"{i}.py").write_text(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" * (10 + i))
        task_options = {**task_options, "corpus": str(corpus)}
    table = _sweep(tmp_path / "out", family=family, task=task, budgets=[budget], depths=[2], seeds=1,
                   data_ratio=1.0, task_options=task_options, model_options=model_options,
                   width_options={"multiple": 4, "min_width": 4, "max_pad": 0.5},
                   train=FAST.replace(max_steps=15, batch_size=32), capture={"project": 4, "probes": 2})
    row = table.iloc[0]
    assert row.active_params + row.pad_params == budget and row.steps == 15
    assert math.isfinite(row.test_loss) and 0.0 <= row.out_aofe_ratio <= 1.0
    assert row.n_layers == 2 and math.isfinite(row.agop_aofe_ratio_L1)
    # Only a token-embedding model reports the WᵀW statistics of an input embedding.
    assert math.isfinite(row.wtw_emb_aofe_ratio) == (task == "bytes")
    assert (row.data_fingerprint is not None) == (task == "bytes")  # the corpus's SHA-256, to compare sessions


def test_a_killed_sweep_resumes_without_retraining_finished_runs(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    args = [sys.executable, "-m", "nil", "sweep", "--family", "mlp", "--task", "ts-mlp", "--budgets", "4k",
            "--depths", "1-3", "--seeds", "2", "--data-ratio", "10", "--out", str(tmp_path), "--task-arg", "in_dim=8",
            "--task-arg", "out_dim=4", "--task-arg", "teacher_width=16", "--task-arg", "n_test=256", "--multiple", "2",
            "--min-width", "4", "--lr", "3e-3", "--batch-size", "64", "--warmup", "5", "--eval-every", "50",
            "--no-capture", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(repo / "python")}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    table = tmp_path / "runs.parquet"
    runs = tmp_path / "runs"

    def mid_run() -> bool:  # a row is in the table and a later run has started but not finished
        n_started = len(list(runs.glob("*/started.json")))
        return table.exists() and n_started > len(list(runs.glob("*/result.json")))

    deadline = time.time() + 120
    while not mid_run() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.wait()
    first = read_runs(table)
    assert 1 <= len(first) < 6
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=300)
    final = read_runs(table)
    assert len(final) == 6 and final["config_hash"].is_unique
    kept = final.set_index("config_hash").loc[first["config_hash"], "finished_at"]
    assert list(kept) == list(first["finished_at"])  # finished runs were not retrained


def test_cli_sweeps_the_bottleneck_toy(run_cli, tmp_path):
    """`--task bottleneck` is reachable from the CLI (issue 13): the family defaults to the task's
    own, the width is the bottleneck solved from the budget, the training set is data_size points,
    and the metrics are the closed-form AGOPs."""
    from cli_helpers import one_line_error
    from nil.tasks.bottleneck import bottleneck_param_count

    args = ["sweep", "--task", "bottleneck", "--budgets", "3k,5k", "--depths", "1", "--seeds", "1",
            "--task-arg", "data_size=200", "--task-arg", "n_test=500", "--task-arg", "n_val=200", "--max-steps", "30",
            "--device", "cpu", "--no-progress", "--out", str(tmp_path / "bn")]
    out = json.loads(run_cli(*args, "--json", check=True).stdout)
    assert out["runs"] == 2
    table = read_runs(tmp_path / "bn")
    assert list(table["width"]) == [2, 4] and set(table["family"]) == {"bottleneck"}
    assert list(table["active_params"]) == [bottleneck_param_count(1, w).total for w in (2, 4)] == [3000, 5000]
    assert set(table["n_train_samples"]) == {200} and set(table["loss_kind"]) == {"recon"}
    for col in ("agop_aofe_ratio", "input_agop_aofe_ratio", "wtw_aofe_ratio"):
        assert table[col].between(0, 1).all(), col
    one_line_error(run_cli(*args[:6], "1,2", *args[7:]), "expected depth 1, found 2")

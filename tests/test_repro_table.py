"""The stored reproduction table (docs/results/repro-ntp-1seed.parquet) as docs/reproduction.md
reads it: complete budgets of the reference protocol, and the CLI's summary of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "results" / "repro-ntp-1seed.parquet"
DEPTHS = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24]


def test_every_stored_budget_has_the_reference_depths_and_step_counts() -> None:
    """Budgets are swept in order, so only the largest may be partial (the sweep in progress)."""
    t = pd.read_parquet(TABLE)
    largest = t["budget"].max()
    for budget, g in t.groupby("budget"):
        if budget == largest:
            assert set(g["depth"]) <= set(DEPTHS) and g["depth"].is_unique, budget
        else:
            assert sorted(g["depth"]) == DEPTHS, budget
        assert g["max_steps"].nunique() == 1 and (g["steps"] <= g["max_steps"]).all(), budget
        assert g["config_hash"].is_unique
    assert {1647, 3296} <= set(t["max_steps"])  # METHOD §4.4 with floor rounding at 0.3M and 0.6M
    assert not t["diverged"].any()


def test_the_summary_keeps_a_censored_set_edge() -> None:
    """The 'In short' sentence says ≤ where the 95% set reaches the sweep's smallest ratio (a
    bare number there would claim a lower edge the data do not give)."""
    out = subprocess.run([sys.executable, "-m", "nil", "interval", str(TABLE), "--bootstrap", "0"],
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"}, check=True).stdout
    short = " ".join(out[out.index("In short:"):].split())
    assert "at 300k (95% set [≤0.00781," in short, short


def test_the_stored_sweep_says_why_its_last_call_stopped_early() -> None:
    """The last call stopped at 490 s of its 545 s because no run left could finish: the line
    says that, not that the limit was reached."""
    import json

    from nil.cli.sweep import incomplete_line

    outcome = json.loads((ROOT / "docs" / "results" / "repro-ntp-1seed-sweep.json").read_text())["outcome"]
    assert outcome["time_limit_reached"] is False and not outcome["complete"]
    line = incomplete_line(outcome)
    assert line.startswith("stopped at 490 s: no run left could finish within the 545 s limit: 4 runs finished"), line
    assert incomplete_line({**outcome, "time_limit_reached": True}).startswith("time limit of 545 s reached: ")

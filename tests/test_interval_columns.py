"""The runs-table reader never drops a column and falls back to another because of one bad cell:
it names the column, the row and the value, and stops (issue 11 §3)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import nil
from nil.interval import resolve_columns


def _table(**overrides: list) -> dict[str, list]:
    t = {"budget": [1e6] * 4, "ratio": [0.01, 0.02, 0.04, 0.08], "test_loss": [1.2, 1.0, 1.1, 1.3],
         "n_params": [9e5, 9e5, 9e5, 9e5], "depth": [2, 4, 8, 16], "d_model": [200, 200, 200, 200]}
    t.update(overrides)
    return t


def _csv(path: Path, table: dict[str, list]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(table))
        w.writerows(zip(*table.values()))
    return path


def test_one_bad_budget_cell_is_an_error_not_a_fallback_to_n_params(tmp_path):
    path = _csv(tmp_path / "runs.csv", _table(budget=["1e6", "1e6", "1e6 (approx)", "1e6"]))
    with pytest.raises(nil.NilValueError) as info:
        resolve_columns(path)
    msg = str(info.value)
    for w in (str(path), "'budget'", "row 3", "line 4", "'1e6 (approx)'", "not a number"):
        assert w in msg, (w, msg)


def test_one_bad_ratio_cell_is_an_error_not_a_fallback_to_depth_over_width(tmp_path):
    path = _csv(tmp_path / "runs.csv", _table(ratio=["0.01", "0.02", "n/a?", "0.08"]))
    with pytest.raises(nil.NilValueError, match=r"ratio column 'ratio': row 3 .* 'n/a\?'"):
        resolve_columns(path)
    no_ratio = _table(depth=[2, "four", 8, 16])
    del no_ratio["ratio"]
    with pytest.raises(nil.NilValueError, match=r"column 'depth': row 2 .* 'four'"):
        resolve_columns(no_ratio)


def test_a_bool_budget_is_an_error_not_one(tmp_path):
    with pytest.raises(nil.NilValueError, match="budget column 'budget'.*bool"):
        resolve_columns(_table(budget=[True, True, True, True]))
    with pytest.raises(nil.NilValueError, match="budget column 'budget'.*row 2 holds True.*bool"):
        resolve_columns(_table(budget=[1e6, True, 1e6, 1e6]))


def test_explicit_and_loss_columns_are_checked_too():
    with pytest.raises(nil.NilValueError, match="loss column 'test_loss': row 1"):
        resolve_columns(_table(test_loss=["oops", 1.0, 1.1, 1.3]))
    with pytest.raises(nil.NilValueError, match="budget column 'n_params'"):
        resolve_columns(_table(n_params=["x", 1, 2, 3]), budget="n_params")


def test_empty_cells_are_missing_values_and_bad_metric_columns_are_left_out_with_a_note():
    cols = resolve_columns(_table(test_loss=["", 1.0, 1.1, 1.3], wtw_aofe_ratio=[0.1, "?", 0.3, 0.4],
                                  agop_aofe=[0.1, 0.2, 0.3, 0.4]))
    assert np.isnan(cols.arrays["test_loss"][0])
    assert cols.metrics == ("agop_aofe",)
    assert any("'wtw_aofe_ratio' left out" in n and "'?'" in n for n in cols.notes)


def test_csv_with_a_column_named_twice_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("budget,ratio,ratio,test_loss\n1e6,0.01,0.02,1.0\n")
    with pytest.raises(nil.FormatError, match="'ratio' appears twice"):
        resolve_columns(path)

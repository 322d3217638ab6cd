"""Shared output helpers of the CLI: rich tables for people, JSON/CSV for machines."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_table", "print_json", "print_csv", "fmt"]


def fmt(v: Any) -> str:
    """A compact human rendering of a cell (floats to 4 significant digits, NaN as 'nan')."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Prints ``rows`` as a table with the given columns."""
    table = Table(title=title, header_style="bold")
    for c in columns:
        table.add_column(c, justify="left" if c in ("layer", "name", "statistic") else "right")
    for r in rows:
        table.add_row(*(fmt(r.get(c, "")) for c in columns))
    Console(width=max(100, Console().width)).print(table)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "tolist"):
        return _jsonable(v.tolist())
    return v


def print_json(obj: Any) -> None:
    """Prints strict JSON (NaN becomes null) to stdout."""
    json.dump(_jsonable(obj), sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def print_csv(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Prints rows as CSV with a header."""
    w = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in columns})

"""Reading a runs table from any common container and finding its budget, ratio and loss columns.

nil's own runs tables name them ``budget``, ``ratio`` and ``test_loss``; the reference's CSVs use
``target_n``, ``depth`` and ``d_model`` (or ``depth_over_d_model`` / ``alpha``) and ``test_ce`` or
``test_mse``. When a default name is absent the first known alias present is used, and every
choice is reported so that a user sees which columns a result came from.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NilValueError

__all__ = ["Columns", "load_columns", "resolve_columns"]

BUDGET_ALIASES = ("budget", "target_n", "n_params", "param_budget", "total_params", "N")
RATIO_ALIASES = ("ratio", "depth_over_width", "depth_over_d_model", "alpha", "aspect_ratio", "r_dw")
DEPTH_ALIASES = ("depth", "n_layer", "n_layers", "num_layers", "layers")
WIDTH_ALIASES = ("d_model", "width", "n_embd", "hidden", "hidden_size", "channels")
LOSS_ALIASES = ("test_loss", "test_ce", "test_mse", "loss", "val_loss", "val_ce", "val_mse")
METRIC_MARKERS = ("aofe", "cos2", "wtw", "agop", "participation", "effective_rank", "wmc2")


@dataclass(frozen=True)
class Columns:
    """The columns a fit used: names, the float64 arrays, and how each was chosen."""

    source: str
    budget: str
    ratio: str
    loss: str
    metrics: tuple[str, ...]
    arrays: dict[str, np.ndarray] = field(repr=False)
    notes: tuple[str, ...] = ()


def _float_column(values: Any) -> np.ndarray | None:
    """The column as float64 (empty strings as NaN), or None when it is not numeric."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    out = np.empty(len(arr), dtype=np.float64)
    for i, v in enumerate(arr):
        if v is None or (isinstance(v, str) and not v.strip()):
            out[i] = math.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            return None
    return out


def _read_csv(path: Path) -> dict[str, list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise NilValueError(f"{path}: expected a CSV runs table with a header row, found an empty file")
        cols: dict[str, list[str]] = {name: [] for name in reader.fieldnames}
        for row in reader:
            for name in reader.fieldnames:
                cols[name].append(row.get(name) or "")
    return cols


def load_columns(runs: Any) -> tuple[str, dict[str, np.ndarray]]:
    """Numeric columns of a runs table as float64 arrays, with a description of the source.

    ``runs`` is a pandas or polars DataFrame, a pyarrow Table, a mapping of column name to values,
    the path of a CSV or Parquet file, or a ``nil sweep`` directory (its runs.parquet). Non-numeric
    columns are left out.
    """
    raw: Mapping[str, Any]
    if isinstance(runs, (str, Path)):
        path = Path(runs)
        if path.is_dir() and (path / "runs.parquet").is_file():  # a `nil sweep` output directory
            path = path / "runs.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: runs table not found")
        source = str(path)
        if path.suffix.lower() in (".parquet", ".pq"):
            try:
                import pyarrow.parquet as pq
            except ImportError as e:  # pragma: no cover - pyarrow is a declared extra
                raise NilValueError(f"{path}: reading Parquet needs pyarrow (pip install 'nil[tables]')") from e
            table = pq.read_table(path)
            raw = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
        else:
            raw = _read_csv(path)
    else:
        mod = type(runs).__module__.split(".")[0]
        source = f"{mod} {type(runs).__name__}"
        if mod == "pandas":
            raw = {str(c): runs[c].to_numpy() for c in runs.columns}
        elif mod == "polars":
            raw = {str(c): runs.get_column(c).to_numpy() for c in runs.columns}
        elif mod == "pyarrow":
            raw = {c: runs.column(c).to_numpy(zero_copy_only=False) for c in runs.column_names}
        elif isinstance(runs, Mapping):
            raw = {str(k): v for k, v in runs.items()}
        else:
            raise NilValueError(
                "fit_interval: expected a pandas/polars DataFrame, pyarrow Table, dict of columns or a "
                f"CSV/Parquet path, found {type(runs).__name__}"
            )
    cols: dict[str, np.ndarray] = {}
    for name, values in raw.items():
        arr = _float_column(values)
        if arr is not None and arr.ndim == 1:
            cols[name] = arr
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise NilValueError(f"{source}: columns have different lengths {sorted(lengths)}")
    return source, cols


def _pick(cols: Mapping[str, np.ndarray], wanted: str, default: str, aliases: Sequence[str], what: str,
          source: str, notes: list[str]) -> str:
    if wanted in cols:
        return wanted
    if wanted != default:
        raise NilValueError(
            f"{source}: {what} column {wanted!r} not found; numeric columns are {sorted(cols)}"
        )
    for alias in aliases:
        if alias in cols and np.isfinite(cols[alias]).any():
            notes.append(f"{what} column: {alias!r} (auto-detected; {default!r} absent)")
            return alias
    raise NilValueError(
        f"{source}: no {what} column: expected {default!r} or one of {list(aliases)}, found numeric "
        f"columns {sorted(cols)}; name it with the {what} argument (CLI: --{what}-col)"
    )


def resolve_columns(
    runs: Any,
    budget: str = "budget",
    ratio: str = "ratio",
    loss: str = "test_loss",
    metrics: Sequence[str] | None = None,
    frontier_x: Sequence[str] | None = None,
) -> Columns:
    """Loads ``runs`` and decides which columns are budget, ratio, loss and metrics.

    The ratio may be computed as depth/width when no ratio column exists (or when the default name
    is absent and depth and width columns are present: exact, unlike a rounded stored ratio).
    ``metrics=None`` takes every numeric column whose name marks an interaction metric (aofe, cos2,
    wtw, agop, ...); ``frontier_x`` columns are always included among the metrics.
    """
    source, cols = load_columns(runs)
    notes: list[str] = []
    b = _pick(cols, budget, "budget", BUDGET_ALIASES, "budget", source, notes)
    if ratio in cols:
        r = ratio
    elif ratio != "ratio":
        raise NilValueError(f"{source}: ratio column {ratio!r} not found; numeric columns are {sorted(cols)}")
    else:
        depth = next((c for c in DEPTH_ALIASES if c in cols), None)
        width = next((c for c in WIDTH_ALIASES if c in cols), None)
        if depth is not None and width is not None:
            r = f"{depth}/{width}"
            cols[r] = cols[depth] / cols[width]
            notes.append(f"ratio column: {depth}/{width} computed exactly ('ratio' absent)")
        else:
            r = _pick(cols, ratio, "ratio", RATIO_ALIASES, "ratio", source, notes)
    lo = _pick(cols, loss, "test_loss", LOSS_ALIASES, "loss", source, notes)
    used = {b, r, lo}
    chosen: list[str] = []
    if metrics is None:
        chosen = [c for c in cols if c not in used and any(m in c.lower() for m in METRIC_MARKERS)]
    else:
        for m in metrics:
            if m not in cols:
                raise NilValueError(f"{source}: metric column {m!r} not found; numeric columns are {sorted(cols)}")
            chosen.append(m)
    for x in frontier_x or ():
        if x not in cols:
            raise NilValueError(f"{source}: frontier column {x!r} not found; numeric columns are {sorted(cols)}")
        if x not in chosen:
            chosen.append(x)
    n_nan = int((~np.isfinite(cols[lo])).sum())
    if n_nan:
        notes.append(f"{n_nan} of {len(cols[lo])} rows have no finite {lo!r} and were left out")
    arrays = {k: np.ascontiguousarray(cols[k], dtype=np.float64) for k in (b, r, lo, *chosen)}
    return Columns(source, b, r, lo, tuple(chosen), arrays, tuple(notes))

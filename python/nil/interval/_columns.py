"""Reading a runs table from any common container and finding its budget, ratio and loss columns.

nil's own runs tables name them ``budget``, ``ratio`` and ``test_loss``; the reference's CSVs use
``target_n``, ``depth`` and ``d_model`` (or ``depth_over_d_model`` / ``alpha``) and ``test_ce`` or
``test_mse``. When a default name is absent the first known alias present is used, and every
choice is reported so that a user sees which columns a result came from.

A column chosen this way must hold numbers in every cell (empty cells are missing values): one
cell that is not a number, or a bool, stops with an error naming the column, the row and the
value, and never makes the reader fall back to another column. A file that is not a UTF-8 CSV
or not a readable Parquet file is a ``FormatError`` naming it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, NilValueError

__all__ = ["Columns", "load_columns", "resolve_columns"]

BUDGET_ALIASES = ("budget", "target_n", "n_params", "param_budget", "total_params", "N")
RATIO_ALIASES = ("ratio", "depth_over_width", "depth_over_d_model", "alpha", "aspect_ratio", "r_dw")
DEPTH_ALIASES = ("depth", "n_layer", "n_layers", "num_layers", "layers")
WIDTH_ALIASES = ("d_model", "width", "n_embd", "hidden", "hidden_size", "channels")
LOSS_ALIASES = ("test_loss", "test_ce", "test_mse", "loss", "val_loss", "val_ce", "val_mse")
METRIC_MARKERS = ("aofe", "cos2", "wtw", "agop", "participation", "effective_rank", "wmc2", "symbolic")
#: Name endings of bookkeeping columns that carry a metric's marker but are counts or times, not
#: metrics (``agop_nonfinite``: rows left out; ``capture_seconds``): never picked by default.
COUNT_SUFFIXES = ("_nonfinite", "_count", "_rows", "_seconds", "_steps", "_samples", "_n")


def is_default_metric(name: str) -> bool:
    """Whether column ``name`` is an interaction metric picked when no metrics are named."""
    low = name.lower()
    return any(m in low for m in METRIC_MARKERS) and not low.endswith(COUNT_SUFFIXES)


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


@dataclass(frozen=True)
class _Unparsable:
    """Why a column is not numeric: the first cell at fault (0-based data row) and its value."""

    row: int
    value: Any
    reason: str


@dataclass(frozen=True)
class _Table:
    source: str
    cols: dict[str, np.ndarray]
    bad: dict[str, _Unparsable]
    csv: bool


def _float_column(values: Any) -> tuple[np.ndarray | None, _Unparsable | None]:
    """The column as float64 (empty cells as NaN), or None and the first cell that is not a number.

    A bool cell (or a bool column) is not a number: True must not become a budget of 1.0.
    """
    if isinstance(values, (list, tuple)):  # numpy would turn [1e6, True] into [1e6, 1.0]
        for i, v in enumerate(values):
            if isinstance(v, (bool, np.bool_)):
                return None, _Unparsable(i, bool(v), "a bool, not a number")
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return None, _Unparsable(0, bool(arr[0]) if len(arr) else None, "a bool column")
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64), None
    if arr.ndim != 1:
        return None, _Unparsable(0, None, f"a {arr.ndim}-dimensional column")
    out = np.empty(len(arr), dtype=np.float64)
    for i, v in enumerate(arr):
        if isinstance(v, np.generic):
            v = v.item()
        if v is None or (isinstance(v, str) and not v.strip()):
            out[i] = math.nan
            continue
        if isinstance(v, (bool, np.bool_)):
            return None, _Unparsable(i, v, "a bool, not a number")
        try:
            out[i] = float(v)
        except (TypeError, ValueError, OverflowError):
            return None, _Unparsable(i, v, "not a number")
    return out, None


def _read_csv(path: Path) -> dict[str, list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise NilValueError(f"{path}: expected a CSV runs table with a header row, found an empty file")
            names = list(reader.fieldnames)
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise FormatError(f"{path}: column {twice[0]!r} appears twice in the header row")
            cols: dict[str, list[str]] = {name: [] for name in names}
            for row in reader:
                for name in names:
                    cols[name].append(row.get(name) or "")
    except UnicodeDecodeError as e:
        raise FormatError(
            f"{path}: not a UTF-8 text file (byte {e.start} is 0x{e.object[e.start]:02x}); expected a CSV "
            "runs table, or a .parquet file"
        ) from None
    except csv.Error as e:
        raise FormatError(f"{path}: not a readable CSV runs table: {e}") from None
    return cols


def _read_parquet(path: Path) -> dict[str, Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow is a declared extra
        raise NilValueError(f"{path}: reading Parquet needs pyarrow (pip install 'nil[tables]')") from e
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises ArrowInvalid, ArrowIOError, OSError ... for bad files
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise FormatError(f"{path}: not a readable Parquet file: {first}") from None
    raw: dict[str, Any] = {}
    for c in table.column_names:
        try:
            raw[c] = table.column(c).to_numpy(zero_copy_only=False)
        except Exception:  # nested or extension types: not a column of numbers
            raw[c] = np.array([str(table.column(c).type)], dtype=object)
    return raw


def _load(runs: Any) -> _Table:
    raw: Mapping[str, Any]
    is_csv = False
    if isinstance(runs, (str, Path)):
        path = Path(runs)
        if path.is_dir() and (path / "runs.parquet").is_file():  # a `nil sweep` output directory
            path = path / "runs.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: runs table not found")
        source = str(path)
        if path.suffix.lower() in (".parquet", ".pq"):
            raw = _read_parquet(path)
        else:
            raw = _read_csv(path)
            is_csv = True
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
    bad: dict[str, _Unparsable] = {}
    for name, values in raw.items():
        arr, why = _float_column(values)
        if arr is not None and arr.ndim == 1:
            cols[name] = arr
        elif why is not None:
            bad[name] = why
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise NilValueError(f"{source}: columns have different lengths {sorted(lengths)}")
    return _Table(source, cols, bad, is_csv)


def load_columns(runs: Any) -> tuple[str, dict[str, np.ndarray]]:
    """Numeric columns of a runs table as float64 arrays, with a description of the source.

    ``runs`` is a pandas or polars DataFrame, a pyarrow Table, a mapping of column name to values,
    the path of a CSV or Parquet file, or a ``nil sweep`` directory (its runs.parquet). Columns
    that are not numbers are left out here; ``resolve_columns`` refuses to use one.
    """
    t = _load(runs)
    return t.source, t.cols


def _unparsable(t: _Table, name: str, what: str) -> NilValueError:
    """The error for using column ``name`` as ``what`` when one of its cells is not a number."""
    b = t.bad[name]
    where = f"row {b.row + 1}" + (f" (line {b.row + 2} of the file)" if t.csv else "")
    return NilValueError(
        f"{t.source}: {what} column {name!r}: {where} holds {b.value!r}, {b.reason}; fix that cell "
        f"(or name another column with the {what} argument, CLI --{what}-col) — nil does not fall "
        "back to another column"
    )


def _pick(t: _Table, wanted: str, default: str, aliases: Sequence[str], what: str, notes: list[str]) -> str:
    cols = t.cols
    if wanted in cols:
        return wanted
    if wanted in t.bad:
        raise _unparsable(t, wanted, what)
    if wanted != default:
        raise NilValueError(
            f"{t.source}: {what} column {wanted!r} not found; numeric columns are {sorted(cols)}"
        )
    for alias in aliases:
        if alias in t.bad:
            raise _unparsable(t, alias, what)
        if alias in cols and np.isfinite(cols[alias]).any():
            notes.append(f"{what} column: {alias!r} (auto-detected; {default!r} absent)")
            return alias
    raise NilValueError(
        f"{t.source}: no {what} column: expected {default!r} or one of {list(aliases)}, found numeric "
        f"columns {sorted(cols)}; name it with the {what} argument (CLI: --{what}-col)"
    )


def _first_present(t: _Table, aliases: Sequence[str], what: str) -> str | None:
    """The first of ``aliases`` the table has; an error if that one is not numeric."""
    for c in aliases:
        if c in t.bad:
            raise _unparsable(t, c, what)
        if c in t.cols:
            return c
    return None


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
    wtw, agop, ...), except counts and times (``agop_nonfinite``, ``*_seconds``); ``frontier_x`` columns are always included among the metrics.
    """
    t = _load(runs)
    source, cols = t.source, t.cols
    notes: list[str] = []
    b = _pick(t, budget, "budget", BUDGET_ALIASES, "budget", notes)
    if ratio in cols:
        r = ratio
    elif ratio in t.bad:
        raise _unparsable(t, ratio, "ratio")
    elif ratio != "ratio":
        raise NilValueError(f"{source}: ratio column {ratio!r} not found; numeric columns are {sorted(cols)}")
    else:
        depth = _first_present(t, DEPTH_ALIASES, "depth (for the ratio)")
        width = _first_present(t, WIDTH_ALIASES, "width (for the ratio)")
        if depth is not None and width is not None:
            r = f"{depth}/{width}"
            cols[r] = cols[depth] / cols[width]
            notes.append(f"ratio column: {depth}/{width} computed exactly ('ratio' absent)")
        else:
            r = _pick(t, ratio, "ratio", RATIO_ALIASES, "ratio", notes)
    lo = _pick(t, loss, "test_loss", LOSS_ALIASES, "loss", notes)
    used = {b, r, lo}
    chosen: list[str] = []
    if metrics is None:
        chosen = [c for c in cols if c not in used and is_default_metric(c)]
        for c, why in t.bad.items():
            if c not in used and is_default_metric(c):
                notes.append(f"metric column {c!r} left out: row {why.row + 1} holds {why.value!r}, {why.reason}")
    else:
        for m in metrics:
            if m in t.bad:
                raise _unparsable(t, m, "metric")
            if m not in cols:
                raise NilValueError(f"{source}: metric column {m!r} not found; numeric columns are {sorted(cols)}")
            chosen.append(m)
    for x in frontier_x or ():
        if x in t.bad:
            raise _unparsable(t, x, "frontier")
        if x not in cols:
            raise NilValueError(f"{source}: frontier column {x!r} not found; numeric columns are {sorted(cols)}")
        if x not in chosen:
            chosen.append(x)
    n_nan = int((~np.isfinite(cols[lo])).sum())
    if n_nan:
        notes.append(f"{n_nan} of {len(cols[lo])} rows have no finite {lo!r} and were left out")
    arrays = {k: np.ascontiguousarray(cols[k], dtype=np.float64) for k in (b, r, lo, *chosen)}
    return Columns(source, b, r, lo, tuple(chosen), arrays, tuple(notes))


def is_per_layer(metric: str) -> bool:
    """A per-layer column (``agop_aofe_ratio_L3``): defined only for shapes that deep, so shown
    (tables, figures) only when asked for; their layer means are the default."""
    import re

    return re.search(r"_L\d+$", metric) is not None

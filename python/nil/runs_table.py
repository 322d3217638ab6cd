"""The runs table of a sweep: one row per trained (budget, depth, seed), stored as Parquet.

Writes are atomic (temporary file in the same directory, fsync, rename, directory fsync), so a
crash at any moment leaves either the old or the new table, never a torn one. ``append_rows``
rewrites the whole table (sweeps hold hundreds of rows, not millions); columns missing from some
rows (e.g. per-layer metrics of deeper models) are filled with nulls. docs/sweep.md is the schema.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._optional import require
from .errors import FormatError

__all__ = ["read_runs", "append_rows", "atomic_write_bytes", "atomic_write_json", "RUNS_FILE"]

RUNS_FILE = "runs.parquet"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Writes ``data`` to ``path`` via a temporary sibling, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - directories cannot be fsynced on some platforms
        pass


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Writes ``obj`` as indented JSON atomically (NaN written as null)."""
    text = json.dumps(_json_safe(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return str(v)
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def read_runs(path: str | os.PathLike[str]) -> Any:
    """The runs table at ``path`` (a Parquet file or a sweep directory) as a pandas DataFrame;
    an empty frame if the file does not exist yet."""
    pd: Any = require("pandas", "the runs table", extra="tables")
    require("pyarrow", "the runs table (Parquet)", extra="tables")  # else a missing engine reads as a damaged file
    p = Path(path)
    if p.is_dir():
        p = p / RUNS_FILE
    if not p.exists():
        return pd.DataFrame()
    try:
        return pd.read_parquet(p)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise FormatError(f"{p}: not a readable Parquet runs table ({e}); it was left untouched") from e


def append_rows(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> int:
    """Appends ``rows`` to the Parquet table at ``path`` atomically; returns the new row count."""
    pd: Any = require("pandas", "the runs table", extra="tables")

    if not rows:
        return len(read_runs(path))
    old = read_runs(path)
    new = pd.DataFrame([dict(r) for r in rows])
    table = new if old.empty else pd.concat([old, new], ignore_index=True, sort=False)
    data = table.to_parquet(index=False)
    atomic_write_bytes(path, data)
    return len(table)

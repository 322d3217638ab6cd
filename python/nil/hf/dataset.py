"""Documents of a local dataset for ``nil capture --hf DIR --dataset PATH``, offline.

Like Bergson's ``build --dataset D --split S --prompt_column text``, but nothing is downloaded: PATH
is a file (``.jsonl``/``.json``: one object per line or a JSON list of objects; ``.csv``;
``.parquet``; ``.txt``: the whole file is one document) or a directory such as a local snapshot
of a Hugging Face dataset repository, whose files of split ``split`` are read in sorted path order:
those whose name or parent directory starts with the split name (``data/train-00000-of-00002.parquet``,
``train.jsonl``, ``train/part-0.csv``). ``column`` names the text column. Documents are yielded one
at a time, so only what the requested tokens need is read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import FormatError, NilValueError

__all__ = ["DATASET_SUFFIXES", "dataset_files", "documents"]

#: File types a dataset may consist of.
DATASET_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt")


def dataset_files(path: Path, split: str) -> list[Path]:
    """The files of ``path``: itself when it is a file, else its files of split ``split``."""
    if path.is_file():
        if path.suffix not in DATASET_SUFFIXES:
            raise NilValueError(f"--dataset {path}: expected one of {', '.join(DATASET_SUFFIXES)}, found {path.suffix!r}")
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"--dataset {path}: no such file or directory")
    every = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATASET_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    chosen = [p for p in every if p.name.startswith(split) or p.parent.name.startswith(split)]
    if not chosen:
        found = sorted({p.relative_to(path).as_posix() for p in every})[:6]
        raise NilValueError(f"--dataset {path}: no {'/'.join(DATASET_SUFFIXES)} file of split {split!r} "
                            f"(name or folder starting with it); found {found or 'none'}")
    return chosen


def _text(row: Any, column: str, where: str) -> str:
    if not isinstance(row, dict):
        raise FormatError(f"{where}: expected an object with a {column!r} field, found {type(row).__name__}")
    if column not in row:
        raise FormatError(f"{where}: no column {column!r} (columns: {sorted(row)[:8]}); choose one with --text-column")
    value = row[column]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FormatError(f"{where}: column {column!r} holds {type(value).__name__}, expected text")
    return value


def _json_rows(f: Path, column: str) -> Iterator[str]:
    with f.open("r", encoding="utf-8") as fh:
        head = fh.read(1)
        while head.isspace():
            head = fh.read(1)
        fh.seek(0)
        if head == "[":
            rows = json.load(fh)
            for i, row in enumerate(rows):
                yield _text(row, column, f"{f}: item {i}")
            return
        for i, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise FormatError(f"{f}: line {i}: not JSON ({e})") from None
                yield _text(row, column, f"{f}: line {i}")


def _csv_rows(f: Path, column: str) -> Iterator[str]:
    with f.open("r", encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh), 2):
            yield _text(row, column, f"{f}: line {i}")


def _parquet_rows(f: Path, column: str) -> Iterator[str]:
    pq: Any = require("pyarrow.parquet", f"--dataset {f.name}", extra="tables")
    pf = pq.ParquetFile(f)
    if column not in pf.schema_arrow.names:
        raise FormatError(f"{f}: no column {column!r} (columns: {pf.schema_arrow.names[:8]}); choose one with --text-column")
    row = 0
    for batch in pf.iter_batches(columns=[column], batch_size=256):
        for value in batch.column(0).to_pylist():
            yield _text({column: value}, column, f"{f}: row {row}")
            row += 1


def documents(path: str | Path, *, column: str = "text", split: str = "train") -> Iterator[str]:
    """The text of every row of the dataset at ``path`` (see the module docstring), in order."""
    for f in dataset_files(Path(path), split):
        if f.suffix == ".txt":
            yield f.read_text(encoding="utf-8", errors="replace")
        elif f.suffix in (".jsonl", ".json"):
            yield from _json_rows(f, column)
        elif f.suffix == ".csv":
            yield from _csv_rows(f, column)
        else:
            yield from _parquet_rows(f, column)

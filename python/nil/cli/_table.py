"""Shared output helpers of the CLI: rich tables for people, JSON/CSV for machines.

Tables fit the terminal (its width on a tty or as ``COLUMNS`` says, else 100 columns) and never
cut a number: a column of numbers keeps its full width, text folds at spaces (a number inside text
is never broken), and a table too wide for the width is split into several, each repeating its
first (label) column; a single-row table too wide is printed transposed (one row per column)."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["print_table", "print_json", "print_csv", "fmt", "console", "width", "say", "render_table"]

#: Width of the output when stdout is not a terminal and ``COLUMNS`` is not set.
DEFAULT_WIDTH = 100
_NUMBER = re.compile(r"^[\[\(]?[-+−≤≥<>~]?\s?(\d[\d.,_]*(e[-+−]?\d+)?|nan|inf|—|-)%?[\]\),;]?$", re.IGNORECASE)
_TOKEN_NUMBER = re.compile(r"[-+−≤≥]?\d[\d.,]*(?:e[-+−]?\d+)?%?", re.IGNORECASE)
_LEFT = ("layer", "name", "statistic", "metric", "key", "kind", "players", "value", "block", "notes", "note")


def width() -> int:
    """The output width: the terminal's (or ``COLUMNS``) on a tty or when ``COLUMNS`` is set, else 100."""
    cols = os.environ.get("COLUMNS", "")
    if cols.strip().isdigit() and int(cols) > 0:
        return int(cols)
    if sys.stdout.isatty():
        return Console().width
    return DEFAULT_WIDTH


def console(stderr: bool = False) -> Console:
    """A rich console of ``width()`` columns that wraps text instead of running past it."""
    return Console(width=width(), stderr=stderr, soft_wrap=False)


def say(text: str, indent: str = "") -> None:
    """Prints a line of text wrapped at ``width()`` (at spaces: paths and numbers stay whole)."""
    for para in str(text).split("\n"):
        lines = textwrap.wrap(para, width=width(), subsequent_indent=indent + "  ", initial_indent=indent,
                              break_long_words=False, break_on_hyphens=False) or [""]
        print("\n".join(lines))


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


def _is_number_cell(s: str) -> bool:
    return bool(_NUMBER.match(s.strip())) or s.strip() == ""


def _longest_number(s: str) -> int:
    return max((len(m.group(0)) for m in _TOKEN_NUMBER.finditer(s)), default=0)


def _longest_word(s: str) -> int:
    return max((len(w) for w in s.split()), default=0)


def render_table(title: str, columns: Sequence[str], cells: Sequence[Sequence[str]], *,
                 left: Sequence[str] = (), total: int | None = None) -> list[Table]:
    """The tables that show ``cells`` (strings, one list per row) in at most ``total`` columns."""
    total = total or width()
    cols = list(columns)
    numeric = [all(_is_number_cell(r[i]) for r in cells) for i in range(len(cols))]
    natural = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    need = []  # the narrowest each column may be
    for i, c in enumerate(cols):
        longest_num = max([len(r[i]) for r in cells] if numeric[i] else [_longest_number(r[i]) for r in cells], default=0)
        label = min(natural[i], 40) if i == 0 and not numeric[i] else 0  # the row labels stay whole when they can
        need.append(max(longest_num, label, min(natural[i], max(8, _longest_word(c))), 4 if not numeric[i] else 0, 1))
    def span(idx: list[int]) -> int:
        return sum(need[i] + 3 for i in idx) + 1

    groups: list[list[int]] = []
    if span(list(range(len(cols)))) <= total or len(cols) <= 1:
        groups = [list(range(len(cols)))]
    elif len(cells) == 1:  # one row: transposed
        return render_table(title, ["statistic", "value"], [[c, cells[0][i]] for i, c in enumerate(cols)],
                            left=("statistic", "value"), total=total)
    else:
        key = [0] if not numeric[0] or need[0] <= 12 else []  # the first column labels every part
        cur = list(key)
        for i in range(len(key), len(cols)):
            if len(cur) > len(key) and span(cur + [i]) > total:
                groups.append(cur)
                cur = list(key)
            cur.append(i)
        groups.append(cur)
    tables = []
    for g, idx in enumerate(groups):
        part = f" ({g + 1}/{len(groups)})" if len(groups) > 1 else ""
        t = Table(title=title + part, header_style="bold", title_justify="left")
        for i, w in zip(idx, _widths(idx, numeric, need, natural, total)):
            c = cols[i]
            is_left = c in left or (c in _LEFT and not numeric[i]) or (not numeric[i] and i == 0)
            if numeric[i]:
                t.add_column(Text(c, overflow="fold"), justify="right", no_wrap=True, width=w)
            else:
                t.add_column(Text(c, overflow="fold"), justify="left" if is_left else "right", overflow="fold",
                             width=w)
        for r in cells:
            t.add_row(*(r[i] for i in idx))
        tables.append(t)
    return tables


def _widths(idx: list[int], numeric: list[bool], need: list[int], natural: list[int], total: int) -> list[int]:
    """Each column's width: numbers their full width; text columns share what is left, each at
    least its ``need``, the space going to the one furthest from its natural width first."""
    w = {i: (max(need[i], natural[i]) if numeric[i] else need[i]) for i in idx}
    extra = total - (3 * len(idx) + 1) - sum(w.values())
    while extra > 0:
        short = [i for i in idx if not numeric[i] and w[i] < natural[i]]
        if not short:
            break
        i = max(short, key=lambda j: (natural[j] - w[j], -j))
        w[i] += 1
        extra -= 1
    return [w[i] for i in idx]


def print_table(title: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], *,
                left: Sequence[str] = ()) -> None:
    """Prints ``rows`` as a table with the given columns, fitted to ``width()``."""
    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    con = console()
    for t in render_table(title, columns, cells, left=left, total=con.width):
        con.print(t)


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

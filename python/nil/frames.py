"""pandas DataFrames of nil's results: ``nil.to_pandas(x)``, one row per layer or per budget.

Why one function: the records users get come in several shapes (a ``{name: LayerAgop}`` dict
from ``capture_agop``, a list of ``LayerRecord`` from ``nil.analyze``, an ``InteractionReport``,
an ``HfReport``, an ``IntervalFit``) and all of them are tables of scalar statistics. Columns are
the records' own field names, flattened (nested records become ``outer.inner``); per-layer tables
start with ``layer`` and ``rows`` (rows averaged), whatever produced them. Arrays and matrices are
left out: they are per shape or per entry, not per row. pandas is the ``tables`` extra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ._optional import require

__all__ = ["frame", "to_pandas"]

_SCALARS = (bool, int, float, str, type(None), np.generic)


def _flatten(value: Any, key: str, out: dict[str, Any]) -> None:
    """Scalars of ``value`` into ``out`` under ``key`` (nested records as ``key.field``)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if not f.name.startswith("_")}
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(v, f"{key}.{k}" if key else str(k), out)
    elif isinstance(value, _SCALARS):
        out[key] = value.item() if isinstance(value, np.generic) else value


def _row(record: Any) -> dict[str, Any]:
    """One flat row of a record: its ``to_row()`` if it has one, else ``to_dict()``, else its fields."""
    for method in ("to_row", "to_dict"):
        fn = getattr(record, method, None)
        if callable(fn):
            record = fn()
            break
    out: dict[str, Any] = {}
    _flatten(record, "", out)
    return out


def frame(rows: Iterable[Mapping[str, Any] | Any]) -> Any:
    """A DataFrame of ``rows`` (mappings or records), flattened, columns in first-seen order."""
    pd: Any = require("pandas", "to_pandas", extra="tables")
    flat = [_row(r) for r in rows]
    columns: dict[str, None] = {}
    for r in flat:
        columns.update(dict.fromkeys(r))
    return pd.DataFrame(flat, columns=list(columns))


def to_pandas(obj: Any) -> Any:
    """A pandas DataFrame of ``obj``: a ``{layer: LayerAgop}`` dict (``capture_agop``), a list of
    ``LayerRecord`` (``nil.analyze``) or of any records, an ``InteractionReport`` or ``HfReport``
    (one row per block), or an ``IntervalFit`` (one row per budget: the per-budget fit, its
    smooth estimate as ``smooth.*`` columns)."""
    own = getattr(obj, "to_pandas", None)
    if callable(own):
        return own()
    from .interval import IntervalFit

    if isinstance(obj, IntervalFit):
        return frame(obj.budgets)
    if isinstance(obj, Mapping):
        return frame(obj.values())
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        return frame(obj)
    return frame([obj])

"""``nil.llms``: the registry of small dense open LLMs (shapes, MMLU-Pro scores with sources) and
the comparison of MMLU-Pro with the distance of each model's R_D/W to an efficient interval.

>>> from nil.llms import shape, compare
>>> round(shape("Qwen2.5-3B").ratio, 4)
0.0176
"""

from __future__ import annotations

from .compare import Comparison, ComparisonRow, Interval, Position, compare, position, read_interval, shape_table
from .corr import Correlation, average_ranks, correlate, pearson
from .params import ARCHS, ParamCount, param_count
from .registry import LlmScore, LlmShape, Protocol, protocols, scores, shape, shapes, sources

__all__ = [
    "ARCHS",
    "Comparison",
    "ComparisonRow",
    "Correlation",
    "Interval",
    "LlmScore",
    "LlmShape",
    "ParamCount",
    "Position",
    "Protocol",
    "average_ranks",
    "compare",
    "correlate",
    "param_count",
    "pearson",
    "position",
    "protocols",
    "read_interval",
    "scores",
    "shape",
    "shape_table",
    "shapes",
    "sources",
]

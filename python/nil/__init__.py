"""nil — Neural Interaction Law.

Per-layer gradient features (AGOP) of torch models, interaction statistics computed by a Rust core,
and the efficient depth/width interval of a parameter budget. The typed API:

- ``AgopAccumulator``: streaming (1/n)·GᵀG in float64, mergeable, saved as safetensors.
- ``interaction_stats``: AOFE, AOFE ratio, weighted mean cos², spectrum, null baselines.
- ``superposition_stats``: superposition of a feature matrix against a Gaussian null.
- ``nfa_correlation`` / ``fit_nfa_power``: WᵀW against AGOP^γ.
- ``fit_interval``: per-budget optimal depth/width ratio, bands, bootstrap CIs, frontier laws.
- ``to_pandas``: a DataFrame of any of these results (one row per layer or budget).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._optional import DIST
from .accumulator import AgopAccumulator, load_accumulators, save_accumulators
from .errors import (
    ChecksumError,
    DTypeError,
    FormatError,
    NilError,
    NilValueError,
    NonFiniteError,
    ShapeError,
    ShardError,
)
from .frames import to_pandas
from .interaction import InteractionStats, interaction_stats
from .interval import IntervalFit, fit_interval
from .nfa import NfaCorrelation, NfaPowerFit, fit_nfa_power, nfa_correlation
from .superposition import Summary, SuperpositionStats, superposition_stats
from .shards import ShardWriter, analyze, merge, verify
from .sweep import sweep

try:
    __version__ = version(DIST)
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

__all__ = [
    "AgopAccumulator",
    "ChecksumError",
    "DTypeError",
    "FormatError",
    "InteractionStats",
    "IntervalFit",
    "NfaCorrelation",
    "NfaPowerFit",
    "NilError",
    "NilValueError",
    "NonFiniteError",
    "ShapeError",
    "ShardError",
    "Summary",
    "SuperpositionStats",
    "fit_interval",
    "fit_nfa_power",
    "interaction_stats",
    "load_accumulators",
    "nfa_correlation",
    "save_accumulators",
    "superposition_stats",
    "to_pandas",
    "ShardWriter",
    "analyze",
    "merge",
    "verify",
    "sweep",
]

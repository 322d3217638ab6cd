"""Gradient shards: the self-describing on-disk capture format (docs/shard-format.md).

- ``ShardWriter``: writes a capture (atomic shards + manifest, resumable, background thread).
- ``verify``: every problem of a capture.
- ``analyze``: per-layer interaction statistics of a capture, verified and reduced in Rust.
- ``merge``: exact merge of partial AGOP results across captures and machines.
"""

from __future__ import annotations

from .analysis import LayerRecord, analyze, reduce
from .merging import merge
from .verification import Problem, VerifyReport, verify
from .writer import ShardWriter

__all__ = ["LayerRecord", "Problem", "ShardWriter", "VerifyReport", "analyze", "merge", "reduce", "verify"]

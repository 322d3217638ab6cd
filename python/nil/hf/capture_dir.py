"""The capture directory ``nil capture --hf DIR --out CAPTURE`` writes (docs/shard-format.md).

It holds the rows of every block's input AGOP (the rows the report's per-block table averages:
one per token and probe, the gradient of the projected output at the block's input), written by
``nil.ShardWriter`` with the model and capture settings in the manifest, so ``nil analyze
CAPTURE`` reproduces the per-block statistics anywhere, without the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import NilValueError
from ..shards import ShardWriter
from .load import HfModel

__all__ = ["check_out", "open_capture"]


def check_out(out: str | Path) -> Path:
    """Refuses an ``--out`` that already holds anything, before the model is loaded: a capture is
    never appended to by a second run (re-running must not double its rows)."""
    p = Path(out)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise NilValueError(f"--out {p}: already exists and is not an empty directory; "
                            "choose a new path (a capture is never appended to)")
    return p


def open_capture(out: Path, m: HfModel, params: int, settings: dict[str, Any], text: dict[str, Any],
                 dtype: str) -> ShardWriter:
    """A writer over the blocks of ``m`` (dim = hidden size) with the manifest's model section
    (family = model_type, depth = layers, width = hidden), capture section and the rest as extras."""
    if dtype not in ("float32", "bfloat16", "float16"):
        raise NilValueError(f"--shard-dtype: expected float32, bfloat16 or float16, found {dtype!r}")
    meta = {
        "model": {"family": m.model_type or None, "depth": m.layers, "width": m.hidden, "params": params,
                  "ratio": m.layers / m.hidden},
        "capture": {"mode": "input", "probes": settings["probes"], "projection_seed": settings["seed"],
                    "token_stride": 1},
        "source": "nil capture --hf",
        "checkpoint": str(m.path),
        "model_class": m.loading.model_class,
        "kind": m.kind,
        "loading": m.loading.to_dict(),
        "output": settings["output"],
        "project": settings["project"],
        "text": dict(text),
    }
    return ShardWriter(out, layers={b: m.hidden for b in m.blocks}, dtype=dtype, meta=meta, resume=False)

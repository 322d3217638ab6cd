"""``analyze``: per-layer interaction statistics of a capture directory (or a partial AGOP file).

A capture is verified and reduced by the Rust core in one pass over its shards, read into
buffers (each shard's rows count only if its blake3 matches the manifest), then ``interaction_stats`` runs on
each layer's AGOP. Nothing in the capture is modified.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _core
from ..accumulator import AgopAccumulator, NonFinite, PrecisionName, _fast, _skip
from ..errors import NilValueError
from ..interaction import Convention, InteractionStats, interaction_stats
from ._paths import check_output, input_kind
from ._progress import run_with_progress

__all__ = ["LayerRecord", "analyze", "reduce"]


@dataclass(frozen=True)
class LayerRecord:
    """One layer of an analysed capture: its rows, dim, skipped rows and interaction statistics.

    Every field of ``InteractionStats`` is also readable on the record (``rec.aofe_ratio``), and
    ``to_dict()`` flattens them next to ``layer``, ``rows``, ``dim`` and ``nonfinite``.
    """

    layer: str
    rows: int
    dim: int
    nonfinite: int
    stats: InteractionStats
    accumulator: AgopAccumulator = field(repr=False, compare=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("stats", "accumulator"):
            raise AttributeError(name)
        return getattr(self.stats, name)

    def to_dict(self) -> dict[str, Any]:
        """``layer, rows, dim, nonfinite`` and every interaction statistic, as a flat dict."""
        return {"layer": self.layer, "rows": self.rows, "dim": self.dim, "nonfinite": self.nonfinite} | self.stats.to_dict()


def _capture_bytes(path: str) -> int:
    manifest = json.loads(_core.manifest_read(path))
    return sum(int(s["bytes"]) for s in manifest.get("shards", []))  # absent = none, as the core reads it


def reduce(
    path: str | os.PathLike[str],
    layers: list[str] | None = None,
    nonfinite: NonFinite = "raise",
    *,
    precision: PrecisionName = "fast",
    progress: bool = False,
    ray: str | None = None,
    device: str = "cpu",
) -> tuple[dict[str, AgopAccumulator], list[str]]:
    """Per-layer accumulators of a capture directory or partial file, and the shard digests counted.

    ``precision`` is that of ``AgopAccumulator``: "fast" (f32 products over blocks of 512 rows,
    f64 sums; relative error ~1e-6) or "exact" (f64 products). ``ray`` (an address, or "local")
    maps groups of shards to Ray tasks and merges their exact partial sums. ``device`` other than
    "cpu" (e.g. "cuda") reduces on that torch device instead (``device_reduce``: float32 block
    products, float64 sums; ``precision`` does not apply).
    """
    p = os.fspath(path)
    if device != "cpu":
        if ray is not None:
            raise NilValueError("ray and a device reduction do not combine; choose one")
        from .device_reduce import reduce_on_device

        return reduce_on_device(p, layers, nonfinite, device=device)
    if ray is not None:
        from .ray_reduce import reduce_on_ray

        return reduce_on_ray(p, ray, layers, nonfinite, precision=precision)
    skip = _skip(nonfinite)
    fast = _fast(precision)
    if input_kind(p) == "capture":
        total = _capture_bytes(p)
        raw, sources = run_with_progress(
            lambda cb: _core.reduce_capture(p, layers, skip, fast, cb), total, f"reducing {Path(p).name}", progress
        )
    else:
        raw, sources = _core.partial_read(p)
        if layers is not None:
            wanted = set(layers)
            have = {n for n, _ in raw}
            missing = [n for n in layers if n not in have]
            if missing:
                raise NilValueError(f"{p}: layer {missing[0]}: not in this file; it has {sorted(have)}")
            raw = [(n, a) for n, a in raw if n in wanted]
    policy: NonFinite = "skip" if skip else "raise"
    return {n: AgopAccumulator._wrap(a, policy, precision) for n, a in raw}, list(sources)


def analyze(
    path: str | os.PathLike[str],
    layers: list[str] | None = None,
    nonfinite: NonFinite = "raise",
    *,
    convention: Convention = "exact",
    precision: PrecisionName = "fast",
    spectrum: bool = True,
    save_agop: str | os.PathLike[str] | None = None,
    progress: bool = False,
    ray: str | None = None,
    device: str = "cpu",
) -> list[LayerRecord]:
    """Verifies and reduces a capture, then returns one record per layer (manifest order).

    ``path`` is a capture directory (``manifest.json`` + ``shards/``) or a partial AGOP file
    written by ``save_agop``/``nil merge``. ``layers`` restricts the layers; ``nonfinite="skip"``
    leaves rows holding NaN/Inf out and counts them (default: raise ``NonFiniteError`` naming the
    shard, layer and row). ``precision="exact"`` forms products in f64 (default "fast": f32
    products over blocks of 512 rows, f64 sums, ~1e-6 relative error). ``save_agop`` writes the per-layer accumulators and the digests of the
    shards they count, for ``merge``. ``progress`` draws a bar on a terminal. ``ray`` (a cluster
    address, or "local") spreads groups of shards over Ray tasks; the result is the same.
    ``device="cuda"`` streams the rows through pinned buffers into a GPU Gram (float32 block
    products, float64 sums; same result within the tolerance of docs/shard-format.md).
    """
    p = os.fspath(path)
    if save_agop is not None:
        check_output(save_agop, [p], "--save-agop")
    accs, sources = reduce(p, layers, nonfinite, precision=precision, progress=progress, ray=ray, device=device)
    if save_agop is not None:
        _core.partial_write(os.fspath(save_agop), [(n, a._raw) for n, a in accs.items()], sources, {"nil.input": p})
    records = []
    for name, acc in accs.items():
        stats = interaction_stats(acc.matrix(), convention, spectrum=spectrum)
        records.append(LayerRecord(name, acc.count, acc.dim, acc.nonfinite, stats, acc))
    return records

"""Helpers of the shard tests: build captures, rewrite shards and manifests, snapshot directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

import nil
from nil import _core

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}


def make_capture(path: Path, rows: dict[str, np.ndarray], dtype: str = "float16", batches: int = 4,
                 shard_bytes: int = 4096, meta: dict[str, Any] | None = None) -> None:
    """Writes ``rows`` (float32/64 arrays per layer) through ShardWriter in ``batches`` writes."""
    layers = {n: a.shape[1] for n, a in rows.items()}
    with nil.ShardWriter(path, layers, dtype=dtype, meta=meta or {"family": "mlp"}, shard_bytes=shard_bytes) as w:
        for part in zip(*(np.array_split(a, batches) for a in rows.values())):
            w.write(dict(zip(rows, part)))


def stored(a: np.ndarray, dtype: str) -> np.ndarray:
    """What a capture of ``dtype`` holds for ``a``, widened to float64."""
    return a.astype(NP[dtype]).astype(np.float64)


def agop(a: np.ndarray) -> np.ndarray:
    """The numpy reference (1/n) GᵀG in float64."""
    return a.T @ a / len(a)


def manifest(path: Path) -> dict[str, Any]:
    """The parsed manifest."""
    return json.loads((path / "manifest.json").read_text())


def replace_shard(path: Path, index: int, tensors: dict[str, np.ndarray] | None = None,
                  raw: bytes | None = None, rows: dict[str, int] | None = None) -> Path:
    """Overwrites shard ``index`` with other tensors or bytes and re-records its size and blake3 in
    the manifest, so that only the content (not the checksum) is wrong."""
    m = manifest(path)
    entry = m["shards"][index]
    f = path / entry["file"]
    if tensors is not None:
        save_file(tensors, str(f))
    else:
        assert raw is not None
        f.write_bytes(raw)
    entry["bytes"] = f.stat().st_size
    entry["blake3"] = _core.file_blake3(str(f))
    if rows is not None:
        entry["rows"] = rows
    (path / "manifest.json").write_text(json.dumps(m))
    return f


def snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``path`` with its bytes and mtime, to prove nothing was modified."""
    return {str(p.relative_to(path)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}

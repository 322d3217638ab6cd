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


def write_raw_capture(path: Path, layers: dict[str, int], rows: dict[str, np.ndarray] | None = None,
                      dtype: str = "float16") -> None:
    """A capture written without ShardWriter (so it can break the writer's own rules): one shard
    holding ``rows`` (default: zero rows per layer), and a manifest that records it faithfully."""
    (path / "shards").mkdir(parents=True)
    data = {n: (rows or {}).get(n, np.zeros((0, d), NP[dtype])).astype(NP[dtype]) for n, d in layers.items()}
    f = path / "shards" / "000000.safetensors"
    save_file(data, str(f), metadata={"format": "nil.shard", "format_version": "1", "index": "0"})
    m = {"format": "nil.shards", "format_version": 1, "capture": {"dtype": dtype},
         "layers": [{"name": n, "dim": d} for n, d in layers.items()],
         "shards": [{"file": "shards/000000.safetensors", "bytes": f.stat().st_size,
                     "rows": {n: int(a.shape[0]) for n, a in data.items()}, "blake3": _core.file_blake3(str(f))}]}
    (path / "manifest.json").write_text(json.dumps(m))


def agop_digest(tensors: dict[str, np.ndarray], sources: str | None, scratch: Path) -> str:
    """The ``nil.blake3`` content digest of an accumulator file, computed as docs/shard-format.md
    §4 specifies it (independently of the Rust writer)."""
    names = {np.dtype(np.float64): "F64", np.dtype(np.uint64): "U64"}
    out = bytearray()

    def field(b: bytes) -> None:
        out.extend(len(b).to_bytes(8, "little"))
        out.extend(b)

    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        field(name.encode())
        field(names[a.dtype].encode())
        field(b"".join(int(d).to_bytes(8, "little") for d in a.shape))
        field(a.astype(a.dtype.newbyteorder("<")).tobytes())
    if sources is None:
        field(b"\x00")
    else:
        field(b"\x01")
        field(sources.encode())
    scratch.write_bytes(bytes(out))
    return _core.file_blake3(str(scratch))


def rewrite_agop_file(path: Path, edit: Any, *, keep_digest: bool = False) -> None:
    """Rewrites an accumulator file after ``edit(tensors, metadata)`` changed it in place; the
    digest is recomputed (so only the sanity checks can catch the edit) unless ``keep_digest``."""
    from safetensors import safe_open

    with safe_open(str(path), "numpy") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(tensors, meta)
    if not keep_digest:
        meta["nil.blake3"] = agop_digest(tensors, meta.get("nil.sources"), path.with_suffix(".digest"))
    save_file(tensors, str(path), metadata=meta)

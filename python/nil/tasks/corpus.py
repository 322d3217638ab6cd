"""Local byte corpora for byte-level language modelling.

The embedded default exists on every machine with Python: the standard library's own ``.py``
source files (``sysconfig.get_paths()["stdlib"]``, without site-packages), read in sorted path
order. A directory given by the user is read the same way (every regular file, or those matching a
``pattern`` such as ``*.py``, sorted); a single file is cut into contiguous train/validation/test
ranges. Files of a directory go to a split by a
hash of their relative path, so the split never depends on the order or number of other files.
"""

from __future__ import annotations

import functools
import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NilValueError

__all__ = ["ByteCorpus", "load_corpus", "default_corpus_files"]

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


@dataclass(frozen=True)
class ByteCorpus:
    """Train, validation and test byte streams (uint8) and where they came from. ``fingerprint``:
    SHA-256 (first 16 hex digits) of the three streams, so tables made in different sessions can
    be checked to share one corpus."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    source: str
    n_files: int
    fingerprint: str = ""


def _fingerprint(*streams: np.ndarray) -> str:
    h = hashlib.sha256()
    for s in streams:
        h.update(len(s).to_bytes(8, "little"))
        h.update(np.ascontiguousarray(s).tobytes())
    return h.hexdigest()[:16]


def default_corpus_files() -> tuple[Path, list[Path]]:
    """The standard library root and its ``.py`` files in sorted order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if not _SKIP_DIRS & set(p.relative_to(root).parts) and p.is_file())
    return root, files


def _bucket(relpath: str) -> float:
    """A number in [0, 1) fixed by the file's relative path."""
    return int.from_bytes(hashlib.sha256(relpath.encode()).digest()[:8], "big") / 2.0**64


@functools.lru_cache(maxsize=4)
def load_corpus(
    path: str | None = None, val_fraction: float = 0.05, test_fraction: float = 0.05, max_bytes: int | None = None,
    pattern: str | None = None,
) -> ByteCorpus:
    """Reads a corpus (default: the Python standard library's sources) into three byte streams.

    ``max_bytes`` caps the bytes read from a directory (files beyond it are skipped, in sorted
    order), for quick runs. ``pattern``: only a directory's files matching this glob (searched in
    every subdirectory, ``__pycache__`` skipped), e.g. ``*.py``. Files are joined with a newline."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise NilValueError(f"corpus split fractions must be in (0, 1) and sum below 1, found {val_fraction}, {test_fraction}")
    if path is None:
        root, files = default_corpus_files()
        source = f"python-stdlib:{root}"
    else:
        p = Path(path)
        if not p.exists():
            raise NilValueError(f"corpus {path!r} does not exist (expected a text file or a directory)")
        if p.is_file():
            data = np.frombuffer(p.read_bytes()[:max_bytes], dtype=np.uint8)
            a = int(len(data) * (1 - val_fraction - test_fraction))
            b = int(len(data) * (1 - test_fraction))
            tr, va, te = data[:a].copy(), data[a:b].copy(), data[b:].copy()
            return ByteCorpus(tr, va, te, str(p), 1, _fingerprint(tr, va, te))
        if pattern is None:
            root, files = p, sorted(f for f in p.rglob("*") if f.is_file())
            source = str(p)
        else:
            root = p
            files = sorted(f for f in p.rglob(pattern) if f.is_file() and "__pycache__" not in f.relative_to(p).parts)
            source = f"{p}/**/{pattern}"
        if not files:
            raise NilValueError(f"corpus {source}: no files to read")
    parts: dict[str, list[bytes]] = {"train": [], "val": [], "test": []}
    total = 0
    for f in files:
        blob = f.read_bytes()
        if max_bytes is not None and total + len(blob) > max_bytes:
            break
        total += len(blob)
        u = _bucket(f.relative_to(root).as_posix())
        split = "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"
        parts[split].append(blob)
    streams = {k: np.frombuffer(b"\n".join(v), dtype=np.uint8).copy() for k, v in parts.items()}
    for k, s in streams.items():
        if len(s) < 2:
            raise NilValueError(f"corpus {source}: the {k} split is empty ({len(files)} files); give more text")
    return ByteCorpus(streams["train"], streams["val"], streams["test"], source, len(files),
                      _fingerprint(streams["train"], streams["val"], streams["test"]))

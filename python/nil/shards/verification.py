"""``verify``: every problem of a capture directory (manifest, shard sizes, blake3 checksums,
headers, each layer's tensor), shards checked in parallel by the Rust core; nothing is modified."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .. import _core

__all__ = ["Problem", "VerifyReport", "verify"]


@dataclass(frozen=True)
class Problem:
    """One problem: the file at fault, the layer (if any), a kind and the full message."""

    file: str
    layer: str | None
    kind: str
    message: str


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found. ``ok`` is True when there is no problem; ``notes`` are harmless."""

    path: str
    shards: int
    bytes: int
    rows: dict[str, int]
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the capture has no problem."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "path": self.path,
            "ok": self.ok,
            "shards": self.shards,
            "bytes": self.bytes,
            "rows": self.rows,
            "problems": [p.__dict__ for p in self.problems],
            "notes": self.notes,
        }


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Checks a capture directory against its manifest and reports every problem found."""
    p = os.fspath(path)
    d = _core.verify_capture(p)
    return VerifyReport(
        path=p,
        shards=int(d["shards"]),
        bytes=int(d["bytes"]),
        rows={n: int(r) for n, r in d["rows"]},
        problems=[Problem(**x) for x in d["problems"]],
        notes=list(d["notes"]),
    )

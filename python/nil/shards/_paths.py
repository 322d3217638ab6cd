"""Paths of captures and partial files: what an input is, and outputs that must not land inside
an input capture (a partial file written over its manifest or a listed shard destroys it)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from .. import _core
from ..errors import NilValueError

__all__ = ["input_kind", "check_output"]


def input_kind(path: str | os.PathLike[str]) -> Literal["capture", "partial"]:
    """``"capture"`` for a directory, ``"partial"`` for a regular file; anything else (missing, a
    FIFO or device, a symbolic-link loop) raises an error naming it, without opening it."""
    kind = _core.input_kind(os.fspath(path))
    return "capture" if kind == "capture" else "partial"


def check_output(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]], flag: str) -> None:
    """Refuses an output path that is one of ``inputs`` or lies inside an input capture: the
    capture directory itself, its ``manifest.json``, ``.lock`` or anything under ``shards/``.
    Writing beside the manifest (``CAPTURE/agop.safetensors``) is allowed. ``flag`` names the
    option in the message (e.g. ``--save-agop``)."""
    o = Path(os.path.realpath(out))  # realpath, unlike Path.resolve, never raises on a link loop
    for given in inputs:
        p = Path(os.path.realpath(given))
        if o == p:
            what = "the input capture directory itself" if p.is_dir() else "also an input"
            raise NilValueError(f"{out}: {flag} is {what}; write to a new file")
        if not p.is_dir():
            continue
        inside = o in (p / "manifest.json", p / ".lock") or p / "shards" in o.parents or o == p / "shards"
        if inside:
            raise NilValueError(
                f"{out}: {flag} would overwrite part of the capture {os.fspath(given)} (its manifest, lock "
                "or shards); choose a path outside CAPTURE/shards, e.g. CAPTURE/agop.safetensors"
            )

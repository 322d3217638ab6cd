"""``merge``: exact merge of partial AGOP results (capture directories or partial files) into one
partial file. Sums and counts add; inputs must hold the same layers and dims, and a shard counted
by two inputs is refused, so map-reduce over machines gives the single-pass answer."""

from __future__ import annotations

import os
from pathlib import Path

from .. import _core
from ..accumulator import AgopAccumulator, NonFinite, PrecisionName, _fast, _skip
from ..errors import NilValueError
from ._paths import check_output, input_kind
from ._progress import run_with_progress
from .analysis import _capture_bytes

__all__ = ["merge"]


def merge(
    out: str | os.PathLike[str],
    *paths: str | os.PathLike[str],
    nonfinite: NonFinite = "raise",
    precision: PrecisionName = "fast",
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, AgopAccumulator]:
    """Merges ``paths`` into the partial file ``out`` (written atomically) and returns its accumulators.

    Capture directories among ``paths`` are verified and reduced first (with ``nonfinite`` and
    ``precision`` as in ``analyze``). ``out`` must not be one of the inputs nor lie inside an input
    capture (its manifest, lock or ``shards/``), even with ``overwrite``; an existing ``out`` is
    replaced only with ``overwrite=True``. The work runs on a helper thread, so Ctrl-C
    (KeyboardInterrupt) stops it within one block; ``progress`` draws a bar on a terminal.
    """
    if not paths:
        raise NilValueError("merge: expected at least one input path, found none")
    o = Path(out)
    ins = [Path(p) for p in paths]
    kinds = [input_kind(p) for p in ins]  # every input exists and is a directory or regular file
    check_output(o, ins, "OUT")
    if o.is_dir():
        raise NilValueError(f"{out}: is a directory; merge writes one partial AGOP file")
    if o.exists() and not overwrite:
        raise FileExistsError(f"{out}: exists; pass overwrite=True (CLI: --force) to replace it")
    total = sum(_capture_bytes(os.fspath(p)) for p, k in zip(ins, kinds) if k == "capture")
    raw, sources = run_with_progress(
        lambda cb: _core.partial_merge([os.fspath(p) for p in ins], _skip(nonfinite), _fast(precision), cb),
        total, f"merging {len(ins)} input(s)", progress,
    )
    _core.partial_write(os.fspath(o), raw, sources, {"nil.inputs": ",".join(os.fspath(p) for p in ins)})
    return {n: AgopAccumulator._wrap(a) for n, a in raw}

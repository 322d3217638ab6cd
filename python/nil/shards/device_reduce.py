"""``reduce_on_device``: a capture's per-layer AGOP sums formed on a torch device (``nil analyze
--device cuda``).

Every shard is verified against its manifest blake3 before its rows count (``_core.shard_verify``
on a helper thread, one shard ahead of the reads; a mismatch stops the reduction with the core's
error, where the CPU reduction also refuses the capture). Its rows are then read with pread (not a memory map: a shard cut short is an error naming it) from the shard, ``block_rows`` rows of one layer at a time,
by ``readers`` threads into a ring of ``buffers`` host buffers (pinned on CUDA), copied to the
device asynchronously, widened to float32 there, and reduced: per ``product_rows`` rows (4096),
Xᵀ X in float32 (TF32 off), added into a float64 d×d accumulator on the device. The result is the same accumulator the
CPU reduction returns (``AgopAccumulator.from_sum``), within the tolerance of docs/shard-format.md.

The code path is device-agnostic: with ``device="cpu"`` (the tests) the buffers are not pinned
and every step is synchronous.
"""

from __future__ import annotations

import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from .._optional import require
from ..accumulator import AgopAccumulator, NonFinite
from ..errors import FormatError, NilValueError, NonFiniteError
from ._paths import input_kind

__all__ = ["reduce_on_device"]

_ST_DTYPES = {"F16": ("float16", 2), "BF16": ("bfloat16", 2), "F32": ("float32", 4)}


@dataclass(frozen=True)
class _Block:
    shard: int
    file: str
    layer: str
    first_row: int  # index of the block's first row within the layer's rows of this shard
    rows: int
    dim: int
    start: int  # byte offset in the shard file
    nbytes: int
    dtype: str


def _header(path: Path) -> tuple[dict[str, Any], int]:
    """A safetensors header and the byte offset of its data."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n <= 0 or n > 100 << 20:
            raise FormatError(f"{path}: not a safetensors shard (header length {n})")
        return json.loads(f.read(n)), 8 + n


def _blocks(path: Path, shard: int, file: str, wanted: dict[str, int], block_rows: int) -> list[_Block]:
    header, base = _header(path / file)
    out = []
    for name, dim in wanted.items():
        meta = header.get(name)
        if meta is None:
            continue
        if meta.get("dtype") not in _ST_DTYPES:
            raise FormatError(f"{path / file}: layer {name}: dtype {meta.get('dtype')!r} is not a shard dtype")
        dtype, size = _ST_DTYPES[meta["dtype"]]
        rows, d = (int(v) for v in meta["shape"])
        lo, hi = (int(v) for v in meta["data_offsets"])
        if d != dim or hi - lo != rows * d * size:
            raise FormatError(f"{path / file}: layer {name}: shape {meta['shape']} does not match dim {dim}")
        for r0 in range(0, rows, block_rows):
            n = min(block_rows, rows - r0)
            out.append(_Block(shard, file, name, r0, n, d, base + lo + r0 * d * size, n * d * size, dtype))
    return out


def reduce_on_device(
    path: str | os.PathLike[str],
    layers: list[str] | None = None,
    nonfinite: NonFinite = "raise",
    *,
    device: Any = "cuda",
    block_rows: int = 16384,
    product_rows: int = 4096,
    buffers: int | None = None,
    readers: int | None = None,
) -> tuple[dict[str, AgopAccumulator], list[str]]:
    """Per-layer accumulators of a capture directory reduced on ``device``, and the shard digests
    counted (those of the manifest, every shard verified). See the module docstring.
    ``readers`` defaults to min(8, CPU count), ``buffers`` to readers + 2."""
    torch = require("torch", "nil analyze --device cuda")
    p = Path(os.fspath(path))
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NilValueError("--device cuda: torch finds no CUDA device (torch.cuda.is_available() is False); "
                            "use --device cpu")
    if nonfinite not in ("raise", "skip"):
        raise NilValueError(f"nonfinite: expected 'raise' or 'skip', found {nonfinite!r}")
    readers = min(8, os.cpu_count() or 1) if readers is None else int(readers)
    buffers = readers + 2 if buffers is None else int(buffers)
    if min(block_rows, product_rows, buffers, readers) < 1:
        raise NilValueError("block_rows, buffers and readers must be positive")
    if input_kind(os.fspath(p)) != "capture":
        raise NilValueError(f"{p}: the device reduction reads capture directories; a partial AGOP file is "
                            "already reduced (use --device cpu)")
    manifest = json.loads(_core.manifest_read(os.fspath(p)))
    dims = {str(entry["name"]): int(entry["dim"]) for entry in manifest["layers"]}
    if layers is not None:
        missing = [n for n in layers if n not in dims]
        if missing:
            raise NilValueError(f"{p}: layer {missing[0]}: not in this capture; it has {list(dims)}")
        dims = {n: d for n, d in dims.items() if n in set(layers)}
    shards = manifest.get("shards", [])
    cuda = dev.type == "cuda"
    sums = {n: torch.zeros(d, d, dtype=torch.float64, device=dev) for n, d in dims.items()}
    counts = dict.fromkeys(dims, 0)
    skipped = {n: torch.zeros((), dtype=torch.int64, device=dev) for n in dims}
    torch_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    cap = block_rows * max(dims.values(), default=1) * 4
    host = [torch.empty(cap, dtype=torch.uint8, pin_memory=cuda) for _ in range(buffers)]
    host_np = [h.numpy() for h in host]
    events: list[Any] = [None] * buffers
    fds: list[int] = []  # shard descriptors, closed at the end

    def fill(slot: int, b: _Block, fd: int) -> None:  # runs on a reader thread (pread drops the GIL)
        # read(2) into the buffer, not a memory map: a shard truncated under a mapped reader kills
        # the process with SIGBUS; here it is a short read and an error naming the file.
        view = memoryview(host_np[slot])[: b.nbytes]
        done = 0
        while done < b.nbytes:
            n = os.preadv(fd, [view[done:]], b.start + done)
            if n == 0:
                raise FormatError(f"{p / b.file}: layer {b.layer}: the shard ended after {b.start + done} bytes "
                                  f"while {b.start + b.nbytes} were expected (did it change during the reduction?)")
            done += n

    def verify(i: int) -> None:  # the core hashes without the GIL
        _core.shard_verify(os.fspath(p), i)  # raises naming the shard when it does not match

    def blocks(checker: ThreadPoolExecutor) -> Any:
        ahead = checker.submit(verify, 0) if shards else None
        for i, s in enumerate(shards):
            assert ahead is not None
            ahead.result()  # shard i verified before any of its rows count
            ahead = checker.submit(verify, i + 1) if i + 1 < len(shards) else None  # overlaps the reads
            fd = os.open(p / s["file"], os.O_RDONLY)
            fds.append(fd)
            for b in _blocks(p, i, s["file"], dims, block_rows):
                yield b, fd

    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with ThreadPoolExecutor(readers, thread_name_prefix="nil-analyze-read") as pool, \
                ThreadPoolExecutor(1, thread_name_prefix="nil-analyze-verify") as checker:
            inflight: deque[tuple[_Block, int, Any]] = deque()
            source = blocks(checker)
            next_slot = 0

            def submit() -> bool:
                nonlocal next_slot
                item = next(source, None)
                if item is None:
                    return False
                b, fd = item
                slot = next_slot
                next_slot = (next_slot + 1) % buffers
                if events[slot] is not None:
                    events[slot].synchronize()  # the device has its copy of this buffer's last block
                inflight.append((b, slot, pool.submit(fill, slot, b, fd)))
                return True

            while len(inflight) < buffers and submit():
                pass
            while inflight:
                b, slot, fut = inflight.popleft()
                fut.result()
                x = host[slot][: b.nbytes].view(torch_dtype[b.dtype]).view(b.rows, b.dim)
                x = x.to(dev, non_blocking=True)
                if cuda:
                    events[slot] = torch.cuda.Event()
                    events[slot].record()
                x = x.to(torch.float32)
                bad = ~torch.isfinite(x).all(dim=1)
                if nonfinite == "raise":
                    if bool(bad.any()):
                        row = b.first_row + int(torch.nonzero(bad)[0, 0])
                        raise NonFiniteError(f"{p / b.file}: layer {b.layer}, row {row}: a non-finite value "
                                             "(use nonfinite='skip' / --nonfinite skip to leave such rows out)")
                    counts[b.layer] += b.rows
                else:
                    n_bad = bad.sum()
                    skipped[b.layer] += n_bad
                    x = x.masked_fill(bad[:, None], 0.0)
                    counts[b.layer] += b.rows  # minus the skipped rows, read once at the end
                for lo in range(0, b.rows, product_rows):  # float32 products of ≤ product_rows rows
                    xs = x[lo : lo + product_rows]
                    sums[b.layer] += torch.mm(xs.t(), xs).to(torch.float64)
                # Refilling this slot waits on its event (CUDA); on the CPU x aliases the buffer,
                # and the product above has already read it.
                submit()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for fd in fds:
            os.close(fd)
    out = {}
    for name in dims:
        bad_rows = int(skipped[name].item())
        out[name] = AgopAccumulator.from_sum(sums[name].cpu().numpy(), counts[name] - bad_rows, bad_rows,
                                             policy=nonfinite)
    return out, [str(s["blake3"]) for s in shards]

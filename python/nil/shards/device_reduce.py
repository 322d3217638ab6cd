"""``reduce_on_device``: a capture's per-layer AGOP sums formed on a torch device (``nil analyze
--device cuda``).

Each shard is read once, in file order, by the Rust core on a reader thread (``_core.shard_stream``:
read(2), never a memory map, so a shard cut short is an error naming it, not SIGBUS). Every byte is
hashed as it is read, and the rows handed out are the bytes hashed, so a shard changed during the
reduction cannot slip rows past its check; the reduction fails if a shard's blake3 differs from the
manifest, as the CPU reduction does. The rows, ``block_rows`` of one layer at a time, land in a
ring of ``buffers`` host buffers (pinned on CUDA), are copied to the device asynchronously, widened
to float32 there, and reduced: per ``product_rows`` rows (4096), Xᵀ X in float32 (TF32 off), added
into a float64 d×d accumulator on the device. Non-finite rows are looked for on the device and
checked once per shard (one synchronisation, not one per block). The result is the same
accumulator the CPU reduction returns (``AgopAccumulator.from_sum``), within the tolerance of
docs/shard-format.md.

The code path is device-agnostic: with ``device="cpu"`` (the tests) the buffers are not pinned
and every step is synchronous.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import _core
from .._optional import require
from ..accumulator import AgopAccumulator, NonFinite
from ..errors import FormatError, NilValueError, NonFiniteError
from ._paths import input_kind

__all__ = ["reduce_on_device"]

_ELEMENT_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


class _Stopped(Exception):
    """The consumer has stopped (it failed): the reader's pass ends without reading further."""


def reduce_on_device(
    path: str | os.PathLike[str],
    layers: list[str] | None = None,
    nonfinite: NonFinite = "raise",
    *,
    device: Any = "cuda",
    block_rows: int = 16384,
    product_rows: int = 4096,
    buffers: int = 4,
) -> tuple[dict[str, AgopAccumulator], list[str]]:
    """Per-layer accumulators of a capture directory reduced on ``device``, and the shard digests
    counted (those of the manifest, every shard verified). See the module docstring.
    ``buffers`` host buffers of ``block_rows`` rows of the widest layer form the ring between the
    reader and the device (at least 2 let the read of one block overlap the work on another)."""
    torch = require("torch", "nil analyze --device cuda")
    p = Path(os.fspath(path))
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NilValueError("--device cuda: torch finds no CUDA device (torch.cuda.is_available() is False); "
                            "use --device cpu")
    if nonfinite not in ("raise", "skip"):
        raise NilValueError(f"nonfinite: expected 'raise' or 'skip', found {nonfinite!r}")
    if min(block_rows, product_rows, buffers) < 1:
        raise NilValueError(f"block_rows, product_rows and buffers must be positive, found {block_rows}, "
                            f"{product_rows} and {buffers}")
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
    if not shards:
        raise FormatError(f"{p / 'manifest.json'}: empty capture: the manifest lists no shards, so there are no "
                          "rows to analyse")
    dtype = str(manifest["capture"]["dtype"])
    if dtype not in _ELEMENT_BYTES:
        raise NilValueError(f"{p}: shard dtype {dtype!r}: the device reduction reads {sorted(_ELEMENT_BYTES)}")
    torch_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    cuda = dev.type == "cuda"
    sums = {n: torch.zeros(d, d, dtype=torch.float64, device=dev) for n, d in dims.items()}
    counts = dict.fromkeys(dims, 0)
    skipped = {n: torch.zeros((), dtype=torch.int64, device=dev) for n in dims}
    cap = block_rows * max(dims.values(), default=1) * _ELEMENT_BYTES[dtype]
    host = [torch.empty(cap, dtype=torch.uint8, pin_memory=cuda) for _ in range(buffers)]
    host_np = [h.numpy() for h in host]
    events: list[Any] = [None] * buffers  # the device's copy of each buffer's last block
    free: queue.Queue[int] = queue.Queue()
    for k in range(buffers):
        free.put(k)
    handed: queue.Queue[tuple[Any, ...]] = queue.Queue()
    stop = threading.Event()
    wanted = [(n, block_rows) for n in dims]
    sources: list[str] = []  # the digests of the shards whose rows counted, as verified

    def acquire() -> int:  # on the reader thread: a buffer the device no longer reads
        while True:
            if stop.is_set():
                raise _Stopped
            try:
                k = free.get(timeout=0.05)
            except queue.Empty:
                continue
            if events[k] is not None:
                events[k].synchronize()
            return k

    def ready(i: int, k: int, layer: str, first: int, rows: int) -> None:  # a filled buffer, to the consumer
        handed.put(("rows", i, k, layer, first, rows))

    def verified(i: int, digest: str) -> None:  # shard i's last block is handed; its blake3 matched
        handed.put(("verified", i, digest))

    def read_all() -> None:  # the reader thread: every shard in order, each a verified pass
        try:
            _core.shard_stream(os.fspath(p), wanted, host_np, acquire, ready, verified)
            handed.put(("end",))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            handed.put(("error", e))

    # Raise mode: per block, whether it holds a non-finite row and the first such row (device
    # tensors), checked once per shard when the shard's pass has verified.
    flags: list[tuple[str, int, Any, Any]] = []

    def check_shard(i: int) -> None:
        if not flags:
            return
        hit = torch.stack([f[2] for f in flags])
        if bool(hit.any()):
            layer, first, _, where = flags[int(torch.nonzero(hit)[0, 0])]
            row = first + int(where)
            raise NonFiniteError(f"{p / shards[i]['file']}: layer {layer}, row {row}: a non-finite value "
                                 "(use nonfinite='skip' / --nonfinite skip to leave such rows out)")
        flags.clear()

    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="nil-analyze-read") as reader:
            reader.submit(read_all)
            try:
                while True:
                    item = handed.get()
                    if item[0] == "end":
                        break
                    if item[0] == "error":
                        raise item[1]
                    if item[0] == "verified":
                        check_shard(item[1])
                        sources.append(item[2])
                        continue
                    _, i, k, layer, first, rows = item
                    dim = dims[layer]
                    x = host[k][: rows * dim * _ELEMENT_BYTES[dtype]].view(torch_dtype).view(rows, dim)
                    x = x.to(dev, non_blocking=True)
                    if cuda:
                        events[k] = torch.cuda.Event()
                        events[k].record()
                    x = x.to(torch.float32)
                    bad = ~torch.isfinite(x).all(dim=1)
                    if nonfinite == "raise":
                        flags.append((layer, first, bad.any(), bad.to(torch.uint8).argmax()))
                    else:
                        skipped[layer] += bad.sum()
                        x = x.masked_fill(bad[:, None], 0.0)
                    counts[layer] += rows  # minus the skipped rows, read once at the end
                    for lo in range(0, rows, product_rows):  # float32 products of ≤ product_rows rows
                        xs = x[lo : lo + product_rows]
                        sums[layer] += torch.mm(xs.t(), xs).to(torch.float64)
                    # On CUDA the refill waits on the buffer's event; on the CPU x may alias the
                    # buffer, and the products above have read it.
                    free.put(k)
            finally:
                stop.set()  # a reader waiting for a buffer stops; one inside a read finishes it
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    out = {}
    for name in dims:
        bad_rows = int(skipped[name].item())
        out[name] = AgopAccumulator.from_sum(sums[name].cpu().numpy(), counts[name] - bad_rows, bad_rows,
                                             policy=nonfinite)
    return out, sources

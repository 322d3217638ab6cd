"""``ShardWriter``: streams per-layer gradient rows into a capture directory of safetensors shards.

The caller's thread only checks shapes and enqueues; a background thread converts rows to the shard
dtype, buffers them into shards of about ``shard_bytes`` and
writes each shard and then the manifest atomically (temporary file, fsync, rename) through the Rust
core, which also computes each shard's blake3. A killed writer therefore leaves a valid capture
(the shards listed in its manifest), and opening the same directory again with ``resume=True`` resumes it after
verifying its last shard.

Torch rows with ``staging=N`` (N ≥ 1; default 0, off): the caller's thread casts CUDA rows to the shard dtype
on the device and starts an asynchronous copy into one buffer of a ring of pinned host buffers on a
side stream (``staging.RowStager``, one event per buffer); the converter thread waits for that
buffer's event and copies the rows out, so the capture's stream never waits for a pageable
device-to-host copy; CPU tensors take the same path, unpinned and synchronously. Off by default:
on an H200 it measured no faster than ``staging=0`` (docs/benchmarks.md, "Streaming nearly
free"), which makes a device copy per write and a synchronous ``.cpu()`` in the converter thread;
both store the same bits.

One writer at a time: the writer holds an exclusive ``flock`` on the capture directory itself
(an open descriptor of it), so deleting or replacing ``.lock`` cannot let a second writer in.
A writer that is never closed is closed when the interpreter exits (``atexit``): its buffered
rows are written, with a warning on stderr; only a killed process (SIGKILL, ``os._exit``) loses
the rows it had not yet written as a shard, and its manifest still lists every complete shard.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import queue
import re
import sys
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .._dtypes import _BF16
from ..errors import FormatError, NilValueError, ShapeError, ShardError
from ._manifest import check_dtype, check_layers, check_resume, new_manifest
from .staging import RowStager, Staged

__all__ = ["ShardWriter"]

_NP_DTYPES: dict[str, Any] = {"float16": np.float16, "float32": np.float32, "bfloat16": _BF16}
_STALE_TMP = re.compile(r"^\.(\d{6}\.safetensors|manifest\.json)\.tmp-\d+$")
_FLUSH = object()
#: Writers not closed yet; closed (their rows written) when the interpreter exits.
_OPEN: weakref.WeakSet[ShardWriter] = weakref.WeakSet()


class _Write:
    """One ``write`` in the queue: rows kept as given, and CUDA rows staged in a host buffer."""

    __slots__ = ("plain", "staged")

    def __init__(self, plain: dict[str, Any], staged: Staged | None) -> None:
        self.plain = plain
        self.staged = staged


@atexit.register
def _close_open_writers() -> None:
    """Closes every writer the program left open, so that no row handed to ``write`` is lost."""
    for w in list(_OPEN):
        if w._pid != os.getpid():  # a forked child's copy: the parent owns the writer
            continue
        rows = w._pending_rows()
        print(f"nil: warning: ShardWriter({str(w.path)!r}) was never closed; closing it at exit "
              f"(writing {rows} buffered row(s)); call close() or use `with`", file=sys.stderr, flush=True)
        try:
            w.close()
        except BaseException as e:  # nothing to hand the error to any more: say it loudly
            print(f"nil: error: ShardWriter({str(w.path)!r}) could not write its last rows at exit: {e}; "
                  f"{rows} row(s) handed to write() are not in the capture (its manifest lists every "
                  "complete shard)", file=sys.stderr, flush=True)


def _held(manifest: Mapping[str, Any]) -> str:
    """'N rows in M shards' of a manifest (rows per layer when the layers differ)."""
    shards = manifest.get("shards") or []
    rows = {layer["name"]: sum(int(s["rows"].get(layer["name"], 0)) for s in shards) for layer in manifest["layers"]}
    counts = set(rows.values())
    what = f"{counts.pop()} rows" if len(counts) == 1 else "rows " + ", ".join(f"{n}: {r}" for n, r in rows.items())
    return f"{what} in {len(shards)} shard{'' if len(shards) == 1 else 's'}"


class ShardWriter:
    """Writes a capture directory: ``manifest.json`` plus ``shards/NNNNNN.safetensors``.

    ``layers`` maps each layer name to its row length; ``dtype`` is the storage type of every
    shard ("float16", "bfloat16" or "float32"); ``meta`` describes the model and the capture
    (``family, depth, width, params, budget, ratio`` and ``mode, probes, projection_seed,
    token_stride``, flat or under ``"model"``/``"capture"``; other keys are kept under ``extra``).

    >>> with ShardWriter("run1", layers={"blocks.0": 512}, meta={"family": "mlp", "depth": 4}) as w:
    ...     w.write({"blocks.0": rows})            # numpy arrays or torch tensors (CPU or CUDA)

    ``write`` returns as soon as the rows are queued: do not modify numpy arrays or CPU tensors
    after passing them (CUDA tensors are copied on their device at once). At most ``queue_size``
    writes wait in the queue, so a slow disk slows the producer instead of filling memory.
    ``staging``: host buffers of the staging ring (module docstring); 0 (default) stages nothing,
    a count ≥ 1 stages torch rows (CUDA rows pinned, on a side stream).
    An existing capture is never appended to silently: it is refused unless ``resume=True``,
    which appends to it after checking that its layers, dtype and meta agree with the arguments
    (``ShardError`` naming every difference otherwise) and says on stderr
    ``resuming: N rows in M shards``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        layers: Mapping[str, int],
        dtype: str = "float16",
        meta: Mapping[str, Any] | None = None,
        *,
        shard_bytes: int = 128 << 20,
        queue_size: int = 8,
        resume: bool = False,
        staging: int = 0,
    ) -> None:
        self.path = Path(path)
        self.layers = check_layers(layers)
        self.dtype = check_dtype(dtype)
        if _NP_DTYPES[self.dtype] is None:  # pragma: no cover - ml_dtypes is a dependency
            raise NilValueError("ShardWriter: bfloat16 needs the ml_dtypes package")
        if int(shard_bytes) <= 0 or int(queue_size) <= 0:
            raise NilValueError(
                f"ShardWriter: shard_bytes and queue_size must be positive, found {shard_bytes}, {queue_size}"
            )
        self.shard_bytes = int(shard_bytes)
        if isinstance(staging, bool) or not isinstance(staging, int) or staging < 0:
            raise NilValueError(f"ShardWriter: staging must be a count of host buffers >= 0, found {staging!r}")
        #: Host buffers of the staging ring (0: torch rows are not staged).
        self.staging = staging
        self._stagers: dict[Any, RowStager] = {}
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=int(queue_size))
        self._error: BaseException | None = None
        self._closed = False
        self._buffers: dict[str, list[npt.NDArray[Any]]] = {n: [] for n in self.layers}
        self._buffered = 0
        self._queued_rows = 0  # rows handed to write() and not yet listed in the manifest
        self._rows_lock = threading.Lock()
        self._lock_fd = -1
        self._dir_fd = -1
        self._pid = os.getpid()
        self.manifest = self._open(new_manifest(self.layers, self.dtype, meta), resume)
        # Two stages overlap: the converter thread (device-to-host, dtype, concatenation) fills the
        # next shard while the disk thread serialises, hashes, writes and fsyncs the previous one.
        self._next_index = len(self.manifest["shards"])
        self._disk: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._disk_thread = threading.Thread(target=self._run_disk, name=f"nil-shard-disk:{self.path.name}", daemon=True)
        self._disk_thread.start()
        self._thread = threading.Thread(target=self._run, name=f"nil-shard-writer:{self.path.name}", daemon=True)
        self._thread.start()
        _OPEN.add(self)

    # -- opening -----------------------------------------------------------------------------

    def _open(self, wanted: dict[str, Any], resume: bool) -> dict[str, Any]:
        p = self.path
        try:
            os.stat(p)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise FormatError(f"{p}: a loop of symbolic links; expected a capture directory") from None
        if p.exists() and not p.is_dir():
            raise NilValueError(f"{p}: expected a capture directory, found a file")
        try:
            (p / "shards").mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(p / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError as e:
            raise PermissionError(
                e.errno, f"{p}: cannot write a capture here (read-only directory?); choose a writable path", str(p)
            ) from None
        try:
            self._lock()
            return self._open_locked(wanted, resume)
        except BaseException:
            self._unlock()
            raise

    def _lock(self) -> None:
        """Takes the capture's writer lock: an exclusive flock on the directory's own descriptor
        (deleting ``.lock`` cannot release it), and on ``.lock`` too, which older writers lock."""
        p = self.path
        self._dir_fd = os.open(p, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        for fd in (self._dir_fd, self._lock_fd):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ShardError(f"{p}: another ShardWriter is writing this capture") from None

    def _unlock(self) -> None:
        for fd in (self._lock_fd, self._dir_fd):
            if fd >= 0:
                os.close(fd)
        self._lock_fd = self._dir_fd = -1

    def _open_locked(self, wanted: dict[str, Any], resume: bool) -> dict[str, Any]:
        p = self.path
        if (p / "manifest.json").exists():
            stored: dict[str, Any] = json.loads(_core.manifest_read(str(p)))
            stored.setdefault("shards", [])  # absent means none, as the core reads it
            held = _held(stored)
            if not resume:
                raise FileExistsError(
                    f"{p}: expected a new capture directory, found an existing capture ({held}); pass "
                    "resume=True to append to it, or write to a new directory"
                )
            check_resume(str(p), stored, wanted)
            if stored["shards"]:
                _core.shard_verify(str(p), len(stored["shards"]) - 1)
            self._remove_stale_temporaries()
            print(f"nil: {p}: resuming: {held}", file=sys.stderr, flush=True)
            return stored
        others = [e.name for e in p.iterdir() if e.name not in ("shards", ".lock")]
        if others or any(True for _ in (p / "shards").iterdir()):
            raise FileExistsError(
                f"{p}: not empty and holds no manifest.json ({sorted(others)[:5]}...); "
                "refusing to write a capture into it"
            )
        _core.manifest_write(str(p), json.dumps(wanted, indent=1))
        return wanted

    def _remove_stale_temporaries(self) -> None:
        """Deletes temporary files an interrupted writer left (never a listed shard)."""
        for d in (self.path, self.path / "shards"):
            for e in d.iterdir():
                if _STALE_TMP.match(e.name):
                    e.unlink(missing_ok=True)

    # -- producer side -----------------------------------------------------------------------

    def write(self, rows: Mapping[str, Any]) -> None:
        """Queues rows for some or all layers: ``{name: array (n, dim)}``, numpy or torch."""
        self._raise_if_failed()
        if self._closed:
            raise NilValueError(f"{self.path}: ShardWriter is closed")
        item: dict[str, Any] = {}
        device_rows: dict[str, Any] = {}
        for name, r in rows.items():
            dim = self.layers.get(name)
            if dim is None:
                raise NilValueError(f"{self.path}: layer {name}: not one of this writer's layers {list(self.layers)}")
            shape = tuple(r.shape)
            if len(shape) != 2 or shape[1] != dim:
                raise ShapeError(f"{self.path}: layer {name}: expected rows of shape (n, {dim}), found {shape}")
            if self.staging and type(r).__module__.startswith("torch") and hasattr(r, "device"):
                device_rows[name] = r
            else:
                item[name] = self._snapshot(r)
        staged = self._stage(device_rows) if device_rows else None
        with self._rows_lock:
            self._queued_rows += sum(int(r.shape[0]) for r in rows.values())
        try:
            self._put(_Write(item, staged))
        except BaseException:
            if staged is not None:
                staged.release()
            raise

    def _stage(self, rows: dict[str, Any]) -> Staged:
        """Starts the copy of torch rows into a host buffer of the ring: CUDA rows cast to the shard
        dtype on their device first (as ``staging=0`` does), CPU rows copied as they are (numpy
        converts them in the converter thread, as for ``staging=0``)."""
        import torch

        target = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[self.dtype]
        by_device: dict[Any, dict[str, Any]] = {}
        for name, r in rows.items():
            r = r.detach()
            # CUDA: a device copy in the shard dtype (as staging=0 makes), so the caller may reuse r.
            by_device.setdefault(r.device, {})[name] = r.to(dtype=target, copy=True) if r.is_cuda else r
        if len(by_device) > 1:  # rows of one write on several GPUs: rare; one buffer per device
            raise NilValueError(f"{self.path}: one write holds rows on several devices {list(by_device)}; "
                                "write each device's rows separately")
        (device, converted), = by_device.items()
        stager = self._stagers.get(device)
        if stager is None:
            stager = self._stagers[device] = RowStager(device, self.staging)
        while True:  # wait for a free buffer, but never on a writer that has failed
            try:
                return stager.stage(converted, timeout=0.1)
            except queue.Empty:
                self._raise_if_failed()
                if not self._thread.is_alive():
                    raise ShardError(f"{self.path}: the writer thread has stopped") from None

    def _snapshot(self, r: Any) -> Any:
        """CUDA tensors: converted and copied on their device now (asynchronously); else as is."""
        if type(r).__module__.startswith("torch") and getattr(r, "is_cuda", False):
            import torch

            target = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[self.dtype]
            t = r.detach().to(dtype=target, copy=True)
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record()
            return (t, event)
        return r

    def flush(self) -> None:
        """Writes the buffered rows as a shard now and waits until the manifest lists it."""
        done = threading.Event()
        self._put((_FLUSH, done))
        while not done.wait(0.1):
            if not self._thread.is_alive():
                break
        self._raise_if_failed()

    def _put(self, item: Any) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                self._raise_if_failed()
                if not self._thread.is_alive():
                    raise ShardError(f"{self.path}: the writer thread has stopped") from None

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            self._closed = True
            raise err

    def close(self) -> None:
        """Writes what is buffered, waits for the writer thread and releases the capture."""
        if self._closed and not self._thread.is_alive():
            self._raise_if_failed()
            return
        self._closed = True
        _OPEN.discard(self)
        self._queue.put(None)
        self._thread.join()
        self._unlock()
        self._raise_if_failed()

    def _pending_rows(self) -> int:
        """Rows handed to ``write`` that no shard listed in the manifest holds yet."""
        with self._rows_lock:
            return self._queued_rows

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception:
            pass  # the body's exception is the one to see

    @property
    def rows(self) -> dict[str, int]:
        """Rows per layer that the manifest lists so far (written shards only)."""
        return {n: sum(int(s["rows"][n]) for s in self.manifest["shards"]) for n in self.layers}

    # -- writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                if self._error is None:
                    self._guard(self._write_shard)
                self._disk.put(None)
                self._disk_thread.join()
                return
            if self._error is not None:
                if isinstance(item, tuple) and item and item[0] is _FLUSH:
                    item[1].set()
                if isinstance(item, _Write) and item.staged is not None:
                    item.staged.release()
                continue  # drain so the producer never blocks on a dead writer
            if isinstance(item, tuple) and item and item[0] is _FLUSH:
                self._guard(self._write_shard)
                self._disk.join()  # the manifest lists every shard handed over so far
                item[1].set()
                continue
            self._guard(lambda: self._add(item))

    def _run_disk(self) -> None:
        """Disk side: writes each shard, then the manifest that lists it, in shard order."""
        while True:
            job = self._disk.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    self._guard(lambda: self._commit(*job))
            finally:
                self._disk.task_done()

    def _commit(self, index: int, file: str, tensors: list[Any], rows: dict[str, int]) -> None:
        nbytes, digest = _core.shard_write(str(self.path / file), tensors, {"index": str(index)})
        entry = {"file": file, "bytes": nbytes, "rows": rows, "blake3": digest}
        manifest = dict(self.manifest)
        manifest["shards"] = [*self.manifest["shards"], entry]
        _core.manifest_write(str(self.path), json.dumps(manifest, indent=1))
        self.manifest = manifest
        with self._rows_lock:
            self._queued_rows -= sum(rows.values())

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except BaseException as e:  # handed to the producer on its next call
            self._error = e

    def _add(self, item: _Write) -> None:
        staged = item.staged
        arrays = {}
        try:
            for name, r in item.plain.items():
                arrays[name] = self._to_numpy(r)
            if staged is not None:
                arrays.update(staged.take(self._to_numpy))  # CUDA rows: already in the shard dtype
        finally:
            if staged is not None:
                staged.release()
        for name, arr in arrays.items():
            self._buffers[name].append(arr)
            self._buffered += arr.nbytes
        if self._buffered >= self.shard_bytes:
            self._write_shard()

    def _to_numpy(self, r: Any) -> npt.NDArray[Any]:
        target = _NP_DTYPES[self.dtype]
        if isinstance(r, tuple):  # a CUDA snapshot: (tensor of the target dtype, event)
            t, event = r
            event.synchronize()
            r = t.cpu()
        if type(r).__module__.startswith("torch"):
            import torch

            t = r.detach().cpu()
            if t.dtype == torch.bfloat16:
                a = t.view(torch.int16).numpy().view(np.uint16).view(_BF16)
            else:
                a = t.numpy()
        else:
            a = np.asarray(r)
        if a.dtype != target:
            if not (np.issubdtype(a.dtype, np.floating) or a.dtype == _BF16 or np.issubdtype(a.dtype, np.integer)):
                raise ShapeError(f"{self.path}: rows of dtype {a.dtype} cannot be stored as {self.dtype}")
            a = a.astype(target)
        return np.ascontiguousarray(a)

    def _write_shard(self) -> None:
        """Converter side: concatenates the buffered rows into one shard and hands it to the disk thread."""
        if self._buffered == 0 and not any(self._buffers.values()):
            return
        index = self._next_index
        file = f"shards/{index:06d}.safetensors"
        tensors = []
        rows: dict[str, int] = {}
        for name, dim in self.layers.items():
            parts = self._buffers[name]
            arr = np.concatenate(parts) if parts else np.empty((0, dim), _NP_DTYPES[self.dtype])
            arr = np.ascontiguousarray(arr)
            rows[name] = int(arr.shape[0])
            tensors.append((name, self.dtype, int(arr.shape[0]), dim, arr.reshape(-1).view(np.uint8)))
        self._next_index += 1
        while True:  # wait for room, but never on a disk thread that has failed
            if self._error is not None:
                raise self._error
            try:
                self._disk.put((index, file, tensors, rows), timeout=0.1)
                break
            except queue.Full:
                continue
        self._buffers = {n: [] for n in self.layers}
        self._buffered = 0

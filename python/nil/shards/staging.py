"""Host staging of device rows: a ring of k (pinned, on CUDA) host buffers filled by asynchronous
device-to-host copies on a side stream, one event per buffer.

``RowStager.stage({name: tensor})`` runs on the producer's (the capture's) thread and only enqueues
work on the device: the side stream waits for the producer's stream, copies every tensor into one
free host buffer (``non_blocking``) and records the buffer's event. The consumer (the writer's
thread) calls ``Staged.take()``, which waits for that event, copies the rows out of the buffer into
numpy arrays and returns the buffer to the ring. The producer blocks only when all k buffers are in
flight, so a slow consumer slows the producer instead of filling memory.

On the CPU the same path runs without pinning and synchronously (no stream, no event): the rows
are copied into the buffer at once. Tensors keep their dtype; any conversion is the caller's
(the values are copied bit for bit).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._dtypes import _BF16

__all__ = ["RowStager", "Staged"]


def _numpy_view(t: Any) -> npt.NDArray[Any]:
    """A numpy view of a CPU tensor, bfloat16 as ml_dtypes.bfloat16 (same bits)."""
    import torch

    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16).view(_BF16)  # type: ignore[no-any-return]
    return t.numpy()  # type: ignore[no-any-return]


@dataclass
class Staged:
    """One buffer of the ring in flight: its rows (views of the buffer) and the event of their copy."""

    stager: RowStager
    slot: int
    views: list[tuple[str, Any]]
    event: Any

    def take(self, convert: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None
             ) -> dict[str, npt.NDArray[Any]]:
        """Waits for the copy, returns the rows as numpy arrays that do not share the buffer, and
        frees the buffer. ``convert`` (e.g. a dtype cast) is applied to a view of the buffer
        first, so a converting caller pays one pass over the rows instead of a copy and a cast."""
        try:
            if self.event is not None:
                self.event.synchronize()
            out = {}
            for name, v in self.views:
                view = _numpy_view(v)
                a = view if convert is None else convert(view)
                out[name] = np.array(a, copy=True) if np.may_share_memory(a, view) else a
            return out
        finally:
            self.release()

    def release(self) -> None:
        """Returns the buffer to the ring (once) without reading it (e.g. after a writer error)."""
        if self.slot >= 0:
            if self.event is not None:
                self.event.synchronize()  # the copy must be over before the buffer is reused
            slot, self.slot, self.views = self.slot, -1, []
            self.stager._free.put(slot)


class RowStager:
    """A ring of ``slots`` host buffers for rows of tensors on ``device`` (see the module docstring).

    Buffers are allocated on first use and grown (re-allocated) when one write needs more bytes
    than a buffer holds; on CUDA they are pinned and the copies run on a side stream."""

    def __init__(self, device: Any, slots: int = 2) -> None:
        import torch

        if int(slots) < 1:
            raise ValueError(f"RowStager: slots must be positive, found {slots}")
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.slots = int(slots)
        self._buffers: list[Any] = [None] * self.slots
        self._events: list[Any] = [None] * self.slots
        self._free: queue.Queue[int] = queue.Queue()
        for i in range(self.slots):
            self._free.put(i)
        self._stream = torch.cuda.Stream(device=self.device) if self.cuda else None  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()

    def _buffer(self, slot: int, nbytes: int) -> Any:
        import torch

        buf = self._buffers[slot]
        if buf is None or buf.numel() < nbytes:
            size = max(nbytes, 0 if buf is None else 2 * buf.numel())
            buf = torch.empty(size, dtype=torch.uint8, pin_memory=self.cuda)
            self._buffers[slot] = buf
        return buf

    def stage(self, rows: dict[str, Any], *, timeout: float | None = None) -> Staged:
        """Starts copying ``rows`` ({name: tensor on this stager's device}) into a free buffer."""
        import torch

        tensors = [(n, t.detach()) for n, t in rows.items()]
        for n, t in tensors:
            if t.device != self.device:
                raise ValueError(f"RowStager: layer {n}: rows on {t.device}, this stager copies from {self.device}")
        # 64-byte aligned offsets: every view starts on a boundary any dtype accepts.
        offsets, total = [], 0
        for _, t in tensors:
            offsets.append(total)
            total += (t.numel() * t.element_size() + 63) // 64 * 64
        slot = self._free.get(timeout=timeout)
        try:
            buf = self._buffer(slot, total)
            views = []
            for (n, t), off in zip(tensors, offsets):
                nbytes = t.numel() * t.element_size()
                views.append((n, buf[off : off + nbytes].view(t.dtype).view(t.shape)))
            if not self.cuda:
                for (_, t), (_, v) in zip(tensors, views):
                    np.copyto(_numpy_view(v), _numpy_view(t))  # numpy's copy: faster here than copy_
                return Staged(self, slot, views, None)
            assert self._stream is not None
            producer = torch.cuda.current_stream(self.device)
            self._stream.wait_stream(producer)
            with torch.cuda.stream(self._stream):
                for (_, t), (_, v) in zip(tensors, views):
                    t = t.contiguous() if not t.is_contiguous() else t
                    v.copy_(t, non_blocking=True)
                    # The caching allocator must not hand t's memory to the producer's stream
                    # before the side stream has copied it.
                    t.record_stream(self._stream)
                event = torch.cuda.Event()  # type: ignore[no-untyped-call]
                event.record(self._stream)
            self._events[slot] = event
            return Staged(self, slot, views, event)
        except BaseException:
            self._free.put(slot)
            raise

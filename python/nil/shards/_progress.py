"""Running a long core call on a helper thread, with an optional rich progress bar and Ctrl-C.

The core reports processed bytes through a callback from its worker threads; the calling thread
draws the bar and, on KeyboardInterrupt, tells the core to stop at its next block.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["run_with_progress"]


def run_with_progress(
    fn: Callable[[Callable[[int], bool]], T], total: int, description: str, show: bool
) -> T:
    """Calls ``fn(progress)`` on a thread; ``progress(nbytes)`` returns False once cancelled."""
    done_bytes = [0]
    cancelled = threading.Event()
    lock = threading.Lock()
    result: list[Any] = []
    error: list[BaseException] = []

    def progress(n: int) -> bool:
        with lock:
            done_bytes[0] += int(n)
        return not cancelled.is_set()

    def work() -> None:
        try:
            result.append(fn(progress))
        except BaseException as e:  # re-raised on the calling thread
            error.append(e)

    thread = threading.Thread(target=work, name="nil-reduce", daemon=True)
    thread.start()
    try:
        if show and sys.stderr.isatty():
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=True,
            ) as bar:
                task = bar.add_task(description, total=total)
                while thread.is_alive():
                    thread.join(0.1)
                    bar.update(task, completed=done_bytes[0])
        else:
            while thread.is_alive():
                thread.join(0.1)
    except KeyboardInterrupt:
        cancelled.set()
        thread.join()
        raise
    if error:
        raise error[0]
    return result[0]  # type: ignore[no-any-return]

"""Run an SPMD function on N threads of this process, one per rank, as a test's workers."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_spmd(
    fn: Callable[[int], T],
    size: int,
    *,
    timeout: float = 60.0,
    on_error: Callable[[], object] | None = None,
) -> list[T]:
    """Call ``fn(rank)`` for every rank in its own thread; the results by rank.

    The first exception (in time) is re-raised once every thread has ended. Before that,
    ``on_error`` runs (close the channels, say), so that ranks waiting on the failed one end too
    instead of waiting out their deadlines. A rank still running after ``timeout`` seconds is a
    ``TimeoutError`` naming it.
    """
    done: queue.Queue[tuple[int, T | None, BaseException | None]] = queue.Queue()

    def body(rank: int) -> None:
        try:
            done.put((rank, fn(rank), None))
        except BaseException as exc:
            done.put((rank, None, exc))

    threads = [
        threading.Thread(target=body, args=(rank,), name=f"spmd-rank-{rank}", daemon=True)
        for rank in range(size)
    ]
    for thread in threads:
        thread.start()
    results: dict[int, T | None] = {}
    first: BaseException | None = None
    deadline = time.monotonic() + timeout
    while len(results) < size:
        try:
            rank, value, exc = done.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            if on_error is not None:
                on_error()
            stuck = sorted(set(range(size)) - set(results))
            for thread in threads:
                thread.join(5.0)
            msg = f"ranks {stuck} still running after {timeout:g} s"
            raise TimeoutError(msg) from first
        results[rank] = value
        if exc is not None and first is None:
            first = exc
            if on_error is not None:
                on_error()
    for thread in threads:
        thread.join()
    if first is not None:
        raise first
    return [results[rank] for rank in range(size)]  # type: ignore[misc]

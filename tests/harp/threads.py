"""Run Harp collectives on threads, one per worker, over the inproc channel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tests.net.spmd_threads import run_spmd
from twister2.harp import Harp
from twister2.net import Dataflow
from twister2.net.inproc import InprocChannel

T = TypeVar("T")


def run_harp(
    workers: int,
    body: Callable[[Harp], T],
    *,
    timeout: float = 60.0,
    harp_timeout: float = 30.0,
    config: dict[str, Any] | None = None,
) -> list[T]:
    """``body(harp)`` on every worker; the results by worker. When one raises, the channels
    close so that the others end too; the first error is re-raised."""
    channels = InprocChannel.group(workers)
    flows = [Dataflow(ch, config=config) for ch in channels]

    def close_channels() -> None:
        for ch in channels:
            ch.close()

    try:
        return run_spmd(
            lambda r: body(Harp(flows[r], timeout=harp_timeout)),
            workers,
            timeout=timeout,
            on_error=close_channels,
        )
    finally:
        for flow in flows:
            flow.close()
        close_channels()

"""Every streaming operator on threads over the inproc channel, against the reference."""

from __future__ import annotations

from typing import Any

import pytest

from tests.net.spmd_threads import run_spmd
from tests.net.stream.cases import NAMES, expected, normalise, plan_for, run_case, sort_expected
from twister2.net import Dataflow
from twister2.net.inproc import InprocChannel


def run_threads(name: str, workers: int, config: dict[str, Any] | None = None) -> dict[int, Any]:
    plan = plan_for(name, workers)
    channels = InprocChannel.group(workers)
    flows = [Dataflow(ch, config=config) for ch in channels]
    try:
        parts = run_spmd(lambda r: run_case(name, flows[r], plan), workers, timeout=120)
    finally:
        for flow in flows:
            flow.close()
        for ch in channels:
            ch.close()
    merged: dict[int, Any] = {}
    for part in parts:
        merged.update(part)
    return merged


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_stream_operator_matches_reference(name: str, workers: int) -> None:
    got = normalise(name, run_threads(name, workers))
    assert got == sort_expected(name, expected(name, plan_for(name, workers)))


@pytest.mark.parametrize("name", ["partition", "keyed_reduce", "allgather"])
def test_tiny_buffers_still_deliver_everything(name: str) -> None:
    config = {
        "stream.batch_records": 3,
        "stream.window_batches": 1,
        "stream.send_buffer": 5,
        "stream.receive_buffer": 4,
        "stream.linger_ms": 0.5,
    }
    got = normalise(name, run_threads(name, 3, config))
    assert got == sort_expected(name, expected(name, plan_for(name, 3)))

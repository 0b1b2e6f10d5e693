"""Operations are found by name: a worker that creates another operation, another plan, or none
gets an error naming both sides within the receive timeout, never misrouted data; a name reused
every iteration keeps iterations apart; every operation reports to the dashboard."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import twister2
from tests.net import name_jobs
from twister2 import JobFailedError
from twister2.master import read_events
from twister2.net.batch import AllReduce, Reduce
from twister2.net.dataflow import Dataflow, OperationError
from twister2.net.inproc import InprocChannel
from twister2.net.plan import Plan

CLUSTERS = [("local", "tcp"), pytest.param("mpi", "mpi", marks=pytest.mark.mpi)]
QUICK = {"network.recv_timeout": 60.0}


def _fails(job: Any, workers: int, cluster: str, channel: str) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(JobFailedError) as info:
        twister2.run(
            job, workers=workers, cluster=cluster, config={"network.channel": channel, **QUICK}
        )
    return str(info.value), time.monotonic() - started


@pytest.mark.parametrize(("cluster", "channel"), CLUSTERS)
@pytest.mark.parametrize("workers", [2, 3])
def test_an_extra_operation_on_one_worker_is_named(
    cluster: str, channel: str, workers: int
) -> None:
    message, took = _fails(name_jobs.extra_operation_on_worker_0, workers, cluster, channel)
    assert "operation '0' is a reduce of" in message
    assert "but a gather of" in message and "on worker 0" in message
    assert "every worker must create the same operations" in message
    assert took < 50  # the mismatch, not the 60 s receive timeout, ended it


@pytest.mark.parametrize(("cluster", "channel"), CLUSTERS)
@pytest.mark.parametrize("workers", [2, 3])
def test_one_name_with_another_plan_is_named(cluster: str, channel: str, workers: int) -> None:
    message, took = _fails(name_jobs.same_name_other_plan, workers, cluster, channel)
    assert "operation 'x' is an allreduce" in message or "operation 'x' is a allreduce" in message
    assert f"{workers} targets" in message and f"{workers + 1} targets" in message
    assert took < 50


@pytest.mark.parametrize(("cluster", "channel"), CLUSTERS)
@pytest.mark.parametrize("workers", [2, 3])
def test_an_operation_one_worker_never_creates_is_named(
    cluster: str, channel: str, workers: int
) -> None:
    message, took = _fails(name_jobs.last_worker_skips, workers, cluster, channel)
    # told by the worker that ended, or (its notice may come before the messages) at the timeout
    told = f"worker {workers - 1} ended without creating an operation 'late'" in message
    timed_out = "a worker that never creates operation 'late'" in message
    assert told or timed_out, message
    assert took < 70


@pytest.mark.parametrize(("cluster", "channel"), CLUSTERS)
@pytest.mark.parametrize("workers", [2, 3])
def test_a_name_reused_every_iteration_keeps_iterations_apart(
    cluster: str, channel: str, workers: int, jobs_dir: Path
) -> None:
    result = twister2.run(
        name_jobs.one_name_every_iteration,
        workers=workers,
        cluster=cluster,
        config={"network.channel": channel},
    )
    for i in range(20):
        totals = {rounds[i][0] for rounds in result.values}
        assert totals == {sum(i * 100 + r for r in range(workers))}
        expect: dict[int, int] = defaultdict(int)
        for r in range(workers):
            for k in range(r + 1):
                expect[k % 3] += i
        merged = [pair for rounds in result.values for pair in rounds[i][1]]
        assert sorted(merged) == sorted(expect.items())  # each key once, with its sum
    reports = [e for e in read_events(jobs_dir / result.job_id) if e["type"] == "operation"]
    names = defaultdict(set)
    for e in reports:
        names[e["name"]].add(e["worker_id"])
    # each iteration's operations are reported once per worker, under their names
    assert names["total"] == names["counts#19"] == set(range(workers))
    assert len(reports) == 2 * 20 * workers
    counted = [e for e in reports if e["name"] == "counts#3"]
    assert {e["op"] for e in counted} == {"keyed_reduce"}
    assert sum(e["values"] for e in counted) == sum(r + 1 for r in range(workers))
    assert all(e["sources"] == list(range(workers)) and e["bytes"] > 0 for e in counted)


def test_names_must_be_non_empty_strings() -> None:
    (ch,) = InprocChannel.group(1)
    with Dataflow(ch) as flow:
        for bad in ("", 3):
            with (
                pytest.raises(TypeError, match="an operation's name is a non-empty str"),
                flow.named(bad),  # type: ignore[arg-type]
            ):
                pass
        with flow.named("a"):
            first, second = Reduce(flow, Plan.per_worker(1)), Reduce(flow, Plan.per_worker(1))
        assert (first.id, second.id) == ("a", "a#1")
        assert AllReduce(flow, Plan.per_worker(1)).id == "0"


def test_early_messages_past_the_budget_fail_naming_the_operation() -> None:
    a, b = InprocChannel.group(2)
    config = {"net.early_message_bytes": 10_000, "network.recv_timeout": 20.0}
    with Dataflow(a, config=config) as fa, Dataflow(b, config=config) as fb:
        plan = Plan((0,), (1,), 2)
        with fa.named("big"):
            sender = Reduce(fa, plan, "sum", target=0)
        payload = [bytes(5_000)] * 8
        sender.send_all(0, [b"".join(payload)], finish=True)
        sender.wait(timeout=20)
        deadline = time.monotonic() + 20
        while fb._failure is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with fb.named("waiting"):
            other = Reduce(fb, Plan((1,), (1,), 2), "sum", target=0)
        with pytest.raises(OperationError) as info:
            other.send_all(0, [1], finish=True).wait(timeout=5)
        assert "over net.early_message_bytes, 10000" in str(info.value)
        assert "'big' (from workers [0])" in str(info.value)


def test_send_all_makes_progress_while_the_buffer_is_full() -> None:
    a, b = InprocChannel.group(2)
    config = {"net.send_buffer_records": 2, "net.batch_records": 1000}
    with Dataflow(a, config=config) as fa, Dataflow(b, config=config) as fb:
        plan = Plan((0,), (1,), 2)
        op = Reduce(fa, plan, "sum")
        peer = Reduce(fb, plan, "sum")
        op.send_all(0, range(100), finish=True)  # more than the buffer: progress inside
        op.wait(timeout=20)
        peer.wait(timeout=20)
        assert peer.result() == sum(range(100))

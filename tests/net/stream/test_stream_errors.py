"""What bad input and faults get from the streaming operators: a clear error naming the operator
and the worker, or a bounded wait that ends in one; never a silent hang or unbounded memory.

The entry functions of the jobs are at the top of this module (workers import them from here).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest

import twister2
from tests.net.spmd_threads import run_spmd
from twister2 import WorkerEnv
from twister2.errors import JobFailedError
from twister2.net import Dataflow, OperationError, Plan
from twister2.net.inproc import InprocChannel
from twister2.net.stream import (
    StreamAllReduce,
    StreamDirect,
    StreamKeyedReduce,
    StreamPartition,
    StreamReduce,
)

SMALL = {
    "stream.send_buffer": 1000,
    "stream.receive_buffer": 1000,
    "stream.batch_records": 50,
    "stream.window_batches": 4,
}
HELD_AT_MOST = 1000 + 2 * 4 * 50 + 1000 + 50
"""Values a stalled target lets its source hand over with ``SMALL``: the send buffer, a window
of batches in flight and one waiting at the receiver, the receive buffer and a batch over it."""


def failing_sum(a: Any, b: Any) -> Any:
    if a + b > 50:
        msg = f"refusing to add {a} and {b}"
        raise ZeroDivisionError(msg)
    return a + b


def _stream_ints(op: Any, env: WorkerEnv, count: int, keyed: bool = False) -> None:
    """Every local source sends ``count`` ints (pairs when ``keyed``), every local target is
    read, until the stream ends: an operation error surfaces from one of these calls."""
    plan = Plan.per_worker(env.num_workers)
    me = env.worker_id
    for i in range(count):
        while not op.send(me, (f"k{i % 3}", i) if keyed else i):
            op.poll(me)
            time.sleep(0.001)
    op.finish(me)
    deadline = time.monotonic() + 60
    while not op.ended(plan.local_targets(me)[0]):
        op.poll(me)
        assert time.monotonic() < deadline, "the stream neither ended nor failed"
        time.sleep(0.001)


def raising_keyed_reduce(env: WorkerEnv) -> None:
    op = StreamKeyedReduce(env.dataflow, Plan.per_worker(env.num_workers), failing_sum)
    _stream_ints(op, env, 200, keyed=True)


def raising_allreduce(env: WorkerEnv) -> None:
    op = StreamAllReduce(env.dataflow, Plan.per_worker(env.num_workers), failing_sum)
    _stream_ints(op, env, 200)


@pytest.mark.parametrize(
    ("entry", "name"),
    [(raising_keyed_reduce, "stream keyed reduce"), (raising_allreduce, "stream allreduce")],
)
def test_a_raising_reduce_function_fails_the_job(entry: Any, name: str) -> None:
    with pytest.raises(JobFailedError) as info:
        twister2.run(entry, workers=2, config={"network.channel": "tcp"})
    message = str(info.value) + info.value.remote_traceback
    assert f"{name} (operation 0) on worker {info.value.worker_id}" in message
    assert "ZeroDivisionError" in message and "refusing to add" in message


def test_a_raising_reduce_function_in_the_senders_thread() -> None:
    (ch,) = InprocChannel.group(1)
    with Dataflow(ch) as flow:
        op = StreamReduce(flow, Plan((0, 0), (0,), 1), failing_sum)
        assert op.send(0, 40)
        with pytest.raises(OperationError, match=r"stream reduce .* on worker 0: ZeroDivision"):
            op.send(1, 40)  # the sources' 0th values are combined here
    ch.close()


def test_a_raising_allreduce_reaches_the_root_target_instead_of_hanging() -> None:
    """The root has sent everything and only reads when worker 1's values make the reduce
    function raise (in the root's receiving side): its reads must raise, not wait forever."""
    root_sent, root_failed = threading.Event(), threading.Event()

    def body(flow: Dataflow) -> str:
        op = StreamAllReduce(flow, Plan.per_worker(2), failing_sum)
        me = flow.rank
        if me == 1:
            root_sent.wait(30)
        for i in range(100):
            while not op.send(me, i):
                time.sleep(0.001)
        op.finish(me)
        if me == 0:
            root_sent.set()
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline and not root_failed.is_set():
                op.poll(me)
                time.sleep(0.001)
        except OperationError as exc:
            root_failed.set()
            return str(exc)
        finally:
            op.close()
        return "no error"

    root, _ = _threads(body, 2)
    assert re.match(r"stream allreduce .* on worker 0: ZeroDivisionError: refusing", root), root


# -- values that cannot be pickled -----------------------------------------------------------------
def unpicklable_value(env: WorkerEnv) -> None:
    """Worker 0 streams a lock to worker 1's target."""
    op = StreamDirect(env.dataflow, Plan((0,), (1,), 2))
    if env.worker_id == 0:
        op.send(0, threading.Lock())
        op.finish(0)
        op.wait(timeout=60)
    else:
        op.receive(0, timeout=60)


def test_an_unpicklable_value_fails_the_job_naming_its_type() -> None:
    with pytest.raises(JobFailedError) as info:
        twister2.run(unpicklable_value, workers=2, config={"network.channel": "tcp"})
    assert info.value.worker_id == 0
    message = str(info.value) + info.value.remote_traceback
    assert "stream direct (operation 0) on worker 0" in message
    assert "cannot send a value of type _thread.lock to worker 1" in message


def test_an_unpicklable_value_inside_a_pair_is_named() -> None:
    def body(flow: Dataflow) -> None:
        op = StreamPartition(flow, Plan((0,), (1,), 2))
        if flow.rank == 0:
            op.send(0, ("key", lambda: None))
            with pytest.raises(OperationError) as info:
                op.finish(0)
                op.wait(timeout=30)
            assert "cannot send a value of type tuple holding function to worker 1" in str(
                info.value
            )

    _threads(body, 2)


# -- a target that stops consuming -----------------------------------------------------------------
STOP_TAG = 5


def stalled_target(env: WorkerEnv) -> dict[str, Any]:
    """Worker 1's target never consumes: worker 0's source is held back for good. Worker 0's
    own target gets nothing: waiting for it ends in a TimeoutError."""
    op = StreamPartition(env.dataflow, Plan((0,), (1, 0), 2), partitioner=lambda v, n: 0)
    if env.worker_id == 1:
        env.comm.recv(0, STOP_TAG, timeout=120)
        op.close()
        return {}
    taken = refused = 0
    refused_since = None
    while refused_since is None or time.monotonic() - refused_since < 1.0:
        if op.send(0, bytes(1000)):
            taken += 1
            refused_since = None
            assert taken < 100 * HELD_AT_MOST, "the source was never held back"
        else:
            refused += 1
            refused_since = refused_since or time.monotonic()
            time.sleep(0.001)
    started = time.monotonic()
    timeout = ("no TimeoutError", 0.0)
    try:
        op.receive(1, timeout=0.5)
    except TimeoutError as exc:
        timeout = (str(exc), time.monotonic() - started)
    env.comm.send("stop", 1, STOP_TAG)
    op.close()
    return {"taken": taken, "refused": refused, "timeout": timeout}


def test_a_target_that_stops_consuming_holds_its_source_back_for_good() -> None:
    result = twister2.run(stalled_target, workers=2, config={"network.channel": "tcp", **SMALL})
    source = result.values[0]
    assert source["refused"] >= 100  # a second of False, every try
    assert source["taken"] <= HELD_AT_MOST
    message, waited = source["timeout"]
    assert "stream partition on worker 0: nothing for target 1 within 0.5 s" in message
    assert 0.5 <= waited < 30


def test_receive_with_a_timeout_ends_in_a_timeout_error() -> None:
    (ch,) = InprocChannel.group(1)
    with Dataflow(ch) as flow:
        op = StreamPartition(flow, Plan.per_worker(1))
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"nothing for target 0 within 0\.2 s"):
            op.receive(0, timeout=0.2)
        assert time.monotonic() - started >= 0.2
        op.finish(0)
        op.close()
    ch.close()


# -- misuse --------------------------------------------------------------------------------------
def _threads(fn: Any, workers: int, config: dict[str, Any] | None = None) -> list[Any]:
    channels = InprocChannel.group(workers)
    flows = [Dataflow(ch, config=config) for ch in channels]
    try:
        return run_spmd(lambda r: fn(flows[r]), workers, timeout=60)
    finally:
        for flow in flows:
            flow.close()
        for ch in channels:
            ch.close()


def test_misuse_gets_errors_that_say_what_to_do() -> None:
    (ch,) = InprocChannel.group(1)
    with Dataflow(ch) as flow:
        bad = StreamPartition(flow, Plan.per_worker(1), partitioner=lambda v, n: 7)
        with pytest.raises(
            OperationError, match=r"returned target 7 .* targets are 0..0"
        ):
            bad.send(0, "x")
        with pytest.raises(OperationError, match=r"the partitioner returned target 7"):
            bad.send_many(0, ["x", "y"])
        keyed = StreamKeyedReduce(flow, Plan.per_worker(1))
        with pytest.raises(OperationError, match=r"sends \(key, value\) pairs, got a str"):
            keyed.send(0, "not a pair")
        direct = StreamDirect(flow, Plan((0,), (0,), 1))
        with pytest.raises(ValueError, match=r"there is no target 3 \(the targets are 0..0\)"):
            direct.poll(3)
        with pytest.raises(ValueError, match=r"source 1 is not hosted here"):
            direct.send(1, "x")
        direct.finish(0)
        with pytest.raises(ValueError, match="source 0 already finished"):
            direct.send_many(0, ["x"])
        for op in (bad, keyed, direct):
            op.close()
    ch.close()
    with pytest.raises(ValueError, match="as many targets as sources"):
        StreamDirect(flow, Plan((0, 0), (0,), 1))

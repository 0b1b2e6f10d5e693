"""Flow control and delivery guarantees of the streaming operators, mostly in real processes.

- a slow consumer holds its sources back, and their memory stays bounded (RSS measured);
- drain-and-stop delivers every value sent before ``finish`` exactly once;
- an abrupt stop (``twister2 kill``, a worker SIGKILLed mid-stream) ends the job, no hang;
- values of one source reach one target in the order sent, under tiny batches and windows;
- one value alone is delivered after the linger time, with no further traffic;
- ``send_many`` takes what fits, in order, and means what ``send`` means for every operator.

The entry functions of the jobs are at the top of this module (workers import them from here).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import psutil
import pytest

import twister2
from tests.net.spmd_threads import run_spmd
from tests.net.stream.cases import NAMES, expected, make, normalise, plan_for, sort_expected
from tests.net.stream.cases import values_of as case_values
from twister2 import WorkerEnv
from twister2.errors import JobFailedError
from twister2.net import Dataflow, Plan
from twister2.net.inproc import InprocChannel
from twister2.net.partitioners import stable_hash
from twister2.net.stream import (
    END,
    StreamDirect,
    StreamKeyedPartition,
    StreamKeyedReduce,
    StreamPartition,
    StreamReduce,
)

ROOT = Path(__file__).resolve().parents[3]
CLUSTERS = [("local", "tcp"), pytest.param("mpi", "mpi", marks=pytest.mark.mpi)]
TINY = {
    "stream.batch_records": 3,
    "stream.window_batches": 1,
    "stream.send_buffer": 5,
    "stream.receive_buffer": 4,
    "stream.linger_ms": 0.5,
}
MB = 1 << 20


def _job(fn: Any, workers: int, cluster: str, channel: str, *args: Any, **config: Any) -> Any:
    return twister2.run(
        fn,
        workers=workers,
        cluster=cluster,
        config={"network.channel": channel, **config},
        args=[str(a) for a in args],
    )


def _consume_all(op: Any, targets: list[int], got: dict[int, list[Any]], limit: float) -> None:
    """Poll every target until every one's stream has ended."""
    live, deadline = set(targets), time.monotonic() + limit
    while live:
        moved = 0
        for t in sorted(live):
            values = op.poll(t)
            got[t] += values
            moved += len(values)
            if op.ended(t):
                live.discard(t)
        assert time.monotonic() < deadline, f"targets {sorted(live)} never ended"
        if not moved:
            time.sleep(0.0005)


# -- (a) a slow consumer: its source is held back, the source's memory stays bounded -----------
def _value(seq: int, size: int) -> bytes:
    return seq.to_bytes(8, "big") + bytes(size - 8)


def slow_consumer(env: WorkerEnv) -> dict[str, Any]:
    """Worker 0's source streams ``count`` values of ``size`` bytes to worker 1's target, which
    takes them one at a time and pauses every ``every`` values; worker 0 samples its RSS."""
    count, size, every = (int(a) for a in env.args)
    op = StreamDirect(env.dataflow, Plan((0,), (1,), 2))
    env.barrier("ready")
    if env.worker_id == 1:
        got, in_order = 0, True
        while (value := op.receive(0, timeout=120)) is not END:
            in_order = in_order and int.from_bytes(value[:8], "big") == got
            got += 1
            if got % every == 0:
                time.sleep(0.002)
        return {"got": got, "in_order": in_order}
    me = psutil.Process()
    samples: list[tuple[int, int]] = []  # (values sent so far, rss)
    sent = 0
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            samples.append((sent, me.memory_info().rss))

    sampler = threading.Thread(target=sample, name="rss-sampler")
    sampler.start()
    refused = 0
    try:
        while sent < count:
            if op.send(0, _value(sent, size)):
                sent += 1
            else:
                refused += 1
                time.sleep(0.0001)
        op.finish(0)
        op.wait(timeout=120)
    finally:
        stop.set()
        sampler.join()
    return {"sent": sent, "refused": refused, "samples": samples}


def test_a_slow_consumer_holds_its_source_back_with_bounded_memory() -> None:
    count, size = 200_000, 1500
    result = _job(slow_consumer, 2, "local", "tcp", count, size, 200)
    source, target = result.values
    assert target == {"got": count, "in_order": True}
    assert source["refused"] > 0, "the source was never held back"
    warm = 30_000  # past the send buffer, the window and the receive buffer (about 20,000)
    rss = [r for sent, r in source["samples"] if sent >= warm]
    assert len(rss) >= 5, "too few samples after the warm-up"
    growth = max(rss) - rss[0]
    streamed = count * size
    assert streamed >= 4 * 64 * MB
    assert growth < 64 * MB, f"RSS grew {growth / MB:.1f} MB while {streamed / MB:.0f} MB streamed"


# -- (b) drain-and-stop: every value sent before finish, exactly once ---------------------------
def drain_and_stop(env: WorkerEnv) -> dict[int, list[tuple[int, int]]]:
    """Each of ``workers + 1`` sources sends ``count`` ids (``send`` and ``send_many`` mixed)
    to ``workers + 2`` targets and finishes at once, with much still in flight."""
    count = int(env.args[0])
    plan = Plan.spread(env.num_workers + 1, env.num_workers + 2, env.num_workers)
    op = StreamPartition(env.dataflow, plan)
    me = env.worker_id
    targets = plan.local_targets(me)
    got: dict[int, list[tuple[int, int]]] = {t: [] for t in targets}
    rng = random.Random(me)
    for source in plan.local_sources(me):
        ids = [(source, i) for i in range(count)]
        while ids:
            if rng.random() < 0.5:
                taken = int(op.send(source, ids[0]))
            else:
                taken = op.send_many(source, ids[: rng.randint(1, 300)])
            ids = ids[taken:]
            if not taken:
                for t in targets:
                    got[t] += op.poll(t)
                time.sleep(0.0002)
        op.finish(source)
    _consume_all(op, targets, got, 120)
    for t in targets:
        assert op.receive(t, timeout=1) is END
    op.wait(timeout=60)
    op.close()
    return got


@pytest.mark.parametrize(("cluster", "channel"), CLUSTERS)
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_drain_and_stop_delivers_every_value_exactly_once(
    cluster: str, channel: str, workers: int
) -> None:
    count = 3000
    result = _job(drain_and_stop, workers, cluster, channel, count)
    delivered: Counter[tuple[int, int]] = Counter()
    for part in result.values:
        for values in part.values():
            delivered.update(tuple(v) for v in values)
    sent = {(s, i) for s in range(workers + 1) for i in range(count)}
    assert set(delivered) == sent, "values were lost"
    assert max(delivered.values()) == 1, "values were delivered twice"


# -- (c) an abrupt stop ends the job without hanging --------------------------------------------
def endless_stream(env: WorkerEnv) -> None:
    """Both workers stream to each other forever; worker 0 writes a marker file (the first
    argument) once values are flowing."""
    marker = Path(env.args[0])
    op = StreamPartition(env.dataflow, Plan.per_worker(env.num_workers))
    me, got, seq = env.worker_id, 0, 0
    while True:
        taken = op.send_many(me, [(me, seq + i) for i in range(100)])
        seq += taken
        got += len(op.poll(me))
        if me == 0 and got >= 1000 and not marker.exists():
            marker.write_text("flowing")
        if not taken:
            time.sleep(0.001)


def sigkill_mid_stream(env: WorkerEnv) -> None:
    """Worker 0 streams to worker 1, which kills itself once values are flowing."""
    op = StreamDirect(env.dataflow, Plan((0,), (1,), 2))
    if env.worker_id == 1:
        got = 0
        while True:
            got += len(op.poll(0))
            if got >= 2000:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.001)
    seq = 0
    while True:
        seq += op.send_many(0, list(range(seq, seq + 100)))
        time.sleep(0.0005)


def test_twister2_kill_stops_a_stream(tmp_path: Path) -> None:
    script = tmp_path / "endless.py"
    script.write_text(
        "import sys\nimport twister2\n"
        "from tests.net.stream.test_stream_backpressure import endless_stream\n"
        "if __name__ == '__main__':\n"
        "    twister2.run(endless_stream, workers=2, args=sys.argv[1:])\n"
    )
    marker = tmp_path / "flowing"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "twister2.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)

    submit = subprocess.Popen(
        [sys.executable, "-m", "twister2.cli", "submit", "local", str(script), "--", str(marker)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert submit.poll() is None, submit.communicate()
            assert time.monotonic() < deadline, "the stream never started"
            time.sleep(0.1)
        (job,) = json.loads(cli("jobs", "--json").stdout)
        assert job["state"] == "RUNNING"
        workers = [p.pid for p in psutil.Process(submit.pid).children(recursive=True)]
        assert cli("kill", job["job_id"]).returncode == 0
        _, err = submit.communicate(timeout=60)
        assert submit.returncode == 130, err
        assert f"job {job['job_id']} was killed" in err
        (job,) = json.loads(cli("jobs", "--json").stdout)
        assert job["state"] == "KILLED"
        alive = [p for p in workers if psutil.pid_exists(p)]
        alive = [p for p in alive if psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"processes {alive} outlived the job"
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.communicate()


@pytest.mark.parametrize(("cluster", "channel"), CLUSTERS)
def test_a_worker_killed_mid_stream_fails_the_job(cluster: str, channel: str) -> None:
    with pytest.raises(JobFailedError) as info:
        _job(sigkill_mid_stream, 2, cluster, channel)
    assert info.value.worker_id in (0, 1)
    assert "worker" in str(info.value)


# -- (d) order per source-target pair under tiny batches and windows -----------------------------
def ordered_streams(env: WorkerEnv) -> dict[str, dict[int, list[Any]]]:
    """4 sources to 3 targets through partition, keyed partition and direct (4 to 4), with
    ``send`` and ``send_many`` mixed; every local target's values."""
    count, workers, me = int(env.args[0]), env.num_workers, env.worker_id
    out: dict[str, dict[int, list[Any]]] = {}
    for name in ("partition", "keyed_partition", "direct"):
        plan = Plan.spread(4, 4 if name == "direct" else 3, workers)
        op: Any
        if name == "partition":
            op = StreamPartition(env.dataflow, plan)
        elif name == "keyed_partition":
            op = StreamKeyedPartition(env.dataflow, plan)
        else:
            op = StreamDirect(env.dataflow, plan)
        targets = plan.local_targets(me)
        got: dict[int, list[Any]] = {t: [] for t in targets}
        rng = random.Random(me)
        feeds = {s: [(f"k{i % 7}", (s, i)) for i in range(count)] for s in plan.local_sources(me)}
        while feeds:
            for source in list(feeds):
                chunk = feeds[source][: rng.randint(1, 8)]
                taken = op.send_many(source, chunk) if len(chunk) > 1 else op.send(source, chunk[0])
                feeds[source] = feeds[source][int(taken) :]
                if not feeds[source]:
                    op.finish(source)
                    del feeds[source]
                for t in targets:
                    got[t] += op.poll(t)
                if not taken:
                    time.sleep(0.0002)
        _consume_all(op, targets, got, 120)
        op.wait(timeout=60)
        op.close()
        out[name] = got
    return out


@pytest.mark.parametrize(("cluster", "channel"), CLUSTERS)
def test_order_per_source_and_target_with_tiny_batches(cluster: str, channel: str) -> None:
    count = 400
    result = _job(ordered_streams, 3, cluster, channel, count, **TINY)
    for name in ("partition", "keyed_partition", "direct"):
        seqs: dict[tuple[int, int], list[int]] = defaultdict(list)
        for part in result.values:
            for target, values in part[name].items():
                for _, (source, seq) in values:
                    seqs[source, target].append(seq)
        for (source, target), got in seqs.items():
            assert got == sorted(got), f"{name}: source {source} to target {target} out of order"
        assert sum(len(v) for v in seqs.values()) == 4 * count, name


# -- (e) one value alone is delivered after the linger time ---------------------------------------
REPLY_TAG = 9


def lone_value(env: WorkerEnv) -> float:
    """Worker 0 sends one value and does not finish until worker 1 says it arrived."""
    op = StreamDirect(env.dataflow, Plan((0,), (1,), 2))
    env.barrier("ready")
    if env.worker_id == 0:
        op.send(0, ("alone", time.monotonic()))
        reply = env.comm.recv(1, REPLY_TAG, timeout=30)
        op.finish(0)
        op.wait(timeout=30)
        return float(reply)
    value = op.receive(0, timeout=5)  # a TimeoutError here fails the job
    waited = time.monotonic() - value[1]
    env.comm.send(waited, 0, REPLY_TAG)
    assert value[0] == "alone"
    assert op.receive(0, timeout=30) is END
    return waited


@pytest.mark.parametrize(("cluster", "channel"), CLUSTERS)
def test_one_value_alone_is_delivered_after_the_linger_time(cluster: str, channel: str) -> None:
    result = _job(lone_value, 2, cluster, channel, **{"stream.linger_ms": 50})
    waited = result.values[1]
    # arrived (before any finish, in a batch of 1 of 256), within the 5 s the receive allowed
    assert 0 <= waited < 5


def test_one_value_alone_in_threads() -> None:
    (ch,) = InprocChannel.group(1)
    with Dataflow(ch, config={"stream.linger_ms": 50}) as flow:
        op = StreamPartition(flow, Plan.per_worker(1))
        time.sleep(0.1)  # the pump is idle
        assert op.send(0, "x")
        assert op.receive(0, timeout=5) == "x"
        op.finish(0)
        assert op.receive(0, timeout=5) is END
    ch.close()


# -- send_many: the bulk path --------------------------------------------------------------------
def run_bulk_case(name: str, flow: Dataflow, plan: Plan) -> dict[int, list[Any]]:
    """``cases.run_case`` with ``send_many`` in chunks of random length."""
    op = make(name, flow, plan)
    rank = flow.rank
    targets = plan.local_targets(rank)
    got: dict[int, list[Any]] = {t: [] for t in targets}
    sources = [s for s in plan.local_sources(rank) if not (name == "broadcast" and s != 0)]
    feeds = {s: case_values(name, s) for s in sources}
    rng = random.Random(rank)
    while feeds:
        for s in list(feeds):
            taken = op.send_many(s, feeds[s][: rng.randint(1, 40)])
            feeds[s] = feeds[s][taken:]
            if not feeds[s]:
                op.finish(s)
                del feeds[s]
            elif not taken:
                for t in targets:
                    got[t] += op.poll(t)
                time.sleep(0.0005)
    _consume_all(op, targets, got, 60)
    op.wait(timeout=60)
    op.close()
    return got


def _threads(fn: Any, workers: int, config: dict[str, Any] | None = None) -> list[Any]:
    channels = InprocChannel.group(workers)
    flows = [Dataflow(ch, config=config) for ch in channels]
    try:
        return run_spmd(lambda r: fn(flows[r]), workers, timeout=120)
    finally:
        for flow in flows:
            flow.close()
        for ch in channels:
            ch.close()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("workers", "config"), [(1, None), (3, None), (2, TINY)])
def test_send_many_matches_the_reference(
    name: str, workers: int, config: dict[str, Any] | None
) -> None:
    plan = plan_for(name, workers)
    parts = _threads(lambda flow: run_bulk_case(name, flow, plan), workers, config)
    merged: dict[int, Any] = {}
    for part in parts:
        merged.update(part)
    assert normalise(name, merged) == sort_expected(name, expected(name, plan))


def test_send_many_takes_what_fits_in_order() -> None:
    config = {"stream.send_buffer": 10, "stream.receive_buffer": 10, "stream.batch_records": 5}
    config["stream.window_batches"] = 1

    def body(flow: Dataflow) -> list[int]:
        op = StreamDirect(flow, Plan((0,), (1,), 2))
        if flow.rank == 0:
            first = op.send_many(0, list(range(100)))
            assert 1 <= first <= 10  # the send buffer's room, not more
            rest = list(range(first, 1000))
            while rest:
                taken = op.send_many(0, iter(rest))  # any iterable
                rest = rest[taken:]
                if not taken:
                    time.sleep(0.0005)
            assert op.send_many(0, []) == 0
            op.finish(0)
            op.wait(timeout=60)
            return []
        got: dict[int, list[int]] = {0: []}
        _consume_all(op, [0], got, 60)
        return got[0]

    _, got = _threads(body, 2, config)
    assert got == list(range(1000))


class Pair(NamedTuple):
    key: Any
    value: Any


def test_send_many_routes_keys_as_send_does() -> None:
    """Cached and uncached keys, unhashable ones, keys equal across types, tuple subclasses."""
    values = [([1, 2], "a"), (True, "b"), (1, "c"), (1.0, "d"), Pair("k", "e"), ("k", "f")]
    values += [(f"x{i}", i) for i in range(40)]

    def body(flow: Dataflow) -> dict[int, list[Any]]:
        op = StreamKeyedPartition(flow, Plan.spread(1, 3, 2))
        if flow.rank == 0:
            assert op.send_many(0, values[:3]) == 3
            assert op.send(0, values[3])
            assert op.send_many(0, values[4:]) == len(values) - 4
            op.finish(0)
        got: dict[int, list[Any]] = {t: [] for t in op.plan.local_targets(flow.rank)}
        _consume_all(op, list(got), got, 30)
        op.close()
        return got

    got: dict[int, list[Any]] = {}
    for part in _threads(body, 2):
        got.update(part)
    want: dict[int, list[Any]] = {0: [], 1: [], 2: []}
    for key, value in values:
        want[stable_hash(key) % 3].append([key, value] if isinstance(key, list) else (key, value))
    assert {t: [tuple(v) for v in vs] for t, vs in got.items()} == {
        t: [tuple(v) for v in vs] for t, vs in want.items()
    }


def test_keyed_reduce_of_arrays_with_a_builtin_max() -> None:
    (ch,) = InprocChannel.group(1)
    with Dataflow(ch) as flow:
        op = StreamKeyedReduce(flow, Plan.per_worker(1), "max")
        pairs = [("k", np.array([1, 5])), ("k", np.array([3, 2])), ("j", np.array([0, 0]))]
        assert op.send_many(0, pairs) == 3
        op.finish(0)
        got: dict[int, list[Any]] = {0: []}
        _consume_all(op, [0], got, 30)
    ch.close()
    last = {key: total.tolist() for key, total in got[0]}
    assert last == {"k": [3, 5], "j": [0, 0]}


# -- fixes kept fixed ------------------------------------------------------------------------------
def test_keyed_reduce_totals_delivered_are_not_changed_later() -> None:
    (ch,) = InprocChannel.group(1)
    with Dataflow(ch) as flow:
        op = StreamKeyedReduce(flow, Plan.per_worker(1), "sum")
        delivered = []
        for _ in range(3):
            assert op.send(0, ("k", np.ones(3, dtype=np.int64)))
            delivered.append(op.receive(0, timeout=5))
        op.finish(0)
        assert op.receive(0, timeout=5) is END
    ch.close()
    assert [total.tolist() for _, total in delivered] == [[1, 1, 1], [2, 2, 2], [3, 3, 3]]


def test_a_reduce_source_far_ahead_is_held_back() -> None:
    """Worker 1's source sends nothing: worker 0's results cannot be combined, and worker 0
    must be held back rather than pile them up at the target."""
    config = {
        "stream.send_buffer": 100,
        "stream.receive_buffer": 100,
        "stream.batch_records": 10,
        "stream.window_batches": 2,
    }

    def body(flow: Dataflow) -> int:
        op = StreamReduce(flow, Plan.per_worker(2), "sum", target=0)
        taken = 0
        if flow.rank == 0:
            refused_since = None
            while refused_since is None or time.monotonic() - refused_since < 0.5:
                if op.send(0, 1):
                    taken += 1
                    refused_since = None
                    assert taken < 10_000, "the source was never held back"
                elif refused_since is None:
                    refused_since = time.monotonic()
                else:
                    time.sleep(0.001)
        op.close()
        return taken

    taken, _ = _threads(body, 2, config)
    assert taken <= 100 + 2 * 10 + 100 + 10 + 10

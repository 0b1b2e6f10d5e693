"""Streaming throughput and latency: stream partition and stream keyed reduce of 100-byte values
beside raw pyzmq PUSH/PULL moving the same values between two processes.

Ours: a ``twister2.run`` job (``local`` with the tcp channel, ``mpi`` with the mpi channel) at 2
and 4 workers, one source and one target on every worker, measured inside the workers. Each run
has two phases per operator:

- *max rate*: every source streams its share of ``--values`` as fast as ``send_many`` takes
  them (chunks of ``--chunk``; a refused chunk is retried after 0.2 ms), while the worker polls
  its target; values/s = values sent by all sources / the slowest worker's time from a common
  start (a barrier) to the end of its target's stream (every value delivered);
- *half rate*: the same, each source paced to half of the max-rate phase's measured rate.

A value is 100 bytes: the send time (``time.monotonic_ns()``, one clock for every process of
the machine, big-endian) then padding; a source stamps every chunk when it hands it to
``send_many``. Latency = the time a value is polled at its target minus that stamp (p50, p99
over every delivered value). Keyed reduce sends ``(key, value)`` pairs over 1000 keys and
reduces with ``max``, so a delivered running total is the newest value folded into it: its
latency is the time from that value's send to the delivery of the total that holds it.

Raw pyzmq, as the limit: two processes, PUSH to PULL over ``tcp://127.0.0.1``, the same stamped
100-byte values sent one message each (zmq batches them itself), as multipart messages of
``--chunk`` frames, and ``--chunk`` values joined into one frame (split again on receipt, so
the receiver too ends with one ``bytes`` per value); max rate and latency at half of it measured
the same way. CPU us/value adds up every process's CPU time (all threads) in the max-rate
phase: on a shared machine it shows the cost where values/s shows the share of the cores got.

    python benchmarks/stream.py            # 1,000,000 values per run, 3 rounds
    python benchmarks/stream.py --quick    # a smoke test (about 15 s)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from table import add_report_options, emit, markdown_table, yes_no

import twister2
from twister2.net import Plan
from twister2.net.stream import StreamKeyedReduce, StreamPartition

VALUE_BYTES = 100
KEYS = 1000
RATE_TARGET = 1_000_000
"""Values/s a 2-worker stream partition should reach."""
P99_TARGET_MS = 10.0
"""p99 latency at half of the maximum rate should stay under this."""
RETRY_S = 0.0002
SYNC_TAG = 77
OPERATORS = ("partition", "keyed_reduce")
SETUPS = (("local", "tcp"), ("mpi", "mpi"))


# -- values --------------------------------------------------------------------------------------
_STAMP = struct.Struct(">Q")
_templates: dict[int, np.ndarray[Any, Any]] = {}


def stamped(n: int) -> list[bytes]:
    """``n`` distinct 100-byte values: the current time, a sequence number, zeros."""
    rows = _templates.get(n)
    if rows is None:
        rows = _templates[n] = np.zeros((n, VALUE_BYTES), dtype=np.uint8)
        rows[:, 8:16] = np.arange(n, dtype=">u8")[:, None].view(np.uint8)
    rows[:, :8] = np.frombuffer(_STAMP.pack(time.monotonic_ns()), dtype=np.uint8)
    blob = rows.tobytes()
    return [blob[i : i + VALUE_BYTES] for i in range(0, n * VALUE_BYTES, VALUE_BYTES)]


def latencies_ms(values: list[bytes], now_ns: int) -> np.ndarray[Any, Any]:
    """Milliseconds from each value's stamp to ``now_ns``."""
    blob = b"".join(values)
    sent = np.ndarray((len(values),), dtype=">u8", buffer=blob, strides=(VALUE_BYTES,))
    return (now_ns - sent.astype(np.int64)) / 1e6  # type: ignore[no-any-return]


class Pacer:
    """Chunks to send now: none (unpaced: always one) or as many as ``rate`` values/s allow."""

    def __init__(self, chunk: int, rate: float | None) -> None:
        self.chunk = chunk
        self.interval = chunk / rate if rate else 0.0
        self.next = time.monotonic()

    def due(self) -> bool:
        return not self.interval or time.monotonic() >= self.next

    def sent(self) -> None:
        self.next += self.interval

    def pause(self, refused: bool) -> None:
        """Wait a moment: for room in the send buffer, or until the next chunk is due."""
        wait = RETRY_S if refused else self.next - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, 0.001))


def percentiles(samples: list[np.ndarray[Any, Any]]) -> tuple[float, float]:
    joined = np.concatenate(samples) if samples else np.zeros(1)
    return float(np.percentile(joined, 50)), float(np.percentile(joined, 99))


# -- ours: inside a twister2 job -----------------------------------------------------------------
def _stream_phase(
    env: twister2.WorkerEnv, operator: str, count: int, chunk: int, rate: float | None
) -> dict[str, Any]:
    """Stream ``count`` values from this worker's source (paced to ``rate`` values/s, or as fast
    as they are taken), consuming this worker's target: the seconds, this process's CPU seconds
    (every thread) and the latencies (ms) of the values delivered here."""
    plan = Plan.per_worker(env.num_workers)
    me = env.worker_id
    if operator == "partition":
        op: Any = StreamPartition(env.dataflow, plan)
        make: Callable[[int], list[Any]] = stamped
    else:
        op = StreamKeyedReduce(env.dataflow, plan, "max")
        keys = [(me * 7919 + i) % KEYS for i in range(chunk)]

        def make(n: int) -> list[Any]:
            return list(zip(keys[:n], stamped(n), strict=True))

    samples: list[np.ndarray[Any, Any]] = []

    def consume() -> int:
        values = op.poll(me)
        if values:
            now = time.monotonic_ns()
            stamps = values if operator == "partition" else [total for _, total in values]
            samples.append(latencies_ms(stamps, now))
        return len(values)

    env.barrier(f"bench.{operator}.{rate}")
    pacer = Pacer(chunk, rate)  # after the barrier: no burst to catch up with its wait
    start, cpu = time.monotonic(), time.process_time()
    left, pending = count, []
    while left or pending:
        if not pending and pacer.due():
            pending = make(min(chunk, left))
            left -= len(pending)
            pacer.sent()
        if pending:
            taken = op.send_many(me, pending)
            pending = pending[taken:]
        consume()
        if pending or not pacer.due():
            pacer.pause(refused=bool(pending))
    op.finish(me)
    while not op.ended(me):
        if not consume():
            time.sleep(RETRY_S)
    op.wait(timeout=600)
    seconds, cpu = time.monotonic() - start, time.process_time() - cpu
    op.close()
    latencies = np.concatenate(samples) if samples else np.zeros(0)
    return {"seconds": seconds, "cpu": cpu, "latencies": latencies.astype(np.float32)}


def _slowest(env: twister2.WorkerEnv, seconds: float) -> float:
    """Every worker learns the slowest worker's time."""
    if env.worker_id == 0:
        slowest = max([seconds] + [env.comm.recv(w, SYNC_TAG) for w in range(1, env.num_workers)])
        for w in range(1, env.num_workers):
            env.comm.send(slowest, w, SYNC_TAG)
        return slowest
    env.comm.send(seconds, 0, SYNC_TAG)
    return float(env.comm.recv(0, SYNC_TAG))


def stream_main(env: twister2.WorkerEnv) -> dict[str, Any]:
    """The job: for each operator a max-rate phase, then a phase at half that rate."""
    values, chunk = int(env.args[0]), int(env.args[1])
    count = values // env.num_workers
    total = count * env.num_workers
    out: dict[str, Any] = {}
    for operator in OPERATORS:
        fast = _stream_phase(env, operator, count, chunk, None)
        rate = total / _slowest(env, fast["seconds"])
        paced = _stream_phase(env, operator, count, chunk, rate / 2 / env.num_workers)
        half = total / _slowest(env, paced["seconds"])
        out[operator] = {
            "total": total,
            "rate": rate,
            "half_rate": half,
            "fast": fast,
            "paced": paced,
        }
    return out


def ours(cluster: str, channel: str, workers: int, values: int, chunk: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="twister2-bench-") as logs:
        result = twister2.run(
            stream_main,
            workers=workers,
            cluster=cluster,
            config={"network.channel": channel, "job.log_dir": logs},
            args=[str(values), str(chunk)],
        )
    rows: dict[str, Any] = {}
    for operator in OPERATORS:
        parts = [v[operator] for v in result.values]
        _, fast_p99 = percentiles([p["fast"]["latencies"] for p in parts])
        p50, p99 = percentiles([p["paced"]["latencies"] for p in parts])
        cpu = sum(p["fast"]["cpu"] for p in parts)
        rows[operator] = {
            "rate": parts[0]["rate"],
            "cpu_us": cpu / parts[0]["total"] * 1e6,
            "fast_p99": fast_p99,
            "half_rate": parts[0]["half_rate"],
            "p50": p50,
            "p99": p99,
        }
    return rows


# -- raw pyzmq -----------------------------------------------------------------------------------
ZMQ_MODES = ("single", "multipart", "joined")


def _zmq_sender(
    port: int, values: int, chunk: int, mode: str, rate: float | None, cpu_out: Any
) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, -1)
    sock.connect(f"tcp://127.0.0.1:{port}")
    sock.send(b"start")
    cpu = time.process_time()
    pacer, left = Pacer(chunk, rate), values
    try:
        while left:
            while not pacer.due():
                pacer.pause(refused=False)
            batch = stamped(min(chunk, left))
            left -= len(batch)
            pacer.sent()
            if mode == "multipart":
                sock.send_multipart(batch)
            elif mode == "joined":
                sock.send(b"".join(batch))
            else:
                for value in batch:
                    sock.send(value)
    finally:
        cpu_out.put(time.process_time() - cpu)
        sock.close()
        ctx.term()


def _zmq_receive(sock: Any, mode: str, chunk: int, wanted: int) -> list[bytes]:
    import zmq

    if mode == "multipart":
        return sock.recv_multipart()  # type: ignore[no-any-return]
    if mode == "joined":
        blob = sock.recv()
        return [blob[i : i + VALUE_BYTES] for i in range(0, len(blob), VALUE_BYTES)]
    batch = [sock.recv()]
    while len(batch) < min(chunk, wanted):
        try:
            batch.append(sock.recv(zmq.NOBLOCK))
        except zmq.Again:
            break
    return batch


def raw_zmq(values: int, chunk: int, mode: str, rate: float | None) -> dict[str, Any]:
    """Values/s, CPU and latencies of one PUSH/PULL stream (receiver here, sender spawned):
    a message per value (``single``), a multipart message of ``chunk`` frames, or ``chunk``
    values joined into one frame (and split again on receipt)."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    mp = multiprocessing.get_context("spawn")
    cpu_out = mp.Queue()
    sender = mp.Process(target=_zmq_sender, args=(port, values, chunk, mode, rate, cpu_out))
    sender.start()
    samples: list[np.ndarray[Any, Any]] = []
    try:
        if not sock.poll(120_000):
            msg = "the pyzmq sender never connected"
            raise RuntimeError(msg)
        sock.recv()
        start, cpu, got = time.monotonic(), time.process_time(), 0
        while got < values:
            batch = _zmq_receive(sock, mode, chunk, values - got)
            samples.append(latencies_ms(batch, time.monotonic_ns()))
            got += len(batch)
        seconds, cpu = time.monotonic() - start, time.process_time() - cpu
        cpu += cpu_out.get(timeout=60)
    finally:
        sender.join(60)
        if sender.is_alive():
            sender.kill()
        sock.close()
        ctx.term()
    return {"rate": values / seconds, "cpu_us": cpu / values * 1e6, "latencies": samples}


def zmq_row(values: int, chunk: int, mode: str) -> dict[str, float]:
    fast = raw_zmq(values, chunk, mode, None)
    paced = raw_zmq(values, chunk, mode, fast["rate"] / 2)
    p50, p99 = percentiles(paced["latencies"])
    return {
        "rate": fast["rate"],
        "cpu_us": fast["cpu_us"],
        "fast_p99": percentiles(fast["latencies"])[1],
        "half_rate": paced["rate"],
        "p50": p50,
        "p99": p99,
    }


# -- the report ----------------------------------------------------------------------------------
def _medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def _cells(m: dict[str, float]) -> list[str]:
    return [
        f"{m['rate']:,.0f}",
        f"{m['cpu_us']:.2f}",
        f"{m['fast_p99']:.1f}",
        f"{m['half_rate']:,.0f}",
        f"{m['p50']:.2f}",
        f"{m['p99']:.2f}",
    ]


def run(values: int, chunk: int, rounds: int, worker_counts: tuple[int, ...]) -> str:
    load_before = os.getloadavg()
    ours_rounds: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    zmq_rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in ZMQ_MODES}
    for _ in range(rounds):  # in turns, so that load from elsewhere spreads over all of them
        for workers in worker_counts:
            for cluster, channel in SETUPS:
                got = ours(cluster, channel, workers, values, chunk)
                for operator, row in got.items():
                    ours_rounds.setdefault((operator, workers, channel), []).append(row)
                print(f"stream: {channel} x{workers}: {got}", file=sys.stderr, flush=True)
        for mode in ZMQ_MODES:
            zmq_rounds[mode].append(zmq_row(values, chunk, mode))
            print(f"stream: zmq {mode}: {zmq_rounds[mode][-1]}", file=sys.stderr, flush=True)
    rows = []
    order = {(op, w, ch): i for i, (op, w, ch) in enumerate(ours_rounds)}
    for (operator, workers, channel), samples in sorted(
        ours_rounds.items(),
        key=lambda item: (OPERATORS.index(item[0][0]), item[0][2] != "tcp", order[item[0]]),
    ):
        m = _medians(samples)
        partition_2 = operator == "partition" and workers == 2
        rows.append(
            [
                f"stream {operator.replace('_', ' ')}",
                channel,
                str(workers),
                *_cells(m),
                yes_no(m["rate"] >= RATE_TARGET) if partition_2 else "-",
                yes_no(m["p99"] < P99_TARGET_MS),
            ]
        )
    labels = {
        "single": "raw pyzmq PUSH/PULL, a message per value",
        "multipart": f"raw pyzmq PUSH/PULL, multipart messages of {chunk}",
        "joined": f"raw pyzmq PUSH/PULL, {chunk} values joined in one frame",
    }
    for mode, samples in zmq_rounds.items():
        rows.append([labels[mode], "tcp", "2 procs", *_cells(_medians(samples)), "-", "-"])
    table = markdown_table(
        [
            "stream",
            "channel",
            "workers",
            "max values/s",
            "CPU us/value",
            "p99 ms at max",
            "half-rate values/s",
            "p50 ms at half",
            "p99 ms at half",
            f"target met (>= {RATE_TARGET:,} values/s)",
            f"target met (p99 < {P99_TARGET_MS:g} ms)",
        ],
        rows,
    )
    load_after = os.getloadavg()
    notes = (
        f"{VALUE_BYTES}-byte values, {values:,} per run (split over the sources: one per "
        f"worker), `send_many` chunks of {chunk}, default `stream.*` settings; each number is "
        f"the median of {rounds} round(s), the setups measured in turns. Max values/s: all "
        f"values / the slowest worker's time from a common start until its target's stream "
        f"ended (every value delivered). CPU us/value: the CPU time of every process (all "
        f"threads) in the max-rate phase / the values. Latency from the send stamp to the poll "
        f"at the target, over every value delivered, at max rate and with each source paced to "
        f"half of the max rate. Targets: >= {RATE_TARGET:,} values/s through a 2-worker "
        f"partition; p99 < {P99_TARGET_MS:g} ms at half rate. Load average (1/5/15 min) "
        f"{_load(load_before)} at the start, {_load(load_after)} at the end (other work shares "
        f"this machine)."
    )
    return "\n\n".join(["### Streaming throughput and latency", notes, table])


def _load(avg: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in avg)


def _counts(text: str) -> Iterator[int]:
    yield from (int(x) for x in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_options(parser)
    parser.add_argument("--values", type=int, help="values per run (default 1,000,000)")
    parser.add_argument("--chunk", type=int, default=256, help="values per send_many (256)")
    parser.add_argument("--rounds", type=int, help="rounds over every setup (default 3)")
    parser.add_argument("--workers", help="worker counts, comma-separated (default 2,4)")
    args = parser.parse_args(argv)
    values = args.values or (20_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 3)
    workers = tuple(_counts(args.workers)) if args.workers else (2, 4)
    emit(run(values, args.chunk, rounds, workers), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Collective throughput: our batch operators beside raw mpi4py collectives and raw pyzmq.

Each operator runs with one source and one target per worker (``Plan.per_worker(n)``), every
source contributing one NumPy ``float64`` array of S bytes (the message size), and is compared
with the equivalent raw collective on preallocated buffers:

============  ===========================================  ============================
operator      what moves                                   raw mpi4py (under mpiexec)
============  ===========================================  ============================
reduce        every array summed, at worker 0              ``Reduce(SUM, root=0)``
allreduce     the sum at every worker                      ``Allreduce(SUM)``
gather        every array, at worker 0                     ``Gather(root=0)``
allgather     every array, at every worker                 ``Allgather``
broadcast     worker 0's array to every worker             ``Bcast(root=0)``
partition     each worker sends S/n bytes to every target  ``Alltoallv`` (equal counts)
============  ===========================================  ============================

Timing, the same on both sides: in every iteration the workers synchronise, then each times
its part of one operation, from creating the operator (ours) or calling the collective (raw)
until its result is in hand on that worker (ours: ``wait()`` returned and ``result()`` read,
partition's iterator drained). An iteration's time is the slowest worker's; the reported time
per op is the median over the timed iterations of every round (each round one run of raw and
one of ours, in turns, so that load from elsewhere spreads over both), after untimed warm-up
iterations. Throughput is S / (time per op), in MiB/s per worker (1 MiB = 2**20 bytes; sizes
are KiB and MiB too); the ratio is ours/raw throughput (= raw time / our time).

Synchronisation before each iteration. mpi: ``MPI_Barrier`` on ``COMM_WORLD`` for both (ours
calls it through ``env.mpi_comm``). tcp: a token exchange on each side's own transport (every
worker sends a token to every other and waits for theirs): ours over ``env.comm``, the channel
under the dataflow; raw pyzmq over its socket.

- mpi: ours is an ``mpi`` job (``network.channel=mpi``), raw is this file under
  ``mpiexec -n N`` (``--raw-mpi``).
- tcp: ours is a ``local`` job with ``network.channel=tcp``; raw is 2 processes with one pyzmq
  ``PAIR`` socket over ``tcp://127.0.0.1``, ``send(copy=False)``/``recv(copy=False)``, doing the
  same pattern plainly: reduce = worker 1 sends, worker 0 adds; allreduce = that, then worker 0
  sends the sum back; gather/allgather likewise with concatenation; broadcast = worker 0 sends;
  partition = each sends half its array to the other and keeps half. 2 workers only.

    python benchmarks/collectives.py            # 1 KiB..64 MiB, 2 and 4 workers, 3 rounds
    python benchmarks/collectives.py --quick    # 1 KiB and 1 MiB, 2 workers, 2 iterations, 1 round
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from table import add_report_options, emit, markdown_table, ratio, yes_no

import twister2
from twister2.resource.mpi import find_mpiexec

OPS = ("reduce", "allreduce", "gather", "allgather", "broadcast", "partition")
SIZES = (1 << 10, 16 << 10, 256 << 10, 1 << 20, 16 << 20, 64 << 20)
QUICK_SIZES = (1 << 10, 1 << 20)
TARGET = 0.7
"""Our throughput should reach at least this fraction of the raw collective's..."""
TARGET_FROM = 1 << 20
"""...at this message size and above."""
RAW_MPI_MARKER = "RAW-MPI-RESULT "
SYNC_TAG = 7

Times = dict[str, dict[str, list[float]]]
"""``{op: {str(size): [seconds per timed iteration]}}`` of one worker."""


def size_name(nbytes: int) -> str:
    """>>> size_name(1024), size_name(16 << 20)
    ('1 KiB', '16 MiB')"""
    if nbytes >= 1 << 20:
        return f"{nbytes >> 20} MiB"
    return f"{nbytes >> 10} KiB"


def iterations(nbytes: int, iters: int | None) -> tuple[int, int]:
    """``(warm-up, timed)`` iterations for a message size (fewer for the largest)."""
    if iters is not None:
        return 1, iters
    if nbytes >= 64 << 20:
        return 1, 5
    if nbytes >= 16 << 20:
        return 2, 7
    return 3, 15


def _data(rank: int, nbytes: int) -> np.ndarray[Any, Any]:
    """Worker ``rank``'s array: ``nbytes`` of float64 ``rank + 1``."""
    return np.full(nbytes // 8, float(rank + 1))


def _check(op: str, rank: int, n: int, nbytes: int, out: Any) -> None:
    """Raise when ``out`` (ours: the operator's result, unpacked) is not what ``op`` gives."""
    count = nbytes // 8
    total = n * (n + 1) / 2

    def expect(flag: bool, what: str) -> None:
        if not flag:
            msg = f"{op} of {nbytes} bytes on worker {rank}: wrong result ({what})"
            raise RuntimeError(msg)

    if op in ("reduce", "allreduce"):
        if op == "allreduce" or rank == 0:
            expect(len(out) == count and out[0] == total and out[-1] == total, "sum")
    elif op in ("gather", "allgather"):
        if op == "allgather" or rank == 0:
            got = [(s, len(v), v[0], v[-1]) for s, v in out]
            want = [(s, count, s + 1.0, s + 1.0) for s in range(n)]
            expect(got == want, "gathered arrays")
    elif op == "broadcast":
        expect(len(out) == 1 and len(out[0]) == count and out[0][-1] == 1.0, "broadcast array")
    elif op == "partition":
        got = sorted((v[0], len(v)) for v in out)
        expect(got == [(s + 1.0, count // n) for s in range(n)], "pieces")


# -- ours: the operators inside a twister2 job -------------------------------------------------


def _ours_once(env: twister2.WorkerEnv, op: str, data: np.ndarray[Any, Any]) -> Any:
    """One operation of ``op`` on this worker; returns its result here (``None`` if none)."""
    from twister2.net import Plan
    from twister2.net.batch import AllGather, AllReduce, Broadcast, Gather, Partition, Reduce

    flow, me, n = env.dataflow, env.worker_id, env.num_workers
    plan = Plan.per_worker(n)
    if op == "reduce":
        reduce = Reduce(flow, plan, "sum", target=0)
        reduce.send(me, data)
        reduce.finish(me)
        reduce.wait()
        return reduce.result() if me == 0 else None
    if op == "allreduce":
        allreduce = AllReduce(flow, plan, "sum")
        allreduce.send(me, data)
        allreduce.finish(me)
        return allreduce.wait().result()
    if op in ("gather", "allgather"):
        gather = Gather(flow, plan, target=0) if op == "gather" else AllGather(flow, plan)
        gather.send_all(me, [data], finish=True).wait()
        return gather.result() if op == "allgather" or me == 0 else None
    if op == "broadcast":
        bcast = Broadcast(flow, plan, source=0)
        if me == 0:
            bcast.send_all(0, [data], finish=True)
        return bcast.wait().result()
    if op == "partition":
        part = Partition(flow, plan)  # round robin: piece i of each source to target i
        piece = len(data) // n
        part.send_all(me, (data[i * piece : (i + 1) * piece] for i in range(n)), finish=True)
        out = list(part.wait().result(me))
        part.close()
        return out
    msg = f"unknown operator {op!r}"
    raise ValueError(msg)


def _ours_sync(env: twister2.WorkerEnv) -> Callable[[], None]:
    """mpi: ``MPI_Barrier``; tcp: every worker sends a token to every other over ``env.comm``
    (the channel the dataflow uses) and waits for theirs (symmetric, like the pyzmq exchange)."""
    if env.cluster == "mpi":
        return env.mpi_comm.Barrier  # type: ignore[no-any-return]
    comm, me = env.comm, env.worker_id
    peers = [w for w in range(env.num_workers) if w != me]

    def sync() -> None:
        for peer in peers:
            comm.send(b"s", peer, SYNC_TAG)
        for peer in peers:
            comm.recv(peer, SYNC_TAG)

    return sync


def ours_main(env: twister2.WorkerEnv) -> Times:
    """The job: every operator at every size, timed in each worker."""
    spec = json.loads(env.args[0])
    sync = _ours_sync(env)
    sync()
    times: Times = {}
    for op in spec["ops"]:
        for nbytes in spec["sizes"]:
            data = _data(env.worker_id, nbytes)
            warm, timed = iterations(nbytes, spec["iters"])
            got = []
            for i in range(warm + timed):
                sync()
                start = time.perf_counter()
                out = _ours_once(env, op, data)
                elapsed = time.perf_counter() - start
                if i == 0:
                    _check(op, env.worker_id, env.num_workers, nbytes, out)
                del out
                if i >= warm:
                    got.append(elapsed)
            times.setdefault(op, {})[str(nbytes)] = got
    sync()
    return times


def ours(cluster: str, workers: int, spec: dict[str, Any]) -> list[Times]:
    channel = "mpi" if cluster == "mpi" else "tcp"
    with tempfile.TemporaryDirectory(prefix="twister2-bench-") as logs:
        result = twister2.run(
            ours_main,
            workers=workers,
            cluster=cluster,
            config={"network.channel": channel, "job.log_dir": logs},
            args=[json.dumps(spec)],
        )
    return list(result.values)


# -- raw mpi4py (this file under mpiexec -n N with --raw-mpi) ----------------------------------


def _raw_collective(
    comm: Any, mpi: Any, op: str, data: np.ndarray[Any, Any]
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``(call, result)``: the raw collective of ``op`` on preallocated buffers, and a function
    giving its result in the shape :func:`_check` takes."""
    rank, n = comm.Get_rank(), comm.Get_size()
    count = len(data)
    recv = np.empty(n * count if op in ("gather", "allgather") else count)
    piece = count // n
    counts = [piece] * n
    displs = [i * piece for i in range(n)]
    buf = data.copy()

    def result() -> Any:
        if op in ("gather", "allgather"):
            gathered = [(s, recv[s * count : (s + 1) * count]) for s in range(n)]
            return gathered if op == "allgather" or rank == 0 else None
        if op == "broadcast":
            return [buf]
        if op == "partition":
            return [recv[s * piece : (s + 1) * piece] for s in range(n)]
        return recv

    calls: dict[str, Callable[[], Any]] = {
        "reduce": lambda: comm.Reduce(data, recv, op=mpi.SUM, root=0),
        "allreduce": lambda: comm.Allreduce(data, recv, op=mpi.SUM),
        "gather": lambda: comm.Gather(data, recv, root=0),
        "allgather": lambda: comm.Allgather(data, recv),
        "broadcast": lambda: comm.Bcast(buf, root=0),
        "partition": lambda: comm.Alltoallv(
            [data, counts, displs, mpi.DOUBLE], [recv, counts, displs, mpi.DOUBLE]
        ),
    }
    return calls[op], result


def _raw_mpi_ranks(spec: dict[str, Any]) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, n = comm.Get_rank(), comm.Get_size()
    comm.Barrier()
    times: Times = {}
    for op in spec["ops"]:
        for nbytes in spec["sizes"]:
            call, result = _raw_collective(comm, MPI, op, _data(rank, nbytes))
            warm, timed = iterations(nbytes, spec["iters"])
            got = []
            for i in range(warm + timed):
                comm.Barrier()
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
                if i == 0:
                    _check(op, rank, n, nbytes, result())
                if i >= warm:
                    got.append(elapsed)
            times.setdefault(op, {})[str(nbytes)] = got
    everyone = comm.gather(times, root=0)
    if rank == 0:
        print(RAW_MPI_MARKER + json.dumps(everyone), flush=True)


def raw_mpi(workers: int, spec: dict[str, Any]) -> list[Times]:
    command = [find_mpiexec(), "-n", str(workers), sys.executable, __file__, "--raw-mpi"]
    command.append(json.dumps(spec))
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800)
    for line in done.stdout.splitlines():
        if line.startswith(RAW_MPI_MARKER):
            return list(json.loads(line[len(RAW_MPI_MARKER) :]))
    msg = f"no result from {' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    raise RuntimeError(msg)


# -- raw pyzmq: 2 processes, one PAIR socket ---------------------------------------------------


def _zmq_once(op: str, rank: int, data: np.ndarray[Any, Any], sock: Any, acc: Any) -> Any:
    """One collective between 2 processes over ``sock``, written plainly."""

    def recv() -> np.ndarray[Any, Any]:
        return np.frombuffer(sock.recv(copy=False).buffer, dtype=np.float64)

    peer = 1 - rank
    if op in ("reduce", "allreduce"):
        if rank == 1:
            sock.send(data, copy=False)
            return recv() if op == "allreduce" else None
        np.add(data, recv(), out=acc)
        if op == "allreduce":
            sock.send(acc, copy=False)
        return acc
    if op in ("gather", "allgather"):
        if rank == 1:
            sock.send(data, copy=False)
            if op == "gather":
                return None
            return [(0, recv()), (1, data)]
        out = [(0, data), (1, recv())]
        if op == "allgather":
            sock.send(data, copy=False)
        return out
    if op == "broadcast":
        if rank == 0:
            sock.send(data, copy=False)
            return [data]
        return [recv()]
    if op == "partition":
        half = len(data) // 2
        sock.send(data[peer * half : (peer + 1) * half], copy=False)
        return [data[rank * half : (rank + 1) * half], recv()]
    msg = f"unknown operator {op!r}"
    raise ValueError(msg)


def _zmq_peer(rank: int, ports: Any, results: Any, spec: dict[str, Any]) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PAIR)
    sock.setsockopt(zmq.LINGER, 0)
    if rank == 0:
        ports.put(sock.bind_to_random_port("tcp://127.0.0.1"))
    else:
        sock.connect(f"tcp://127.0.0.1:{ports.get()}")

    def sync() -> None:
        sock.send(b"s")
        sock.recv()

    times: Times = {}
    try:
        sync()
        for op in spec["ops"]:
            for nbytes in spec["sizes"]:
                data = _data(rank, nbytes)
                acc = np.empty_like(data)
                warm, timed = iterations(nbytes, spec["iters"])
                got = []
                for i in range(warm + timed):
                    sync()
                    start = time.perf_counter()
                    out = _zmq_once(op, rank, data, sock, acc)
                    elapsed = time.perf_counter() - start
                    if i == 0:
                        _check(op, rank, 2, nbytes, out)
                    if i >= warm:
                        got.append(elapsed)
                times.setdefault(op, {})[str(nbytes)] = got
        sync()
    finally:
        sock.close()
        ctx.term()
    results.put((rank, times))


def raw_zmq(spec: dict[str, Any]) -> list[Times]:
    mp = multiprocessing.get_context("spawn")
    ports, results = mp.Queue(), mp.Queue()
    procs = [mp.Process(target=_zmq_peer, args=(rank, ports, results, spec)) for rank in (0, 1)]
    for proc in procs:
        proc.start()
    try:
        got = dict(results.get(timeout=1800) for _ in procs)
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return [got[0], got[1]]


# -- the report ---------------------------------------------------------------------------------


def per_op(runs: Sequence[list[Times]], op: str, nbytes: int) -> float:
    """Median over iterations (of every run) of the slowest worker's time."""
    slowest = []
    for workers in runs:
        per_worker = [w[op][str(nbytes)] for w in workers]
        slowest.extend(max(its) for its in zip(*per_worker, strict=True))
    return statistics.median(slowest)


def _rows(
    ours_runs: Sequence[list[Times]],
    raw_runs: Sequence[list[Times]],
    ops: Sequence[str],
    sizes: Sequence[int],
    workers: int,
    raw_names: dict[str, str],
) -> tuple[list[list[Any]], dict[tuple[str, int], str]]:
    rows, ratios = [], {}
    for op in ops:
        for nbytes in sizes:
            t_ours = per_op(ours_runs, op, nbytes)
            t_raw = per_op(raw_runs, op, nbytes)
            mib = nbytes / (1 << 20)
            met = yes_no(t_ours * TARGET <= t_raw) if nbytes >= TARGET_FROM else "-"
            ratios[(op, nbytes)] = ratio(t_raw, t_ours)
            rows.append(
                [
                    op,
                    workers,
                    size_name(nbytes),
                    f"{t_ours * 1e3:.3f}",
                    raw_names[op],
                    f"{t_raw * 1e3:.3f}",
                    f"{mib / t_ours:.0f}",
                    f"{mib / t_raw:.0f}",
                    ratio(t_raw, t_ours),
                    met,
                ]
            )
    return rows, ratios


HEADERS = [
    "operator",
    "workers",
    "size",
    "ours ms/op",
    "raw",
    "raw ms/op",
    "ours MiB/s",
    "raw MiB/s",
    "ratio",
    f"target met (>= {TARGET:g}x from 1 MiB)",
]
MPI_NAMES = {
    "reduce": "Reduce",
    "allreduce": "Allreduce",
    "gather": "Gather",
    "allgather": "Allgather",
    "broadcast": "Bcast",
    "partition": "Alltoallv",
}
ZMQ_NAMES = {op: f"pyzmq PAIR {op}" for op in OPS}


def _summary(
    ratios: dict[tuple[int, str, int], str], worker_counts: Sequence[int], sizes: Sequence[int]
) -> str:
    rows = []
    for op in OPS:
        for workers in worker_counts:
            if (workers, op, sizes[0]) in ratios:
                rows.append([op, workers, *(ratios[(workers, op, s)] for s in sizes)])
    return markdown_table(["operator", "workers", *(size_name(s) for s in sizes)], rows)


def run(
    worker_counts: list[int],
    sizes: list[int],
    iters: int | None,
    rounds: int,
    ops: Sequence[str],
    tcp: bool,
) -> str:
    spec = {"ops": list(ops), "sizes": sizes, "iters": iters}
    mpi_rows: list[list[Any]] = []
    mpi_ratios: dict[tuple[int, str, int], str] = {}
    for workers in worker_counts:
        ours_runs, raw_runs = [], []
        for _ in range(rounds):  # in turns, so that load from elsewhere spreads over both
            started = time.perf_counter()
            raw_runs.append(raw_mpi(workers, spec))
            middle = time.perf_counter()
            ours_runs.append(ours("mpi", workers, spec))
            print(
                f"collectives: mpi x{workers}: raw {middle - started:.1f} s, "
                f"ours {time.perf_counter() - middle:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        rows, ratios = _rows(ours_runs, raw_runs, ops, sizes, workers, MPI_NAMES)
        mpi_rows.extend(rows)
        mpi_ratios.update({(workers, op, s): r for (op, s), r in ratios.items()})
    mpi_rows.sort(key=lambda r: (OPS.index(r[0]), r[1]))
    parts = [
        "### Collectives over the mpi channel",
        (
            f"One source and one target per worker; each source a `float64` NumPy array of the "
            f"given size (partition: size/n to every target). Time per op = median over "
            f"iterations of the slowest worker's time, each iteration after an `MPI_Barrier`; "
            f"iterations per size: {_iteration_note(sizes, iters)}, over {rounds} round(s) "
            f"(raw and ours in turns). MiB/s = size / time per op (per worker). Ratio = ours/raw "
            f"throughput. Raw: mpi4py buffer collectives under `mpiexec -n N`; ours: an `mpi` "
            f"job (`network.channel=mpi`). Target: >= {TARGET:g}x from 1 MiB."
        ),
        "Ratio ours/raw by size:",
        _summary(mpi_ratios, worker_counts, sizes),
        markdown_table(HEADERS, mpi_rows),
    ]
    if tcp:
        ours_runs, raw_runs = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            raw_runs.append(raw_zmq(spec))
            middle = time.perf_counter()
            ours_runs.append(ours("local", 2, spec))
            print(
                f"collectives: tcp x2: raw {middle - started:.1f} s, "
                f"ours {time.perf_counter() - middle:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        rows, ratios = _rows(ours_runs, raw_runs, ops, sizes, 2, ZMQ_NAMES)
        parts += [
            "### Collectives over the tcp channel (2 workers)",
            (
                "The same operators in a 2-worker `local` job with `network.channel=tcp`, beside "
                "2 processes doing the same pattern over one pyzmq `PAIR` socket "
                "(`tcp://127.0.0.1`, zero-copy send and receive). Sync before each iteration: a "
                "token exchange, ours over `env.comm` (the channel under the dataflow), pyzmq "
                "over its socket. Timing, "
                "iterations and ratio as above."
            ),
            "Ratio ours/raw by size:",
            _summary({(2, op, s): r for (op, s), r in ratios.items()}, [2], sizes),
            markdown_table(HEADERS, rows),
        ]
    return "\n\n".join(parts)


def _iteration_note(sizes: Sequence[int], iters: int | None) -> str:
    notes = []
    for nbytes in sizes:
        warm, timed = iterations(nbytes, iters)
        notes.append(f"{size_name(nbytes)}: {warm} warm-up + {timed} timed")
    return "; ".join(notes)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--raw-mpi"]:
        _raw_mpi_ranks(json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_options(parser)
    parser.add_argument("--workers", type=int, nargs="+", help="worker counts (default 2 4)")
    parser.add_argument("--sizes-kib", type=int, nargs="+", help="message sizes in KiB")
    parser.add_argument("--ops", nargs="+", choices=OPS, help="operators (default: all)")
    parser.add_argument("--iters", type=int, help="timed iterations (default 15, fewer >= 16 MiB)")
    parser.add_argument("--rounds", type=int, help="runs of raw and ours in turns (default 3)")
    parser.add_argument("--no-tcp", action="store_true", help="skip the tcp/pyzmq comparison")
    args = parser.parse_args(argv)
    counts = args.workers or ([2] if args.quick else [2, 4])
    if args.sizes_kib:
        sizes = [k << 10 for k in args.sizes_kib]
    else:
        sizes = list(QUICK_SIZES if args.quick else SIZES)
    iters = args.iters or (2 if args.quick else None)
    rounds = args.rounds or (1 if args.quick else 3)
    ops = args.ops or list(OPS)
    emit(run(counts, sizes, iters, rounds, ops, not args.no_tcp), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Channel bandwidth and latency: our tcp and mpi channels beside raw pyzmq and raw mpi4py.

Bandwidth: worker 0 sends a NumPy array (64 MB by default) to worker 1, which sends what it
received back; MB/s is the bytes moved both ways (10**6 bytes to the MB) over the time of
``--iters`` round trips, after one untimed round trip. Latency: an 8-byte message the same way,
half the median round trip over ``--pings`` pings (after 100 untimed ones).

- ours, tcp: a 2-worker ``local`` job with ``network.channel=tcp``, measured in the workers;
- ours, mpi: a 2-worker ``mpi`` job with ``network.channel=mpi``;
- raw pyzmq: two processes with PAIR sockets over ``tcp://127.0.0.1``, ``send(arr, copy=False)``
  and ``recv(copy=False)`` into ``np.frombuffer``;
- raw mpi4py under ``mpiexec -n 2``: ``Send``/``Recv`` of NumPy buffers for bandwidth; for
  latency both ``send``/``recv`` of a small object and ``Send``/``Recv`` of an 8-byte buffer.

    python benchmarks/channel.py            # 64 MB, 10 round trips, 2000 pings, 3 rounds
    python benchmarks/channel.py --quick    # 1 MB, 3 round trips, 200 pings, 1 round
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
from collections.abc import Callable
from typing import Any

import numpy as np
from table import add_report_options, emit, markdown_table, ratio, yes_no

import twister2
from twister2.resource.mpi import find_mpiexec

TARGET = 0.8
"""Our bandwidth should reach at least this fraction of the raw transport's."""
WARM_PINGS = 100
SMALL = b"8 bytes!"
DATA_TAG = 1
PING_TAG = 2
RAW_MPI_MARKER = "RAW-MPI-RESULT "


def _bandwidth(
    rank: int, nbytes: int, iters: int, send: Callable[[Any], None], recv: Callable[[], Any]
) -> float:
    """Both sides of the array ping-pong; rank 0 returns MB/s (rank 1: 0)."""
    if rank == 1:
        for _ in range(iters + 1):
            send(recv())
        return 0.0
    arr = np.ones(nbytes, dtype=np.uint8)
    send(arr)
    arr = recv()
    start = time.perf_counter()
    for _ in range(iters):
        send(arr)
        arr = recv()
    elapsed = time.perf_counter() - start
    if len(arr) != nbytes or arr[0] != 1 or arr[-1] != 1:
        msg = f"the array came back wrong: {len(arr)} bytes, ends {arr[0]}, {arr[-1]}"
        raise RuntimeError(msg)
    return 2 * iters * nbytes / elapsed / 1e6


def _latency(
    rank: int, pings: int, send: Callable[[Any], None], recv: Callable[[], Any], small: Any = SMALL
) -> float:
    """Both sides of the small-message ping-pong; rank 0 returns microseconds (rank 1: 0)."""
    if rank == 1:
        for _ in range(WARM_PINGS + pings):
            send(recv())
        return 0.0
    times = []
    for i in range(WARM_PINGS + pings):
        start = time.perf_counter()
        send(small)
        recv()
        if i >= WARM_PINGS:
            times.append(time.perf_counter() - start)
    return statistics.median(times) / 2 * 1e6


# -- ours: the ping-pong inside a twister2 job -------------------------------------------------


def ping_pong_main(env: twister2.WorkerEnv) -> dict[str, float]:
    """The job: worker 0 and worker 1 ping-pong over ``env.comm``."""
    nbytes, iters, pings = (int(a) for a in env.args)
    comm = env.comm
    peer = 1 - env.worker_id
    rank = env.worker_id
    env.barrier("bench.start")
    mb_per_s = _bandwidth(
        rank,
        nbytes,
        iters,
        send=lambda value: comm.send(value, peer, DATA_TAG),
        recv=lambda: comm.recv(peer, DATA_TAG),
    )
    latency_us = _latency(
        rank,
        pings,
        send=lambda value: comm.send(value, peer, PING_TAG),
        recv=lambda: comm.recv(peer, PING_TAG),
    )
    return {"mb_per_s": mb_per_s, "latency_us": latency_us}


def ours(cluster: str, channel: str, nbytes: int, iters: int, pings: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="twister2-bench-") as logs:
        result = twister2.run(
            ping_pong_main,
            workers=2,
            cluster=cluster,
            config={"network.channel": channel, "job.log_dir": logs},
            args=[str(nbytes), str(iters), str(pings)],
        )
    return dict(result.values[0])


# -- raw pyzmq ----------------------------------------------------------------------------------


def _zmq_peer(rank: int, ports: Any, results: Any, nbytes: int, iters: int, pings: int) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PAIR)
    sock.setsockopt(zmq.LINGER, 0)
    if rank == 0:
        ports.put(sock.bind_to_random_port("tcp://127.0.0.1"))
    else:
        sock.connect(f"tcp://127.0.0.1:{ports.get()}")

    def send(arr: Any) -> None:
        sock.send(arr, copy=False)

    def recv() -> np.ndarray[Any, Any]:
        frame = sock.recv(copy=False)
        return np.frombuffer(frame.buffer, dtype=np.uint8)

    try:
        out = {
            "mb_per_s": _bandwidth(rank, nbytes, iters, send, recv),
            "latency_us": _latency(rank, pings, send, recv),
        }
    finally:
        sock.close()
        ctx.term()
    if rank == 0:
        results.put(out)


def raw_zmq(nbytes: int, iters: int, pings: int) -> dict[str, float]:
    mp = multiprocessing.get_context("spawn")
    ports, results = mp.Queue(), mp.Queue()
    procs = [
        mp.Process(target=_zmq_peer, args=(rank, ports, results, nbytes, iters, pings))
        for rank in (0, 1)
    ]
    for proc in procs:
        proc.start()
    try:
        out: dict[str, float] = results.get(timeout=300)
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return out


# -- raw mpi4py (this file under mpiexec -n 2 with --raw-mpi) ----------------------------------


def _raw_mpi_ranks(nbytes: int, iters: int, pings: int) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, peer = comm.Get_rank(), 1 - comm.Get_rank()
    inbox = np.empty(nbytes, dtype=np.uint8)
    small_in = np.empty(8, dtype=np.uint8)

    def send(arr: Any) -> None:
        comm.Send(arr, peer, DATA_TAG)

    def recv() -> np.ndarray[Any, Any]:
        comm.Recv(inbox, peer, DATA_TAG)
        return inbox

    def send_small(buf: Any) -> None:
        comm.Send(buf, peer, PING_TAG)

    def recv_small() -> np.ndarray[Any, Any]:
        comm.Recv(small_in, peer, PING_TAG)
        return small_in

    comm.Barrier()
    out = {"mb_per_s": _bandwidth(rank, nbytes, iters, send, recv)}
    comm.Barrier()
    small = np.frombuffer(SMALL, dtype=np.uint8).copy()
    out["latency_us"] = _latency(rank, pings, send_small, recv_small, small)
    comm.Barrier()
    out["object_latency_us"] = _latency(
        rank,
        pings,
        send=lambda value: comm.send(value, peer, PING_TAG),
        recv=lambda: comm.recv(source=peer, tag=PING_TAG),
    )
    if rank == 0:
        print(RAW_MPI_MARKER + json.dumps(out), flush=True)


def raw_mpi(nbytes: int, iters: int, pings: int) -> dict[str, float]:
    command = [
        find_mpiexec(),
        "-n",
        "2",
        sys.executable,
        __file__,
        "--raw-mpi",
        str(nbytes),
        str(iters),
        str(pings),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    for line in done.stdout.splitlines():
        if line.startswith(RAW_MPI_MARKER):
            return dict(json.loads(line[len(RAW_MPI_MARKER) :]))
    msg = f"no result from {' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    raise RuntimeError(msg)


# -- the report ---------------------------------------------------------------------------------


def run(nbytes: int, iters: int, pings: int, rounds: int) -> str:
    measures: dict[str, Callable[[], dict[str, float]]] = {
        "tcp": lambda: ours("local", "tcp", nbytes, iters, pings),
        "zmq": lambda: raw_zmq(nbytes, iters, pings),
        "mpi": lambda: ours("mpi", "mpi", nbytes, iters, pings),
        "mpi4py": lambda: raw_mpi(nbytes, iters, pings),
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in measures}
    for _ in range(rounds):  # in turns, so that load from elsewhere spreads over all four
        for name, measure in measures.items():
            samples[name].append(measure())
            print(f"channel: {name}: {samples[name][-1]}", file=sys.stderr, flush=True)
    tcp, zmq, mpi, mpi4py = (
        {key: statistics.median(s[key] for s in samples[name]) for key in samples[name][0]}
        for name in measures
    )

    bandwidth = markdown_table(
        ["transport", "ours MB/s", "raw", "raw MB/s", "ratio", f"target met (>= {TARGET:g}x)"],
        [
            [
                name,
                f"{o['mb_per_s']:.0f}",
                raw_name,
                f"{r['mb_per_s']:.0f}",
                ratio(o["mb_per_s"], r["mb_per_s"]),
                yes_no(o["mb_per_s"] >= TARGET * r["mb_per_s"]),
            ]
            for name, o, raw_name, r in [
                ("tcp channel", tcp, "pyzmq PAIR, tcp://127.0.0.1", zmq),
                ("mpi channel", mpi, "mpi4py Send/Recv", mpi4py),
            ]
        ],
    )
    latency = markdown_table(
        ["transport", "ours us", "raw", "raw us", "ratio (ours/raw)"],
        [
            [
                "tcp channel",
                f"{tcp['latency_us']:.1f}",
                "pyzmq PAIR, 8-byte buffer",
                f"{zmq['latency_us']:.1f}",
                ratio(tcp["latency_us"], zmq["latency_us"]),
            ],
            [
                "mpi channel",
                f"{mpi['latency_us']:.1f}",
                "mpi4py send/recv (object)",
                f"{mpi4py['object_latency_us']:.1f}",
                ratio(mpi["latency_us"], mpi4py["object_latency_us"]),
            ],
            [
                "mpi channel",
                f"{mpi['latency_us']:.1f}",
                "mpi4py Send/Recv (8-byte buffer)",
                f"{mpi4py['latency_us']:.1f}",
                ratio(mpi["latency_us"], mpi4py["latency_us"]),
            ],
        ],
    )
    size = f"{nbytes / 1e6:g} MB" if nbytes >= 10**6 else f"{nbytes} B"
    bandwidth_notes = (
        f"Ping-pong between 2 processes on this machine; each number is the median of "
        f"{rounds} rounds, the four transports measured in turns in each round. "
        f"Bandwidth: a {size} `uint8` NumPy "
        f"array sent and echoed back {iters} times (after one untimed round trip); MB/s = bytes "
        f"moved both ways / time, 1 MB = 10^6 bytes. Ours runs inside a 2-worker job "
        f"(`local` with `network.channel=tcp`, `mpi` with `network.channel=mpi`), timed in "
        f"worker 0. Target: at least {TARGET:g}x the raw transport's bandwidth."
    )
    latency_notes = (
        f"Latency: half the median round trip of an 8-byte message over {pings} pings (after "
        f"{WARM_PINGS} untimed). Ours sends the 8-byte `bytes` object `{SMALL!r}` "
        f"(`comm.send`/`comm.recv`); raw mpi4py is shown for both its object tier "
        f"(`comm.send` of the same `bytes`) and its buffer tier (`Send` of 8 bytes)."
    )
    return "\n\n".join(
        ["### Channel bandwidth and latency", bandwidth_notes, bandwidth, latency_notes, latency]
    )


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--raw-mpi"]:
        _raw_mpi_ranks(*(int(a) for a in argv[1:4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_options(parser)
    parser.add_argument("--mbytes", type=float, help="array size in MB (default 64)")
    parser.add_argument("--iters", type=int, help="timed round trips of the array (default 10)")
    parser.add_argument("--pings", type=int, help="timed 8-byte pings (default 2000)")
    parser.add_argument("--rounds", type=int, help="rounds over all transports (default 3)")
    args = parser.parse_args(argv)
    nbytes = int((args.mbytes or (1 if args.quick else 64)) * 10**6)
    iters = args.iters or (3 if args.quick else 10)
    pings = args.pings or (200 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 3)
    emit(run(nbytes, iters, pings, rounds), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

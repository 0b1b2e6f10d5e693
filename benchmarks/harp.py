"""Harp benchmarks: allreduce of a 64 MB table beside mpi4py's Allreduce, and Harp K-Means.

Allreduce: a table of 16 float64 partitions, 64 MB in all (4 MB each), summed over the workers
by ``Harp.allreduce`` in a job (``local`` with ``network.channel=tcp``; ``mpi`` with
``network.channel=mpi``), at 2 and 4 workers; beside it, mpi4py's ``comm.Allreduce`` of one
64 MB float64 buffer (the same bytes) under ``mpiexec -n N``. Each timing is the median over
``--iters`` calls (after one untimed call) of the slowest worker's time for one call, every call
started together (a barrier before each). Ratio: mpi4py's time / ours; target: at least 0.8x.
To show where the time goes, the two halves of Harp's allreduce are also timed alone: the
regroup (reduce-scatter: every partition to its owner, summed there) and the allgather of the
summed partitions.

K-Means: ``examples/harp/kmeans.py`` (allreduce of a centroid table every iteration) on
generated data, 200,000 points of 16 dimensions (25.6 MB of float64), 16 centres, 10
iterations, at 1, 2 and 4 workers on each cluster; the time of the iterations (the slowest
worker's), beside the same K-Means in one process with NumPy. Every process uses one BLAS
thread (``OPENBLAS_NUM_THREADS=1``).

Every number is the median of ``--rounds`` rounds (3), all measurements taken in turns in each
round, so that load from other work on the machine spreads over all of them.

    python benchmarks/harp.py            # the sizes above, 3 rounds: about 3 minutes on 2 cores
    python benchmarks/harp.py --quick    # 4 MB, 2 workers, 20,000 points: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# One BLAS thread per process, for the single-process K-Means and every worker alike (set before
# NumPy loads; workers and mpiexec inherit it): threads that spin on shared cores only slow down.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from table import add_report_options, emit, markdown_table, ratio, yes_no

import twister2
from twister2.harp import Harp, Table
from twister2.resource.mpi import find_mpiexec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "harp"))

import kmeans  # noqa: E402  (examples/harp/kmeans.py)

TARGET = 0.8
"""Harp's allreduce should take at most 1 / 0.8 of mpi4py's Allreduce time."""
PARTITIONS = 16
RAW_MPI_MARKER = "RAW-MPI-RESULT "


def _table(nbytes: int, worker: int) -> Table:
    each = nbytes // PARTITIONS // 8
    return Table("sum", {pid: np.full(each, float(worker + 1)) for pid in range(PARTITIONS)})


def _check(table: Table, nbytes: int, workers: int) -> None:
    want, each = workers * (workers + 1) / 2, nbytes // PARTITIONS // 8
    ok = table.ids() == list(range(PARTITIONS))
    if not ok or any(len(p.data) != each or p.data[0] != want or p.data[-1] != want for p in table):
        msg = f"the allreduced table is wrong: ids {table.ids()}"
        raise RuntimeError(msg)


def allreduce_main(env: twister2.WorkerEnv) -> dict[str, list[float]]:
    """The job: ``iters + 1`` allreduces (and regroups and allgathers) of the table."""
    nbytes, iters = int(env.args[0]), int(env.args[1])
    harp = Harp.from_env(env, context="bench")
    table = _table(nbytes, env.worker_id)
    times: dict[str, list[float]] = {"allreduce": [], "regroup": [], "allgather": []}
    for i in range(iters + 1):
        env.barrier("bench.allreduce")
        start = time.perf_counter()
        total = harp.allreduce(table)
        elapsed = time.perf_counter() - start
        _check(total, nbytes, env.num_workers)
        env.barrier("bench.regroup")
        start = time.perf_counter()
        owned = harp.regroup(table)
        regroup = time.perf_counter() - start
        env.barrier("bench.allgather")
        start = time.perf_counter()
        harp.allgather(owned)
        allgather = time.perf_counter() - start
        if i > 0:
            times["allreduce"].append(elapsed)
            times["regroup"].append(regroup)
            times["allgather"].append(allgather)
    return times


def harp_allreduce(cluster: str, workers: int, nbytes: int, iters: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="twister2-bench-") as logs:
        result = twister2.run(
            allreduce_main,
            workers=workers,
            cluster=cluster,
            config={"network.channel": "tcp" if cluster == "local" else "mpi", "job.log_dir": logs},
            args=[str(nbytes), str(iters)],
        )
    return {
        key: statistics.median(max(v[key][i] for v in result.values) for i in range(iters))
        for key in ("allreduce", "regroup", "allgather")
    }


# -- raw mpi4py (this file under mpiexec -n N with --raw-mpi) ----------------------------------
def _raw_mpi_ranks(nbytes: int, iters: int) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    data = np.full(nbytes // 8, float(comm.Get_rank() + 1))
    out = np.empty_like(data)
    times = []
    for i in range(iters + 1):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(data, out, op=MPI.SUM)
        elapsed = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
        if i > 0:
            times.append(elapsed)
    size = comm.Get_size()
    if out[0] != size * (size + 1) / 2:
        msg = f"mpi4py's Allreduce gave {out[0]}"
        raise RuntimeError(msg)
    if comm.Get_rank() == 0:
        print(RAW_MPI_MARKER + json.dumps({"allreduce": statistics.median(times)}), flush=True)


def raw_mpi(workers: int, nbytes: int, iters: int) -> float:
    command = [find_mpiexec(), "-n", str(workers), sys.executable, __file__, "--raw-mpi"]
    command += [str(nbytes), str(iters)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    for line in done.stdout.splitlines():
        if line.startswith(RAW_MPI_MARKER):
            return float(json.loads(line[len(RAW_MPI_MARKER) :])["allreduce"])
    msg = f"no result from {' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    raise RuntimeError(msg)


# -- K-Means --------------------------------------------------------------------------------------
def harp_kmeans(cluster: str, workers: int, args: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="twister2-bench-") as logs:
        result = twister2.run(
            kmeans.KMeansWorker.main,
            workers=workers,
            cluster=cluster,
            config={"network.channel": "tcp" if cluster == "local" else "mpi", "job.log_dir": logs},
            args=args,
        )
    return max(float(v["seconds"]) for v in result.values)


def numpy_kmeans(args: list[str]) -> float:
    opts = kmeans.parse(args)
    points, initial = kmeans.generate(opts)
    start = time.perf_counter()
    kmeans.single_process(points, initial, opts.iterations)
    return time.perf_counter() - start


# -- the report -----------------------------------------------------------------------------------
CLUSTERS = (("local", "tcp"), ("mpi", "mpi"))


def _median(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(sample[key] for sample in samples)


def allreduce_report(nbytes: int, iters: int, sizes: list[int], rounds: int) -> str:
    samples: dict[tuple[int, str], list[dict[str, float]]] = {}
    for _ in range(rounds):  # in turns, so that load from elsewhere spreads over all of them
        for workers in sizes:
            base = {"allreduce": raw_mpi(workers, nbytes, iters)}
            samples.setdefault((workers, "mpi4py"), []).append(base)
            for cluster, _channel in CLUSTERS:
                ours = harp_allreduce(cluster, workers, nbytes, iters)
                samples.setdefault((workers, cluster), []).append(ours)
                print(
                    f"harp: allreduce {cluster} {workers}: {ours}, mpi4py {base}", file=sys.stderr
                )
    rows = []
    for workers in sizes:
        base = _median(samples[workers, "mpi4py"], "allreduce")
        for cluster, channel in CLUSTERS:
            ours = {k: _median(samples[workers, cluster], k) for k in samples[workers, cluster][0]}
            rows.append(
                [
                    workers,
                    f"{cluster}/{channel}",
                    f"{ours['allreduce'] * 1e3:.1f}",
                    f"{ours['regroup'] * 1e3:.1f}",
                    f"{ours['allgather'] * 1e3:.1f}",
                    f"{base * 1e3:.1f}",
                    ratio(base, ours["allreduce"]),
                    yes_no(base >= TARGET * ours["allreduce"]),
                ]
            )
    table = markdown_table(
        [
            "workers",
            "cluster/channel",
            "Harp allreduce ms",
            "regroup alone ms",
            "allgather alone ms",
            "mpi4py Allreduce ms",
            "ratio (mpi4py/Harp)",
            f"target met (>= {TARGET:g}x)",
        ],
        rows,
    )
    size = f"{nbytes / 1e6:g} MB"
    notes = (
        f"A table of {PARTITIONS} float64 partitions, {size} in all, summed by "
        f"`Harp.allreduce`; mpi4py's `comm.Allreduce` of one {size} float64 buffer under "
        f"`mpiexec -n N` beside it. In each job, the median over {iters} calls (after one "
        f"untimed) of the slowest worker's time, a barrier before each call; each number is the "
        f"median of {rounds} rounds, everything measured in turns in each round; "
        f"1 MB = 10^6 bytes. Target: at least {TARGET:g}x mpi4py's speed. The regroup and "
        f"allgather columns time the two halves of Harp's allreduce alone (reduce-scatter to "
        f"each partition's owner, then all-gather)."
    )
    return "\n\n".join(["### Harp allreduce", notes, table])


def kmeans_report(args: list[str], sizes: list[int], clusters: list[str], rounds: int) -> str:
    opts = kmeans.parse(args)
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        samples.setdefault(("numpy", 1), []).append(numpy_kmeans(args))
        for cluster in clusters:
            for workers in sizes:
                seconds = harp_kmeans(cluster, workers, args)
                samples.setdefault((cluster, workers), []).append(seconds)
                print(f"harp: kmeans {cluster} {workers}: {seconds:.3f} s", file=sys.stderr)
    single = statistics.median(samples["numpy", 1])
    rows: list[list[Any]] = [["1 process (NumPy)", "-", f"{single:.3f}", "1.00x"]]
    for cluster in clusters:
        for workers in sizes:
            seconds = statistics.median(samples[cluster, workers])
            rows.append([cluster, workers, f"{seconds:.3f}", ratio(single, seconds)])
    table = markdown_table(
        ["cluster", "workers", "seconds (iterations)", "speed-up over 1 process"], rows
    )
    megabytes = opts.points * opts.dim * 8 / 1e6
    notes = (
        f"`examples/harp/kmeans.py`: {opts.points:,} generated points of {opts.dim} dimensions "
        f"({megabytes:g} MB of float64), {opts.k} centres, {opts.iterations} iterations; one "
        f"allreduce of a {opts.k}-partition centroid table per iteration. Time of the iterations "
        f"in the slowest worker (data generation and the final check excluded), beside the same "
        f"K-Means over all points in one process; one BLAS thread per process; medians of "
        f"{rounds} rounds."
    )
    return "\n\n".join(["### Harp K-Means", notes, table])


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--raw-mpi"]:
        _raw_mpi_ranks(int(argv[1]), int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_options(parser)
    parser.add_argument("--mbytes", type=float, help="table size in MB, 10^6 bytes (default 64)")
    parser.add_argument("--iters", type=int, help="timed allreduces per job (default 5)")
    parser.add_argument("--rounds", type=int, help="rounds over all measurements (default 3)")
    args = parser.parse_args(argv)
    nbytes = int((args.mbytes or (4 if args.quick else 64)) * 10**6)
    iters = args.iters or (2 if args.quick else 5)
    sizes = [2] if args.quick else [2, 4]
    rounds = args.rounds or (1 if args.quick else 3)
    if args.quick:
        km_args, km_sizes, km_clusters = ["--points", "20000"], [2], ["local"]
    else:
        km_args = ["--points", "200000", "--dim", "16", "--k", "16", "--iterations", "10"]
        km_sizes, km_clusters = [1, 2, 4], ["local", "mpi"]
    load_before = _load()
    parts = [
        allreduce_report(nbytes, iters, sizes, rounds),
        kmeans_report(km_args, km_sizes, km_clusters, rounds),
    ]
    load = f"Load average (1/5/15 min; other work shares this machine): {load_before} at the start"
    parts.append(f"{load}, {_load()} at the end.")
    emit("\n\n".join(parts), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

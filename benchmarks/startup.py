"""Job start-up: the wall time of ``twister2.run`` for an empty job, beside ``mpiexec`` alone.

For each cluster (``local``, ``mpi``) and worker count, the time from calling
``twister2.run(empty_main, workers=N, cluster=c)`` to its return (master start, launch, worker
imports, registration, channel set-up, end barrier, teardown), against the floor
``mpiexec -n N python -c pass``: starting N bare Pythons. Median of ``--repeats`` runs, after
one untimed warm-up of each, the job and floor runs of one worker count taken in turns. Job
event logs go to a temporary ``job.log_dir``.

    python benchmarks/startup.py            # workers 1 2 4 8, 5 repeats
    python benchmarks/startup.py --quick    # workers 1 2, 2 repeats
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from table import add_report_options, emit, markdown_table, ratio, yes_no

import twister2
from twister2.resource.mpi import find_mpiexec

CLUSTERS = ("local", "mpi")
WORKER_IMPORTS = {
    "local": "import twister2.worker.bootstrap, twister2.net.tcp",
    "mpi": "import twister2.worker.bootstrap, twister2.net.mpi; from mpi4py import MPI",
}
"""What one worker imports before it can register (the mpi channel initialises MPI)."""
TARGET = 2.0
"""Start-up should take under this many times the floor."""


def empty_main(env: twister2.WorkerEnv) -> None:
    """The job: nothing (workers load it from this file)."""


def time_job(cluster: str, workers: int, config: dict[str, Any]) -> float:
    start = time.perf_counter()
    result = twister2.run(empty_main, workers=workers, cluster=cluster, config=config, args=[])
    elapsed = time.perf_counter() - start
    if len(result.values) != workers:
        msg = f"{cluster} job with {workers} workers returned {len(result.values)} values"
        raise RuntimeError(msg)
    return elapsed


def time_floor(mpiexec: str, workers: int) -> float:
    start = time.perf_counter()
    subprocess.run([mpiexec, "-n", str(workers), sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def time_imports(mpiexec: str, cluster: str) -> float:
    start = time.perf_counter()
    command = [mpiexec, "-n", "1", sys.executable, "-c", WORKER_IMPORTS[cluster]]
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def medians(repeats: int, measures: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Each measure's median of ``repeats`` runs, taken in turns so that load spikes spread."""
    for measure in measures.values():
        measure()  # warm-up: file cache, first-use costs
    times: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, measure in measures.items():
            times[name].append(measure())
    return {name: statistics.median(t) for name, t in times.items()}


def run(worker_counts: list[int], repeats: int) -> str:
    mpiexec = find_mpiexec()
    rows = []
    with tempfile.TemporaryDirectory(prefix="twister2-bench-") as logs:
        config = {"job.log_dir": logs}
        imports = medians(
            repeats, {c: functools.partial(time_imports, mpiexec, c) for c in CLUSTERS}
        )
        for workers in worker_counts:
            measures = {"floor": functools.partial(time_floor, mpiexec, workers)}
            for cluster in CLUSTERS:
                measures[cluster] = functools.partial(time_job, cluster, workers, config)
            got = medians(repeats, measures)
            floor = got["floor"]
            for cluster in CLUSTERS:
                ours = got[cluster]
                rows.append(
                    [
                        cluster,
                        workers,
                        f"{ours:.3f}",
                        f"{floor:.3f}",
                        ratio(ours, floor),
                        f"{imports[cluster]:.3f}",
                        yes_no(ours < TARGET * floor),
                    ]
                )
                print(
                    f"startup: {cluster} x{workers}: {ours:.3f} s (floor {floor:.3f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    rows.sort(key=lambda r: (CLUSTERS.index(str(r[0])), r[1]))
    table = markdown_table(
        [
            "cluster",
            "workers",
            "median s",
            "floor s",
            "ratio",
            "one worker's imports s",
            f"target met (< {TARGET:g}x)",
        ],
        rows,
    )
    notes = (
        f"Wall time of `twister2.run(empty_main, workers=N, cluster=c)` (an empty job, from "
        f"the call to its return) beside the floor `mpiexec -n N python -c pass` (the same floor "
        f"for both clusters): medians of {repeats} runs after one warm-up, the runs of one "
        f"worker count taken in turns. Target: under {TARGET:g}x the floor. For scale, "
        f"\"one worker's imports\" is the time of `mpiexec -n 1 python -c '...'` importing "
        f"what a worker of that cluster imports before it can register "
        f"(`{WORKER_IMPORTS['local']}`; on mpi `{WORKER_IMPORTS['mpi']}`), median likewise."
    )
    return "\n\n".join(["### Job start-up", notes, table])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_options(parser)
    parser.add_argument("--workers", type=int, nargs="+", help="worker counts (default 1 2 4 8)")
    parser.add_argument("--repeats", type=int, help="timed runs per cell (default 5)")
    args = parser.parse_args(argv)
    counts = args.workers or ([1, 2] if args.quick else [1, 2, 4, 8])
    repeats = args.repeats or (2 if args.quick else 5)
    emit(run(counts, repeats), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Idle CPU: what a worker waiting on a barrier, and the job master, burn while nothing happens.

A 2-worker job: worker 0 sleeps ``--wait`` seconds (10 by default) before it reaches a barrier
that worker 1 is already waiting on. Worker 1's CPU time during its wait
(``time.process_time()``: every thread of the process, so the heartbeat and channel threads
count) is reported as a percentage of one core, on ``local`` with the tcp channel and on ``mpi``
with the mpi channel. Worker 0's sleep is measured the same way, and the job master's (the
submitting process's) CPU over the whole ``twister2.run`` call, start-up and teardown included.

    python benchmarks/idle_cpu.py            # 10 s wait
    python benchmarks/idle_cpu.py --quick    # 2 s wait
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from table import add_report_options, emit, markdown_table, yes_no

import twister2

SETUPS = (("local", "tcp"), ("mpi", "mpi"))
TARGET = 5.0
"""Idle processes should use under this percentage of one core."""


def idle_main(env: twister2.WorkerEnv) -> dict[str, float]:
    """The job: worker 0 sleeps, then meets worker 1 at a barrier; each times its wait."""
    wait = float(env.args[0])
    env.barrier("bench.ready")  # both workers are up and their channels open
    cpu, wall = time.process_time(), time.perf_counter()
    if env.worker_id == 0:
        time.sleep(wait)
    env.barrier("bench.idle")
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}


def measure(cluster: str, channel: str, wait: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="twister2-bench-") as logs:
        cpu, wall = time.process_time(), time.perf_counter()
        result = twister2.run(
            idle_main,
            workers=2,
            cluster=cluster,
            config={"network.channel": channel, "job.log_dir": logs},
            args=[str(wait)],
        )
        master_cpu, master_wall = time.process_time() - cpu, time.perf_counter() - wall
    sleeper, waiter = result.values
    return {
        "waiter_wall": waiter["wall"],
        "waiter_pct": 100 * waiter["cpu"] / waiter["wall"],
        "sleeper_pct": 100 * sleeper["cpu"] / sleeper["wall"],
        "waiter_cpu": waiter["cpu"],
        "master_cpu": master_cpu,
        "master_wall": master_wall,
        "master_pct": 100 * master_cpu / master_wall,
    }


def run(wait: float) -> str:
    rows = []
    for cluster, channel in SETUPS:
        m = measure(cluster, channel, wait)
        print(f"idle_cpu: {cluster}/{channel}: {m}", file=sys.stderr, flush=True)
        rows.append(
            [
                f"{cluster}/{channel}",
                f"{m['waiter_wall']:.2f}",
                f"{m['waiter_cpu']:.3f}",
                f"{m['waiter_pct']:.2f}",
                yes_no(m["waiter_pct"] < TARGET),
                f"{m['sleeper_pct']:.2f}",
                f"{m['master_cpu']:.3f} / {m['master_wall']:.2f}",
                f"{m['master_pct']:.2f}",
                yes_no(m["master_pct"] < TARGET),
            ]
        )
    table = markdown_table(
        [
            "cluster/channel",
            "worker 1 wait s",
            "worker 1 CPU s",
            "worker 1 % core",
            f"target met (< {TARGET:g}%)",
            "worker 0 % core (sleeping)",
            "master CPU s / wall s",
            "master % core",
            f"master target met (< {TARGET:g}%)",
        ],
        rows,
    )
    notes = (
        f"A 2-worker job: worker 1 waits {wait:g} s on a barrier while worker 0 sleeps before "
        f"arriving. CPU time by `time.process_time()` (all threads of the process: heartbeats, "
        f"channel threads), as a percentage of one core over the wait. The job master's CPU is "
        f"the submitting process's over the whole `twister2.run` call, start-up and teardown "
        f"included, divided by that call's wall time. Target: under {TARGET:g}% of a core."
    )
    return "\n\n".join(["### Idle CPU", notes, table])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_options(parser)
    parser.add_argument("--wait", type=float, help="seconds worker 1 waits (default 10)")
    args = parser.parse_args(argv)
    emit(run(args.wait or (2.0 if args.quick else 10.0)), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Entry functions of the jobs the dashboard tests run (workers import them from here).

``pipeline`` reports a three-task dataflow the way operators and the task system will: a
``graph`` event (worker 0), one ``operation`` event per worker and operation with per-instance
stats, and ``stage`` progress. The last ``count`` instance is slow and receives the most data,
so at 3 workers it is a straggler and the largest partition.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from twister2 import WorkerEnv

STEPS = 4
VALUES = 100


def _report(env: WorkerEnv, *, declare: bool) -> None:
    n, wid = env.num_workers, env.worker_id
    if declare and wid == 0:
        env.master.event(
            "graph",
            nodes=[
                {"name": "read", "parallelism": n},
                {"name": "count", "parallelism": n},
                {"name": "total", "parallelism": 1},
            ],
            edges=[
                {"from": "read", "to": "count", "op": "partition", "name": "shuffle"},
                {"from": "count", "to": "total", "op": "reduce", "name": "sum"},
            ],
        )
    slow = n > 1 and wid == n - 1
    received = VALUES * (3 if slow else 1)
    env.master.event(
        "operation",
        op="partition",
        name="shuffle",
        source_task="read",
        target_task="count",
        sources=list(range(n)),
        targets=list(range(n)),
        values=VALUES,
        bytes=VALUES * 8,
        instances=[
            {
                "task": "read",
                "index": wid,
                "worker": wid,
                "values_out": VALUES,
                "bytes_out": VALUES * 8,
                "busy_s": 0.1,
            },
            {
                "task": "count",
                "index": wid,
                "worker": wid,
                "values_in": received,
                "bytes_in": received * 8,
                "busy_s": 0.9 if slow else 0.2,
            },
        ],
    )
    instances: list[dict[str, Any]] = [
        {"task": "count", "index": wid, "worker": wid, "values_out": 1, "bytes_out": 8}
    ]
    if wid == 0:
        instances.append(
            {
                "task": "total",
                "index": 0,
                "worker": 0,
                "values_in": n,
                "bytes_in": 8 * n,
                "busy_s": 0.01,
            }
        )
    env.master.event(
        "operation",
        op="reduce",
        name="sum",
        source_task="count",
        target_task="total",
        sources=list(range(n)),
        targets=[0],
        values=1,
        bytes=8,
        instances=instances,
    )


def pipeline(env: WorkerEnv) -> int:
    """Log, report stages and operations, live long enough for a few metrics samples."""
    env.logger.info("pipeline starting on worker %d", env.worker_id)
    for step in range(STEPS):
        env.master.event("stage", stage="read", done=step + 1, total=STEPS)
        time.sleep(0.2)
    _report(env, declare="operations-only" not in env.args)
    env.logger.warning("worker %d done", env.worker_id)
    env.barrier("pipeline")
    return env.worker_id


def wait_for_file(env: WorkerEnv) -> int:
    """Report the dataflow, then run until the file named by the first argument exists."""
    _report(env, declare=True)
    flag = Path(env.args[0])
    deadline = time.monotonic() + 90.0
    step = 0
    while not flag.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{flag} did not appear within 90 s")
        step += 1
        env.master.event("stage", stage="wait", done=min(step, 50), total=50)
        if step % 5 == 0:
            env.logger.info("worker %d still waiting (%d)", env.worker_id, step)
        time.sleep(0.1)
    return env.worker_id


def fail_in_count(env: WorkerEnv) -> None:
    """The last worker fails in task 'count' after reporting its operations."""
    _report(env, declare=True)
    if env.worker_id == env.num_workers - 1:
        error = ValueError(f"bad record in partition {env.worker_id}")
        error.twister2_task = "count"  # type: ignore[attr-defined]
        raise error
    env.barrier("never")


def chatty(env: WorkerEnv) -> int:
    """Logs far more lines than the shipping rate allows."""
    for i in range(5000):
        env.logger.info("line %d", i)
    time.sleep(1.5)
    env.logger.info("last line")
    return 0

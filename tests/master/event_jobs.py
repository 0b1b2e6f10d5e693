"""Entry functions of the event-log tests' jobs (workers import them from here)."""

from __future__ import annotations

from twister2 import WorkerEnv


def report_and_sum(env: WorkerEnv) -> int:
    """Report a few events through the job master, meet at a barrier, return a checkable
    value."""
    for step in range(3):
        env.master.event("stage", stage="count", done=step, total=3)
    env.barrier("events reported")
    return sum(range(env.worker_id * 10, env.worker_id * 10 + 10))


def huge_event(env: WorkerEnv) -> None:
    """The last worker reports an event of about 20 MB (over the 16 MiB message limit)."""
    if env.worker_id == env.num_workers - 1:
        env.master.event("blob", data="x" * (20 * 1024 * 1024))
    env.barrier("after the huge event")

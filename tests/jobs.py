"""Entry functions of the jobs the tests run (workers import them from here)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from tests.net.channel_checks import run_all
from twister2 import WorkerEnv


def hello(env: WorkerEnv) -> dict[str, Any]:
    env.barrier("hello")
    env.logger.info("hello from %d", env.worker_id)
    assert env.scratch_dir.is_dir()
    return {
        "id": env.worker_id,
        "n": env.num_workers,
        "pid": os.getpid(),
        "workers": [(w.id, w.pid, w.host) for w in env.workers],
        "channel": env.comm.scheme,
        "args": env.args,
        "job_id": env.job_id,
        "timeout": env.config["master.failure_timeout"],
    }


def channel_checks(env: WorkerEnv) -> str:
    return run_all(env.comm)


def barriers(env: WorkerEnv) -> list[tuple[float, float]]:
    """Five rounds, each with a different late worker: (arrival, departure) wall times."""
    times = []
    for round_ in range(5):
        if env.worker_id == round_ % env.num_workers:
            time.sleep(0.2)
        arrived = time.time()
        env.barrier(f"round-{round_}")
        times.append((arrived, time.time()))
    return times


def raise_in_last(env: WorkerEnv) -> None:
    if env.worker_id == env.num_workers - 1:
        raise ValueError(f"boom from worker {env.worker_id}")
    env.barrier("never")


def sigkill_last(env: WorkerEnv) -> None:
    if env.worker_id == env.num_workers - 1:
        os.kill(os.getpid(), signal.SIGKILL)
    env.barrier("never")


def sigstop_last(env: WorkerEnv) -> None:
    if env.worker_id == env.num_workers - 1:
        os.kill(os.getpid(), signal.SIGSTOP)
    env.barrier("never")


def exit_silently_last(env: WorkerEnv) -> None:
    if env.worker_id == env.num_workers - 1:
        os._exit(0)
    env.barrier("never")


def late_for_barrier(env: WorkerEnv) -> None:
    if env.worker_id == 0:
        env.barrier("meet", timeout=1.0)
    else:
        time.sleep(3.0)


def sleep_forever(env: WorkerEnv) -> None:
    while True:
        time.sleep(1.0)


def unpicklable_result(env: WorkerEnv) -> Any:
    return lambda: None


def scaled_id(env: WorkerEnv, factor: int = 1) -> int:
    return env.worker_id * factor


def log_then_sigkill_last(env: WorkerEnv) -> None:
    """The last worker logs three lines and is killed at once; the others wait."""
    if env.worker_id == env.num_workers - 1:
        for i in range(3):
            env.logger.info("line %d of worker %d before the kill", i, env.worker_id)
        os.kill(os.getpid(), signal.SIGKILL)
    env.barrier("never")

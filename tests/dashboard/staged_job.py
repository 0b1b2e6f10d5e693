"""A job script for `twister2 submit` that reports stage progress (the CLI progress tests)."""

from __future__ import annotations

import time

import twister2
from twister2 import WorkerEnv


def main(env: WorkerEnv) -> int:
    for step in range(5):
        env.master.event("stage", stage="load", done=step + 1, total=5)
        time.sleep(0.1)
    return env.worker_id


if __name__ == "__main__":
    result = twister2.run(main, workers=2)
    print(f"job {result.job_id} {result.state.value}")

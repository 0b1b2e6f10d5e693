"""Entry functions of the real-process array-tier tests (workers import them from here)."""

from __future__ import annotations

from typing import Any

from tests.net.batch.array_cases import run_all_cases, run_spilling_cases
from twister2 import WorkerEnv


def all_array_operators(env: WorkerEnv) -> dict[str, dict[int, Any]]:
    return run_all_cases(env.dataflow, env.num_workers)


def spilling_array_operators(env: WorkerEnv) -> dict[str, Any]:
    return run_spilling_cases(env.dataflow, env.num_workers, env.scratch_dir)

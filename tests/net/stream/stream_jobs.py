"""Entry functions of the real-process streaming tests (workers import them from here)."""

from __future__ import annotations

from typing import Any

from tests.net.stream.cases import run_all_cases
from twister2 import WorkerEnv


def all_stream_operators(env: WorkerEnv) -> dict[str, dict[int, Any]]:
    return run_all_cases(env.dataflow, env.num_workers)

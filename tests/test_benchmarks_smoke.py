"""A tiny-size run of each benchmark: they keep working (their numbers are not checked here;
benchmarks, not tests, hold speed targets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "script",
    [
        "startup.py",
        "idle_cpu.py",
        pytest.param("channel.py", marks=pytest.mark.mpi),
        pytest.param("harp.py", marks=pytest.mark.mpi),
        pytest.param("collectives.py", marks=pytest.mark.mpi),
        "sort.py",
    ],
)
def test_benchmark_quick_run(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "|" in proc.stdout  # a results table was printed

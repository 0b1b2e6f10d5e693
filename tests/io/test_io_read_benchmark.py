"""A tiny run of ``benchmarks/io_read.py``: it keeps working (its numbers are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_io_read_benchmark_runs_at_a_tiny_size() -> None:
    script = ROOT / "benchmarks" / "io_read.py"
    command = [sys.executable, str(script), "--size-mb", "2", "--rounds", "1"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| twister2.io, 2 readers" in proc.stdout

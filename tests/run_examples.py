"""Running example scripts as a user does: through ``twister2 submit`` or plain ``python``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    """``python *args`` from the repository root, with the repository importable."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )


def submit_script(
    cluster: str, script: Path, workers: int, *args: str
) -> subprocess.CompletedProcess[str]:
    """``twister2 submit <cluster> <script> --workers N --quiet -- *args``."""
    return run_python(
        "-m",
        "twister2.cli",
        "submit",
        cluster,
        str(script),
        "--workers",
        str(workers),
        "--quiet",
        "--",
        *args,
    )

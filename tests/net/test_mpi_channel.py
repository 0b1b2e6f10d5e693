"""The mpi channel in real MPI jobs: ``mpiexec -n N`` runs ``mpi_channel_main.py`` on N ranks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mpi4py")

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
MAIN = Path(__file__).with_name("mpi_channel_main.py")
MPIEXEC = Path(sys.executable).parent / "mpiexec"


def run_main(*args: str, ranks: int | None = None, timeout: float = 120.0) -> str:
    """Run the main script (under ``mpiexec -n ranks`` unless ``ranks`` is None); its output."""
    if ranks is not None and not MPIEXEC.exists():
        pytest.skip(f"no mpiexec beside the interpreter at {MPIEXEC}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])]
    )
    command = [sys.executable, str(MAIN), *args]
    if ranks is not None:
        command = [str(MPIEXEC), "-n", str(ranks), *command]
    done = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    if ranks is not None:
        assert done.returncode == 0, output
    else:
        assert done.returncode != 0, output
    return output


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_channel_checks(ranks: int) -> None:
    output = run_main(ranks=ranks)
    for rank in range(ranks):
        assert f"rank {rank} ok" in output, output


def test_idle_receive_does_not_spin() -> None:
    """Rank 1 waits 2 s in recv; the CPU its process burns meanwhile is a bound on polling."""
    output = run_main("--idle", ranks=2)
    assert "rank 0 ok" in output and "rank 1 ok" in output, output
    found = re.search(r"rank 1 idle-cpu ([0-9.]+) wall ([0-9.]+)", output)
    assert found is not None, output
    cpu, wall = float(found[1]), float(found[2])
    print(f"rank 1 used {cpu:.3f} s of CPU in {wall:.3f} s of waiting")
    assert wall >= 1.5, output
    assert cpu < 1.0, output


def test_not_under_mpiexec_is_a_clear_error() -> None:
    output = run_main("--size", "2", timeout=60.0)
    assert "rank 0 failed" in output, output
    assert "the mpi channel needs the mpi cluster" in output, output
    assert "not started by mpiexec" in output, output

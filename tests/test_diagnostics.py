"""Start-up problems are one ``twister2: error:`` line that says what to do, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import twister2
from tests import jobs
from twister2.errors import JobStartError

ROOT = Path(__file__).resolve().parents[1]
HELLO = str(ROOT / "examples" / "hello_world.py")


def twister2_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twister2.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("twister2: error: ")
    assert proc.returncode == 2
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_master_port_in_use(busy_port: int, jobs_dir: Path, isolated_config: Path) -> None:
    line = one_error_line(twister2_cli("submit", "local", HELLO, "-c", f"master.port={busy_port}"))
    assert f"cannot listen on 127.0.0.1:{busy_port}: Address already in use" in line
    assert "set master.port to a free port, or to 0" in line
    assert not jobs_dir.exists() or not list(jobs_dir.iterdir())  # no job folder left
    scratch = isolated_config / "scratch"
    assert not scratch.exists() or not list(scratch.iterdir())  # no scratch left


def test_master_port_in_use_from_run(busy_port: int) -> None:
    with pytest.raises(JobStartError, match="Address already in use"):
        twister2.run(jobs.hello, workers=2, config={"master.port": busy_port})


def test_master_interface_not_of_this_host() -> None:
    line = one_error_line(
        twister2_cli("submit", "local", HELLO, "-c", "master.interface=192.0.2.1")
    )
    assert "master.interface '192.0.2.1' is not an address of this host" in line


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_master_port_out_of_range(port: str) -> None:
    line = one_error_line(twister2_cli("submit", "local", HELLO, "-c", f"master.port={port}"))
    assert f"'master.port' (from --config master.port={port}) must be an int in [0, 65535]" in line


def test_log_dir_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = one_error_line(twister2_cli("submit", "local", HELLO, TWISTER2_JOB__LOG_DIR=str(afile)))
    assert f"job.log_dir {afile} is a file, not a directory" in line
    line = one_error_line(twister2_cli("jobs", TWISTER2_JOB__LOG_DIR=str(afile)))
    assert f"{afile} is a file" in line


@pytest.mark.parametrize("command", [["submit", "local", HELLO], ["jobs"]])
def test_twister2_config_naming_a_directory(tmp_path: Path, command: list[str]) -> None:
    line = one_error_line(twister2_cli(*command, TWISTER2_CONFIG=str(tmp_path)))
    assert f"TWISTER2_CONFIG names {tmp_path}, which is a directory" in line
    assert "does not exist" not in line


@pytest.mark.parametrize(
    ("assignment", "shown"),
    [
        ("master.heartbeat_interval=0", "must be a float > 0, got 0"),
        ("master.failure_timeout=nan", "must be a float > 0, got nan (not a finite number)"),
        ("net.send_buffer_records=0", "must be an int >= 1, got 0"),
    ],
)
def test_out_of_range_values_stop_before_any_process(
    assignment: str, shown: str, jobs_dir: Path
) -> None:
    line = one_error_line(twister2_cli("submit", "local", HELLO, "-c", assignment))
    assert shown in line and assignment.split("=")[0] in line
    assert not jobs_dir.exists() or not list(jobs_dir.iterdir())


def test_timeout_flag_is_validated() -> None:
    line = one_error_line(twister2_cli("submit", "local", HELLO, "--timeout", "-5"))
    assert "'job.timeout'" in line and "must be a float > 0" in line

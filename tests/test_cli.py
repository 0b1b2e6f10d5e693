"""The twister2 command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
HELLO = str(ROOT / "examples" / "hello_world.py")
SCRIPTS = Path(__file__).parent / "scripts"


def twister2(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "twister2.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("twister2: error: ")
    return lines[0]


@pytest.mark.parametrize("cluster", ["local", pytest.param("mpi", marks=pytest.mark.mpi)])
@pytest.mark.parametrize("workers", ["1", "2", "4"])
def test_submit_hello_world(cluster: str, workers: str) -> None:
    proc = twister2("submit", cluster, HELLO, "--workers", workers)
    assert proc.returncode == 0, proc.stderr
    n = int(workers)
    for i in range(n):
        assert f"Hello from worker {i} of {n}" in proc.stdout
    assert "COMPLETED" in proc.stdout


def test_script_arguments_after_double_dash() -> None:
    text = ROOT / "examples" / "data" / "sample.txt"
    proc = twister2(
        "submit",
        "local",
        str(ROOT / "examples" / "word_count.py"),
        "-n",
        "3",
        "--",
        str(text),
        "--top",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "counted by 3 workers" in proc.stdout
    assert len([line for line in proc.stdout.splitlines() if line.startswith("    ")]) == 2


def test_unknown_cluster() -> None:
    proc = twister2("submit", "lcoal", HELLO)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "unknown cluster 'lcoal'" in line and "did you mean 'local'" in line


def test_missing_script() -> None:
    proc = twister2("submit", "local", "nope.py")
    assert proc.returncode == 2
    assert "script 'nope.py' does not exist" in one_error_line(proc)


def test_bad_config_key_and_value() -> None:
    proc = twister2("submit", "local", HELLO, "-c", "network.chanel=tcp")
    assert proc.returncode == 2
    assert "network.channel" in one_error_line(proc)
    proc = twister2("submit", "local", HELLO, "-c", "master.failure_timeout=soon")
    assert proc.returncode == 2
    assert "master.failure_timeout" in one_error_line(proc)


def test_more_workers_than_placeable() -> None:
    proc = twister2("submit", "local", HELLO, "--workers", "100000")
    assert proc.returncode == 2
    assert "resource.local.max_workers" in one_error_line(proc)
    proc = twister2("submit", "local", HELLO, "-n", "2", "-c", "resource.memory_mb=100000000")
    assert proc.returncode == 2
    assert "more memory than this machine has" in one_error_line(proc)


def test_script_that_never_runs_a_job() -> None:
    proc = twister2("submit", "local", str(SCRIPTS / "no_run.py"))
    assert proc.returncode == 2
    assert "did not call twister2.run" in proc.stderr


def test_failing_worker_exits_non_zero_with_traceback() -> None:
    proc = twister2("submit", "local", str(SCRIPTS / "failing.py"))
    assert proc.returncode == 1
    assert "worker 1 raised ValueError: boom from worker 1" in proc.stderr
    assert "remote traceback (worker 1, host" in proc.stderr
    assert 'raise ValueError(f"boom from worker {env.worker_id}")' in proc.stderr


def test_worker_killed_by_signal_via_cli() -> None:
    proc = twister2("submit", "local", str(SCRIPTS / "failing.py"), "--", "--sigkill")
    assert proc.returncode == 1
    assert "worker 1 exited by SIGKILL" in proc.stderr


def test_help_shows_env_fallbacks() -> None:
    for command in ("submit", "jobs", "kill"):
        proc = twister2(command, "--help")
        assert proc.returncode == 0
        assert "env var:" in proc.stdout, proc.stdout
    assert "TWISTER2_SUBMIT_WORKERS" in twister2("submit", "--help").stdout


def test_jobs_lists_finished_jobs(jobs_dir: Path) -> None:
    assert "no jobs" in twister2("jobs").stdout
    assert twister2("submit", "local", HELLO, "-n", "2").returncode == 0
    assert twister2("submit", "local", str(SCRIPTS / "failing.py")).returncode == 1
    table = twister2("jobs").stdout
    assert "COMPLETED" in table and "FAILED" in table and "hello_world-" in table
    listed = json.loads(twister2("jobs", "--json").stdout)
    assert [j["state"] for j in listed] == ["FAILED", "COMPLETED"]  # newest first
    assert "worker 1 raised ValueError" in listed[0]["error"]
    only = json.loads(twister2("jobs", "--json", "--state", "completed").stdout)
    assert [j["state"] for j in only] == ["COMPLETED"]


def test_kill_a_running_job(jobs_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    submit = subprocess.Popen(
        [sys.executable, "-m", "twister2.cli", "submit", "local", str(SCRIPTS / "sleepy.py")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = [
                j for j in json.loads(twister2("jobs", "--json").stdout) if j["state"] == "RUNNING"
            ]
            if running:
                job_id = running[0]["job_id"]
                break
            time.sleep(0.2)
        assert job_id is not None, "the job never reached RUNNING"
        children = psutil.Process(submit.pid).children(recursive=True)
        workers = [p.pid for p in children if "twister2.worker" in p.cmdline()]
        assert len(workers) == 2  # and the job's reaper, which ends with the job
        assert twister2("kill", "nonexistent-job").returncode == 1
        proc = twister2("kill", job_id)
        assert proc.returncode == 0, proc.stderr
        _, err = submit.communicate(timeout=60)
        assert submit.returncode == 130
        assert f"job {job_id} was killed" in err
        assert not [
            p
            for p in workers
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        listed = json.loads(twister2("jobs", "--json").stdout)
        assert listed[0]["state"] == "KILLED"
        again = twister2("kill", job_id)
        assert again.returncode == 1 and "is not running (state KILLED)" in again.stderr
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.communicate()

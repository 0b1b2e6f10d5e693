"""``twister2 dashboard``, ``twister2 token`` and the progress of ``twister2 submit``, run as real
subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from twister2.dashboard import DASHBOARD_FILE, Dashboard

ROOT = Path(__file__).resolve().parents[2]
STAGED = str(Path(__file__).parent / "staged_job.py")


def twister2(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twister2.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )


def test_help_shows_env_fallbacks() -> None:
    text = twister2("dashboard", "--help").stdout
    for name in (
        "TWISTER2_DASHBOARD_PORT",
        "TWISTER2_DASHBOARD_HOST",
        "TWISTER2_DASHBOARD_LOG_DIR",
    ):
        assert name in text
    assert "TWISTER2_SUBMIT_PROGRESS" in twister2("submit", "--help").stdout
    assert "env var:" in twister2("token", "--help").stdout


def test_dashboard_command_serves_until_sigterm(jobs_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "twister2.cli", "dashboard", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TWISTER2_DASHBOARD_LOG_DIR": str(jobs_dir)},
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"twister2 dashboard of {jobs_dir} at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "/api/jobs", timeout=30) as reply:
            assert json.loads(reply.read())["jobs"] == []
        info = json.loads((jobs_dir / DASHBOARD_FILE).read_text())
        assert info["url"] == url and info["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert not (jobs_dir / DASHBOARD_FILE).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_dashboard_on_a_busy_port_says_so(jobs_dir: Path) -> None:
    with Dashboard(jobs_dir, port=0) as dash:
        proc = twister2("dashboard", "--port", str(dash.port), "--log-dir", str(jobs_dir))
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{dash.port}" in proc.stderr and "--port 0" in proc.stderr


def test_token_of_an_unknown_job() -> None:
    proc = twister2("token", "no-such-job")
    assert proc.returncode == 1
    assert "no job 'no-such-job'" in proc.stderr


def test_submit_prints_the_dashboard_url_and_progress(jobs_dir: Path) -> None:
    with Dashboard(jobs_dir, port=0) as dash:
        proc = twister2("submit", "local", STAGED, "--progress")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[1]
    assert f"twister2: dashboard: {dash.url}/jobs/{job_id}" in proc.stderr
    lines = proc.stderr.splitlines()
    workers = [line for line in lines if line.startswith("workers done")]
    assert workers and "2/2" in workers[-1] and "2/2 joined" in workers[-1], proc.stderr
    stage = [line for line in lines if line.startswith("stage load")]
    assert stage and "10/10" in stage[-1], proc.stderr


def test_submit_without_a_terminal_or_dashboard_prints_no_progress(jobs_dir: Path) -> None:
    proc = twister2("submit", "local", STAGED)
    assert proc.returncode == 0, proc.stderr
    assert "workers done" not in proc.stderr and "dashboard:" not in proc.stderr
    quiet = twister2("submit", "local", STAGED, "--quiet", "--progress")
    assert quiet.returncode == 0 and "workers done" not in quiet.stderr

"""Fixtures for every test: an isolated config and job-log folder, and a leak check.

The leak check (like distributed's) fails a test that leaves a child process, a thread or a
listening socket of this process behind, waiting a moment for them to go first.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest


@pytest.fixture(autouse=True)
def isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No user config is read; job logs and scratch go to a temporary folder."""
    base = tmp_path_factory.mktemp("twister2")
    monkeypatch.setenv("TWISTER2_CONFIG_DIR", str(base / "config"))
    monkeypatch.delenv("TWISTER2_CONFIG", raising=False)
    monkeypatch.setenv("TWISTER2_JOB__LOG_DIR", str(base / "jobs"))
    monkeypatch.setenv("TWISTER2_JOB__SCRATCH_DIR", str(base / "scratch"))
    for name in list(os.environ):
        if name.startswith("TWISTER2_") and "__" in name and not name.startswith("TWISTER2_JOB__"):
            monkeypatch.delenv(name)
    return base


@pytest.fixture
def jobs_dir(isolated_config: Path) -> Path:
    return isolated_config / "jobs"


def _listening() -> set[tuple[str, int]]:
    conns = psutil.Process().net_connections(kind="inet")
    return {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}


def _children() -> set[int]:
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if p.status() != psutil.STATUS_ZOMBIE
    }


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


@pytest.fixture(autouse=True)
def leak_check() -> Iterator[None]:
    before_children = _children()
    before_threads = _threads()
    before_listen = _listening()
    yield
    deadline = time.monotonic() + 10.0
    while True:
        children = _children() - before_children
        threads = {t for t in _threads() - before_threads if t.is_alive()}
        listen = _listening() - before_listen
        if not (children or threads or listen) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    problems = []
    if children:
        described = [
            f"{pid} {psutil.Process(pid).cmdline()}" for pid in children if psutil.pid_exists(pid)
        ]
        for pid in children:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        problems.append(f"child processes left running: {described}")
    if threads:
        problems.append(f"threads left running: {sorted(t.name for t in threads)}")
    if listen:
        problems.append(f"sockets left listening: {sorted(listen)}")
    assert not problems, "; ".join(problems)

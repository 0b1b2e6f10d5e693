"""Fixtures of the dashboard tests: a dashboard over the test's job logs, HTTP helpers, and jobs
that run in a background thread while the test looks at them."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import twister2
from twister2.dashboard import Dashboard

FAST = {"dashboard.metrics_interval": 0.2, "master.heartbeat_interval": 0.2}
"""Job config that makes metrics appear within a short job."""


@pytest.fixture
def dashboard(jobs_dir: Path) -> Iterator[Dashboard]:
    with Dashboard(jobs_dir, port=0) as dash:
        yield dash


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    path: str,
    method: str = "GET",
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """Send ``path`` exactly as given (no normalisation, unlike urllib)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return Reply(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
    finally:
        conn.close()


def get_json(dash: Dashboard, path: str) -> Any:
    reply = request(dash.url, path)
    assert reply.status == 200, (path, reply.status, reply.body[:500])
    assert reply.headers["content-type"].startswith("application/json")
    return reply.json()


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(0.1)


@dataclass
class BackgroundJob:
    """A job run by ``twister2.run`` in a thread; ``flag`` lets ``wait_for_file`` jobs end."""

    flag: Path
    thread: threading.Thread | None = None
    result: Any = None
    error: BaseException | None = None
    job_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def release(self) -> None:
        self.flag.touch()

    def join(self, timeout: float = 90.0) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the background job did not end"


@contextlib.contextmanager
def background_job(
    main: Callable[..., Any], workers: int, flag: Path, jobs_dir: Path
) -> Iterator[BackgroundJob]:
    """Run ``main`` (e.g. ``dash_jobs.wait_for_file``) in a thread until the block ends; the
    job's id is known on entry (it has started)."""
    job = BackgroundJob(flag)
    jobs_dir.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in jobs_dir.iterdir()}

    def run() -> None:
        try:
            job.result = twister2.run(main, workers=workers, args=[str(flag)], config=dict(FAST))
        except BaseException as exc:
            job.error = exc

    job.thread = threading.Thread(target=run, name="test-background-job")
    job.thread.start()
    try:

        def started() -> str:
            new = {p.name for p in jobs_dir.iterdir() if p.is_dir()} - before
            return next(iter(new), "")

        job.job_id = wait_until(started, what="the job's log folder")
        yield job
    finally:
        job.release()
        job.join()

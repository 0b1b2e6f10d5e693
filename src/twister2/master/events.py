"""The append-only event log of a job (JSON lines), and reading it back.

Each job has a folder ``<job.log_dir>/<job-id>/`` with ``events.jsonl``. The job master appends one
JSON object per line; ``twister2 jobs`` and the dashboard read them, during the job and after it.
A truncated or corrupt line (a crash mid-write) is skipped with a warning, never fatal.

Example
-------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> log = EventLog(folder / "demo-1")
>>> log.append("job", state="STARTING", name="demo", cluster="local", workers=2)
>>> log.append("job", state="COMPLETED")
>>> log.close()
>>> [s.state for s in list_jobs(folder)]
['COMPLETED']
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EventLog", "JobSummary", "list_jobs", "read_events", "summarize"]

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
MASTER_FILE = "master.json"


class EventLog:
    """Appends events to ``<folder>/events.jsonl``; each line is flushed as it is written."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._file = open(folder / EVENTS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def append(self, kind: str, **fields: Any) -> None:
        record = {"time": time.time(), "type": kind, **fields}
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                os.fsync(self._file.fileno())
                self._file.close()


def read_events(folder: Path) -> Iterator[dict[str, Any]]:
    """The events of one job, oldest first; unreadable lines are skipped with a warning."""
    path = folder / EVENTS_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d is not valid JSON (truncated?); skipped", path, number)
            continue
        if isinstance(record, dict):
            yield record


@dataclass
class JobSummary:
    """What ``twister2 jobs`` shows of one job."""

    job_id: str
    name: str = ""
    cluster: str = ""
    workers: int = 0
    state: str = "UNKNOWN"
    start: float | None = None
    end: float | None = None
    error: str = ""
    master_pid: int | None = None
    worker_states: dict[int, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.start is None:
            return None
        return (self.end if self.end is not None else time.time()) - self.start


def summarize(folder: Path) -> JobSummary:
    """Fold a job's events into its summary."""
    summary = JobSummary(job_id=folder.name)
    for event in read_events(folder):
        kind = event.get("type")
        if kind == "job":
            state = str(event.get("state", summary.state))
            if state == "STARTING" and summary.start is None:
                summary.start = float(event.get("time", 0.0))
                summary.name = str(event.get("name", ""))
                summary.cluster = str(event.get("cluster", ""))
                summary.workers = int(event.get("workers", 0))
                pid = event.get("master_pid")
                summary.master_pid = int(pid) if isinstance(pid, int) else None
            summary.state = state
            if state in ("COMPLETED", "FAILED", "KILLED"):
                summary.end = float(event.get("time", 0.0))
                summary.error = str(event.get("reason", "") or "")
        elif kind == "worker":
            summary.worker_states[int(event.get("worker_id", -1))] = str(event.get("state"))
    if summary.state in ("STARTING", "RUNNING") and not _alive(summary.master_pid):
        summary.state = "LOST"
        summary.error = "the job master ended without recording the job's end"
    return summary


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_jobs(log_dir: Path) -> list[JobSummary]:
    """Every job with an event log under ``log_dir``, newest first."""
    if not log_dir.is_dir():
        return []
    jobs = [summarize(p) for p in log_dir.iterdir() if (p / EVENTS_FILE).is_file()]
    jobs.sort(key=lambda s: (s.start or 0.0, s.job_id), reverse=True)
    return jobs

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

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["EventLog", "JobSummary", "list_jobs", "read_events", "summarize"]

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
MASTER_FILE = "master.json"


class EventLog:
    """Appends events to ``<folder>/events.jsonl``; each line is flushed as it is written.

    The log serves the dashboard and ``twister2 jobs``; the job does not need it. So when the
    file cannot be opened or written (a full disk, a quota, an I/O error), one warning says so
    and the rest of the job's events are dropped: losing the log never fails the job.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / EVENTS_FILE
        self.lost: str | None = None
        """Why events are no longer written (None while they are)."""
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            self._lose(exc)

    def append(self, kind: str, **fields: Any) -> None:
        record = {"time": time.time(), "type": kind, **fields}
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            if self._file is None or self._file.closed:
                return
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except OSError as exc:
                self._lose(exc)

    def close(self) -> None:
        with self._lock:
            if self._file is None or self._file.closed:
                return
            try:
                os.fsync(self._file.fileno())
            except OSError as exc:
                self._lose(exc)
            finally:
                self._close_quietly()

    def _lose(self, exc: OSError) -> None:
        """Stop writing events after ``exc``, with one warning (the job goes on)."""
        self.lost = f"{exc.strerror or exc}"
        log.warning(
            "cannot write the job's event log %s (%s): the job goes on, but its further "
            "events are lost (the dashboard and 'twister2 jobs' will not show them); free "
            "space or point job.log_dir elsewhere for the next job",
            self.path,
            self.lost,
        )
        self._close_quietly()

    def _close_quietly(self) -> None:
        """Close the file; a buffered line that cannot be written any more is dropped."""
        file, self._file = self._file, None
        if file is None or file.closed:
            return
        with contextlib.suppress(OSError):  # it closes the descriptor even when it raises
            file.close()


def read_events(folder: Path) -> Iterator[dict[str, Any]]:
    """The events of one job, oldest first; unreadable lines are skipped with a warning."""
    path = folder / EVENTS_FILE
    if path.exists() and not path.is_file():  # /dev/full, a FIFO: reading would never end
        log.warning("%s is not a regular file; its events are skipped", path)
        return
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

"""The jobs as the dashboard shows them, read from their event logs on disk.

A :class:`History` reads ``<log_dir>/<job-id>/events.jsonl`` of every job incrementally (only the
bytes appended since the last look) and folds the events into a :class:`JobView` per job. Live and
finished jobs read alike. A corrupt or truncated log is shown as far as it is readable, with a
warning per unreadable line, never an exception.

Example
-------
>>> import tempfile
>>> from twister2.master.events import EventLog
>>> folder = Path(tempfile.mkdtemp())
>>> log = EventLog(folder / "demo-1")
>>> log.append("job", state="STARTING", name="demo", cluster="local", workers=1)
>>> log.append("worker", worker_id=0, state="RUNNING", host="h", pid=1)
>>> log.append("worker", worker_id=0, state="COMPLETED")
>>> log.append("job", state="COMPLETED"); log.close()
>>> history = History(folder)
>>> [(j["job_id"], j["state"]) for j in history.jobs()]
[('demo-1', 'COMPLETED')]
>>> [(w["id"], w["state"]) for w in history.job("demo-1")["workers"]]
[(0, 'COMPLETED')]
>>> history.job("nope") is None
True
"""

from __future__ import annotations

import collections
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from twister2.dashboard.graph import Dataflow
from twister2.master.events import EVENTS_FILE, MASTER_FILE

__all__ = ["FINISHED", "History", "JobLog", "JobView", "valid_job_id"]

LOG_LINES_KEPT = 1000
"""Log lines kept per worker (the newest)."""
METRICS_KEPT = 1000
"""Points of each worker's memory and CPU series kept (older ones are thinned out)."""
NOT_RESPONDING_AFTER = 5.0
"""A running worker whose last heartbeat the master saw this many seconds ago is not responding."""
FINISHED = ("COMPLETED", "FAILED", "KILLED")

_JOB_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def valid_job_id(text: str) -> bool:
    """Whether ``text`` can name a job folder (no separators, no ``..``).

    >>> valid_job_id("hello-20261124-223000-1a2b"), valid_job_id(".."), valid_job_id("a/b")
    (True, False, False)
    """
    return bool(_JOB_ID.fullmatch(text)) and len(text) <= 255


def _no_nan(name: str) -> Any:
    msg = f"{name} is not a number JSON allows"
    raise ValueError(msg)


def _pid_alive(pid: int | None) -> bool:
    return pid is not None and psutil.pid_exists(pid)


@dataclass
class _Worker:
    id: int
    host: str = ""
    pid: int | None = None
    state: str = "STARTING"
    joined: float | None = None
    last_heartbeat: float | None = None
    heartbeat_age: float = 0.0
    metrics: list[tuple[float, int, float]] = field(default_factory=list)
    logs: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=LOG_LINES_KEPT)
    )
    log_lines: int = 0
    logs_dropped: int = 0

    def add_metrics(self, at: float, rss: int, cpu: float) -> None:
        self.metrics.append((at, rss, cpu))
        if len(self.metrics) > METRICS_KEPT:  # keep the shape, halve the points, newest kept
            self.metrics = self.metrics[-1::-2][::-1]

    def to_dict(self, job_state: str) -> dict[str, Any]:
        state = self.state
        if state == "RUNNING" and job_state in FINISHED:
            state = "KILLED"  # stopped when the job ended
        elif state == "RUNNING" and job_state == "LOST":
            state = "LOST"
        elif state == "STARTING" and job_state in (*FINISHED, "LOST"):
            state = "NOT_JOINED"
        elif state == "RUNNING" and self.heartbeat_age > NOT_RESPONDING_AFTER:
            state = "NOT_RESPONDING"
        last = self.metrics[-1] if self.metrics else None
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "state": state,
            "joined": self.joined,
            "last_heartbeat": self.last_heartbeat,
            "rss": last[1] if last else None,
            "cpu": last[2] if last else None,
            "metrics": [{"time": t, "rss": r, "cpu": c} for t, r, c in self.metrics],
            "log_lines": self.log_lines,
            "logs_dropped": self.logs_dropped,
            "logs": list(self.logs),
        }


class JobView:
    """One job, folded from its events (:meth:`apply` them oldest first)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.name = ""
        self.cluster = ""
        self.workers = 0
        self.state = "UNKNOWN"
        self.start: float | None = None
        self.end: float | None = None
        self.error = ""
        self.master_pid: int | None = None
        self.resources: dict[str, Any] = {}
        self.failure: dict[str, Any] | None = None
        self.members: dict[int, _Worker] = {}
        self.stages: dict[str, dict[int, tuple[int, int]]] = {}
        self.dataflow = Dataflow()
        self.warnings: list[str] = []
        self.events = 0
        self.last_time: float | None = None

    def warn(self, message: str) -> None:
        if len(self.warnings) < 100:
            self.warnings.append(message)
        elif len(self.warnings) == 100:
            self.warnings.append("more problems in the event log were not listed")

    def apply(self, event: Mapping[str, Any], line: int = 0) -> None:
        """Fold one event in; a malformed one becomes a warning, never an exception."""
        kind = event.get("type")
        handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return  # an event this dashboard does not know (newer writers): ignored
        try:
            handler(self, event)
            self.events += 1
            at = event.get("time")
            if isinstance(at, int | float):
                self.last_time = max(float(at), self.last_time or 0.0)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self.warn(f"line {line}: malformed {kind!r} event skipped ({exc})")

    def _worker(self, event: Mapping[str, Any]) -> _Worker:
        wid = event["worker_id"]
        if isinstance(wid, bool) or not isinstance(wid, int) or wid < 0:
            msg = f"worker_id must be an int >= 0, got {wid!r}"
            raise ValueError(msg)
        member = self.members.get(wid)
        if member is None:
            member = self.members[wid] = _Worker(wid)
        return member

    def _on_job(self, event: Mapping[str, Any]) -> None:
        state = str(event["state"])
        at = float(event.get("time", 0.0))
        if state == "STARTING" and self.start is None:
            self.start = at
            self.name = str(event.get("name", ""))
            self.cluster = str(event.get("cluster", ""))
            self.workers = int(event.get("workers", 0))
            pid = event.get("master_pid")
            self.master_pid = pid if isinstance(pid, int) else None
            resources = event.get("resources")
            self.resources = dict(resources) if isinstance(resources, dict) else {}
        self.state = state
        if state in FINISHED:
            self.end = at
            self.error = str(event.get("reason", "") or "")

    def _on_worker(self, event: Mapping[str, Any]) -> None:
        member = self._worker(event)
        member.state = str(event["state"])
        if "host" in event:
            member.host = str(event["host"])
        if isinstance(event.get("pid"), int):
            member.pid = event["pid"]
        if member.joined is None:
            member.joined = float(event.get("time", 0.0))
            member.last_heartbeat = member.joined

    def _on_failure(self, event: Mapping[str, Any]) -> None:
        keys = ("message", "worker_id", "host", "exc_type", "traceback", "task")
        self.failure = {k: event.get(k) for k in keys}

    def _on_metrics(self, event: Mapping[str, Any]) -> None:
        member = self._worker(event)
        at = float(event["time"])
        age = float(event.get("heartbeat_age", 0.0))
        member.add_metrics(at, int(event["rss"]), float(event["cpu"]))
        member.heartbeat_age = age
        member.last_heartbeat = at - age

    def _on_log(self, event: Mapping[str, Any]) -> None:
        member = self._worker(event)
        lines = event.get("lines", [])
        if not isinstance(lines, list):
            msg = f"'lines' must be a list, got {type(lines).__name__}"
            raise ValueError(msg)
        for line in lines:
            if isinstance(line, dict):
                member.logs.append(
                    {
                        "time": line.get("time"),
                        "level": str(line.get("level", "")),
                        "logger": str(line.get("logger", "")),
                        "message": str(line.get("message", "")),
                    }
                )
                member.log_lines += 1
        member.logs_dropped += int(event.get("dropped", 0) or 0)

    def _on_stage(self, event: Mapping[str, Any]) -> None:
        wid = self._worker(event).id
        name = str(event["stage"])
        done, total = int(event.get("done", 0)), int(event.get("total", 0))
        if done < 0 or total < 0:
            msg = f"done and total must be >= 0, got {done} and {total}"
            raise ValueError(msg)
        self.stages.setdefault(name, {})[wid] = (done, total)

    def _on_operation(self, event: Mapping[str, Any]) -> None:
        wid = event.get("worker_id")
        self.dataflow.add_operation(event, wid if isinstance(wid, int) else None)

    def _on_graph(self, event: Mapping[str, Any]) -> None:
        self.dataflow.add_graph(event)

    _HANDLERS: Mapping[str, Any] = {
        "job": _on_job,
        "worker": _on_worker,
        "failure": _on_failure,
        "metrics": _on_metrics,
        "log": _on_log,
        "stage": _on_stage,
        "operation": _on_operation,
        "graph": _on_graph,
    }

    # -- what the API returns ------------------------------------------------------------------
    @property
    def live_state(self) -> str:
        """The recorded state, or ``LOST`` for a job whose master ended without recording its
        end."""
        if self.state in ("STARTING", "RUNNING") and not _pid_alive(self.master_pid):
            return "LOST"
        return self.state

    def stage_progress(self) -> list[dict[str, Any]]:
        """Each stage's progress summed over the workers that reported it."""
        return [
            {
                "stage": name,
                "done": sum(d for d, _ in by_worker.values()),
                "total": sum(t for _, t in by_worker.values()),
                "workers": len(by_worker),
            }
            for name, by_worker in self.stages.items()
        ]

    def summary(self, now: float) -> dict[str, Any]:
        state = self.live_state
        counts: dict[str, int] = {}
        for member in self.members.values():
            counts[member.state] = counts.get(member.state, 0) + 1
        end = self.end if state != "LOST" else self.last_time
        duration = None if self.start is None else (end or now) - self.start
        error = self.error
        if state == "LOST":
            error = "the job master ended without recording the job's end"
        return {
            "job_id": self.job_id,
            "name": self.name,
            "state": state,
            "cluster": self.cluster,
            "workers": self.workers,
            "start": self.start,
            "end": self.end,
            "duration": duration,
            "error": error,
            "worker_states": counts,
            "warnings": len(self.warnings),
        }

    def detail(self, now: float, straggler_factor: float) -> dict[str, Any]:
        state = self.live_state
        ids = set(self.members) | set(range(self.workers))
        workers = [self.members.get(i, _Worker(i)).to_dict(state) for i in sorted(ids)]
        flow = self.dataflow.to_dict(straggler_factor)
        return {
            "now": now,
            "job": self.summary(now),
            "resources": self.resources,
            "failure": self.failure,
            "workers": workers,
            "stages": self.stage_progress(),
            "graph": {"source": flow["source"], "nodes": flow["nodes"], "edges": flow["edges"]},
            "operations": flow["edges"],
            "tasks": flow["tasks"],
            "stragglers": flow["stragglers"],
            "largest_partitions": flow["largest_partitions"],
            "straggler_factor": straggler_factor,
            "warnings": list(self.warnings),
            "kill": {"running": state in ("STARTING", "RUNNING"), "token_command": ""},
        }


class JobLog:
    """One job's events.jsonl, read incrementally into its :class:`JobView`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._inode: int | None = None
        self._reset()

    def _reset(self) -> None:
        self.view = JobView(self.folder.name)
        self._offset = 0
        self._lines = 0
        self._tail = b""

    def refresh(self) -> None:
        path = self.folder / EVENTS_FILE
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self._inode or st.st_size < self._offset:  # replaced or cut
                    self._reset()
                    self._inode = st.st_ino
                if st.st_size == self._offset:
                    return
                f.seek(self._offset)
                data = f.read(st.st_size - self._offset)
        except OSError as exc:
            self.view.warn(f"cannot read {path}: {exc}")
            return
        end = data.rfind(b"\n") + 1
        self._tail = data[end:]
        self._offset += end
        for raw in data[:end].split(b"\n")[:-1]:
            self._lines += 1
            if not raw.strip():
                continue
            try:
                event = json.loads(raw.decode("utf-8", errors="replace"), parse_constant=_no_nan)
            except ValueError:
                self.view.warn(f"line {self._lines} is not valid JSON (corrupt?); skipped")
                continue
            if not isinstance(event, dict):
                self.view.warn(f"line {self._lines} is not an event object; skipped")
                continue
            self.view.apply(event, self._lines)

    def warnings(self) -> list[str]:
        found = list(self.view.warnings)
        if self._tail.strip() and self.view.live_state not in ("STARTING", "RUNNING"):
            found.append(
                f"line {self._lines + 1} is incomplete (the log was cut mid-write); skipped"
            )
        return found


class History:
    """Every job under ``log_dir``, read from disk when asked (safe to share between threads).

    Parameters
    ----------
    log_dir
        The folder holding one folder per job (the config's ``job.log_dir``).
    straggler_factor
        A task instance busy longer than this times its task's median is a straggler.
    """

    def __init__(self, log_dir: Path, *, straggler_factor: float = 1.5) -> None:
        self.log_dir = log_dir
        self.straggler_factor = straggler_factor
        self._logs: dict[str, JobLog] = {}
        self._lock = threading.Lock()

    def _load(self, job_id: str) -> JobLog | None:
        folder = self.log_dir / job_id
        if not (folder / EVENTS_FILE).is_file():
            self._logs.pop(job_id, None)
            return None
        log = self._logs.get(job_id)
        if log is None:
            log = self._logs[job_id] = JobLog(folder)
        log.refresh()
        return log

    def jobs(self, states: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Every job's summary, newest first; only those in ``states`` if any are given.

        Returns
        -------
        list of dict
            ``job_id``, ``name``, ``state``, ``cluster``, ``workers``, ``start``, ``end``,
            ``duration``, ``error``, ``worker_states`` and ``warnings`` (docs/dashboard.md).
        """
        wanted = {s.upper() for s in states}
        try:
            names = [p.name for p in self.log_dir.iterdir() if valid_job_id(p.name)]
        except OSError:
            names = []
        now = time.time()
        found = []
        with self._lock:
            for gone in set(self._logs) - set(names):
                del self._logs[gone]
            for name in names:
                log = self._load(name)
                if log is not None:
                    summary = log.view.summary(now)
                    summary["warnings"] = len(log.warnings())
                    found.append(summary)
        found.sort(key=lambda s: (s["start"] or 0.0, s["job_id"]), reverse=True)
        return [s for s in found if not wanted or s["state"] in wanted]

    def job(self, job_id: str) -> dict[str, Any] | None:
        """One job's detail (docs/dashboard.md describes it), or None when there is no such
        job (or ``job_id`` cannot name one)."""
        if not valid_job_id(job_id):
            return None
        with self._lock:
            log = self._load(job_id)
            if log is None:
                return None
            detail = log.view.detail(time.time(), self.straggler_factor)
            detail["warnings"] = log.warnings()
        running = detail["kill"]["running"] and (self.log_dir / job_id / MASTER_FILE).exists()
        detail["kill"] = {"running": running, "token_command": f"twister2 token {job_id}"}
        return detail

"""Terminal progress of the jobs that ``twister2 submit`` runs, read from their event logs.

:class:`SubmitProgress` watches the log dir for the jobs whose job master is this process, and for
each one prints the dashboard's URL (when a dashboard serves that log dir) and, with ``bars``,
shows a bar of the workers that completed (and how many joined) and one bar per ``stage`` that
the workers report (``env.master.event("stage", stage="map", done=3, total=10)``).

Example
-------
>>> import tempfile
>>> with SubmitProgress(Path(tempfile.mkdtemp()), bars=False):
...     pass
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from twister2.dashboard.history import FINISHED, JobLog, JobView
from twister2.dashboard.server import find_dashboard
from twister2.master.events import EVENTS_FILE

__all__ = ["SubmitProgress"]


class _Bars:
    """The bars of one job: workers, then one per stage in the order they appear."""

    def __init__(self, stream: TextIO, workers: int) -> None:
        console = Console(file=stream, soft_wrap=False)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
        )
        self.workers = self.progress.add_task("workers done", total=workers or None, note="")
        self.stages: dict[str, TaskID] = {}
        self.progress.start()

    def update(self, view: JobView) -> None:
        joined = sum(1 for m in view.members.values() if m.joined is not None)
        done = sum(1 for m in view.members.values() if m.state == "COMPLETED")
        failed = sum(1 for m in view.members.values() if m.state == "FAILED")
        note = f"{joined}/{view.workers} joined" + (f", {failed} failed" if failed else "")
        self.progress.update(self.workers, total=view.workers, completed=done, note=note)
        for stage in view.stage_progress():
            name = str(stage["stage"])
            task = self.stages.get(name)
            if task is None:
                task = self.stages[name] = self.progress.add_task(
                    f"stage {name}", total=None, note=""
                )
            total = int(stage["total"]) or None
            note = f"{stage['workers']} workers"
            self.progress.update(task, total=total, completed=int(stage["done"]), note=note)
        self.progress.refresh()

    def close(self) -> None:
        self.progress.stop()


class SubmitProgress:
    """Follows the jobs of process ``pid`` (default: this one) under ``log_dir``.

    ``start()`` watches from a background thread; ``stop()`` shows the last state and ends it.
    Also a context manager.

    Parameters
    ----------
    log_dir
        Where the jobs' event logs go (the config's ``job.log_dir``).
    bars
        Draw progress bars (else only print the dashboard's URL, when one runs).
    stream
        Where to write (default: stderr).
    pid
        Whose jobs to follow: the process that runs their job master (default: this one).
    interval
        Seconds between two looks at the event log.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        bars: bool,
        stream: TextIO | None = None,
        pid: int | None = None,
        interval: float = 0.2,
    ) -> None:
        self.log_dir = log_dir
        self.bars = bars
        self.stream = stream if stream is not None else sys.stderr
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval
        self._seen = self._folders()
        self._job: JobLog | None = None
        self._bars: _Bars | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _folders(self) -> set[str]:
        try:
            return {p.name for p in self.log_dir.iterdir()}
        except OSError:
            return set()

    def start(self) -> SubmitProgress:
        self._thread = threading.Thread(target=self._run, name="twister2-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        self.poll()  # the last events
        self._finish()

    def __enter__(self) -> SubmitProgress:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """Look for a new job of ours, and show the progress of the one followed."""
        if self._job is None:
            self._job = self._find_job()
            if self._job is None:
                return
            self._announce(self._job)
        self._job.refresh()
        view = self._job.view
        if self._bars is not None:
            self._bars.update(view)
        if view.state in FINISHED:
            self._finish()

    def _find_job(self) -> JobLog | None:
        for name in sorted(self._folders() - self._seen):
            folder = self.log_dir / name
            if not (folder / EVENTS_FILE).is_file():
                continue
            log = JobLog(folder)
            log.refresh()
            if log.view.start is None:
                continue  # its first event is not written yet: look again next time
            self._seen.add(name)
            if log.view.master_pid == self.pid:
                return log
        return None

    def _announce(self, log: JobLog) -> None:
        dashboard = find_dashboard(self.log_dir)
        if dashboard is not None:
            self._write(f"twister2: dashboard: {dashboard['url']}/jobs/{log.view.job_id}\n")
        if self.bars:
            self._bars = _Bars(self.stream, log.view.workers)

    def _finish(self) -> None:
        if self._bars is not None:
            with contextlib.suppress(Exception):
                if self._job is not None:
                    self._bars.update(self._job.view)
            self._bars.close()
            self._bars = None
        self._job = None

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)
            self.stream.flush()

    @staticmethod
    def wanted(flag: bool | None, stream: Any) -> bool:
        """Whether to draw bars: as asked, else only when ``stream`` is a terminal.

        >>> import io
        >>> SubmitProgress.wanted(None, io.StringIO()), SubmitProgress.wanted(True, io.StringIO())
        (False, True)
        """
        if flag is not None:
            return flag
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty())

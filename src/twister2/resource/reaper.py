"""The reaper: a small process that ends a job's processes if its submitting process dies.

A submitter killed with SIGKILL (or losing its terminal) runs no cleanup. So each job started on
this host gets a reaper, in a session of its own, that reads from a pipe what the submitter
tells it: the job's scratch and log folders, then the session of every process it launched
(each local worker and ``mpiexec`` lead a session; what they start stays in it). When the pipe
ends without the word ``done`` (the submitter died), the reaper SIGKILLs every process of those
sessions (a stopped one too), removes the scratch folder and ``master.json``, and records the job
as KILLED in its event log. On a normal end the submitter says ``done`` and the reaper just exits.

It runs as a plain script (``python reaper.py``: the standard library and psutil only), so it
starts fast and imports none of the job's code.

Example
-------
>>> reaper = Reaper.start(scratch=Path("/nonexistent"), log_folder=Path("/nonexistent"))
>>> reaper.watch([]); reaper.done()
>>> reaper.proc.returncode
0
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import psutil

__all__ = ["Reaper"]

_KILL_FOR = 10.0
"""Seconds the reaper keeps killing (processes may fork while it works)."""


class Reaper:
    """The submitter's side: start the reaper, tell it what to watch, say ``done`` at the end."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @classmethod
    def start(cls, scratch: Path, log_folder: Path) -> Reaper:
        """Start a reaper for the job whose folders these are."""
        proc = subprocess.Popen(
            [sys.executable, __file__, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        reaper = cls(proc)
        reaper._send({"scratch": str(scratch), "log_folder": str(log_folder)})
        return reaper

    def _send(self, message: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.closed:
            return
        with contextlib.suppress(OSError):
            stdin.write(json.dumps(message).encode() + b"\n")
            stdin.flush()

    def watch(self, sessions: Iterable[int]) -> None:
        """Kill every process of these sessions if the submitter dies."""
        for sid in sessions:
            self._send({"session": sid})

    def done(self) -> None:
        """The job ended and was cleaned up: the reaper exits without touching anything."""
        self._send({"done": True})
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _in_sessions(sessions: set[int]) -> list[psutil.Process]:
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        try:
            if proc.pid != me and os.getsid(proc.pid) in sessions:
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


def _kill_sessions(sessions: set[int]) -> None:
    deadline = time.monotonic() + _KILL_FOR
    while time.monotonic() < deadline:
        procs = [p for p in _in_sessions(sessions) if p.status() != psutil.STATUS_ZOMBIE]
        if not procs:
            return
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()  # SIGKILL ends a stopped process too
        time.sleep(0.1)


def _record_end(log_folder: Path, submitter: int) -> None:
    with contextlib.suppress(OSError):
        (log_folder / "master.json").unlink()
    event = {
        "time": time.time(),
        "type": "job",
        "state": "KILLED",
        "reason": f"the submitting process (pid {submitter}) died; its reaper ended the job",
    }
    with contextlib.suppress(OSError):
        if log_folder.is_dir():
            with open(log_folder / "events.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(event, separators=(",", ":")) + "\n")


def _serve(stdin: IO[bytes], submitter: int) -> int:
    sessions: set[int] = set()
    folders: dict[str, str] = {}
    finished = False
    for raw in stdin:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if message.get("done"):
            finished = True
        if "session" in message:
            sessions.add(int(message["session"]))
        folders.update({k: v for k, v in message.items() if k in ("scratch", "log_folder")})
    if finished:
        return 0
    _kill_sessions(sessions)
    if "scratch" in folders:
        shutil.rmtree(folders["scratch"], ignore_errors=True)
    if "log_folder" in folders:
        _record_end(Path(folders["log_folder"]), submitter)
    return 0


if __name__ == "__main__":
    for _sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(_sig, signal.SIG_IGN)  # it ends when its pipe does, never before
    sys.exit(_serve(sys.stdin.buffer, int(sys.argv[1])))

"""The job master's server: one per job, in the submitting process for local and mpi jobs.

Workers hold two authenticated connections to it: one for requests (register, list workers,
barriers, their end) and one that carries heartbeats. A request that waits (the worker list before
everyone joined, a barrier) blocks only its own connection's thread, always with a deadline.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twister2 import wire
from twister2.errors import JobStartError
from twister2.job import JobState
from twister2.master.events import MASTER_FILE, EventLog
from twister2.master.record import Failure, JobRecord, RegistrationError

__all__ = ["JobMaster"]

log = logging.getLogger(__name__)

_TICK = 0.25
_LOG_BATCH = 1000  # most log frames of one worker written as one event


def _listen(interface: str, port: int) -> socket.socket:
    """The job master's listening socket, or a :class:`JobStartError` that says what to change."""
    try:
        return socket.create_server((interface, port))
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno == errno.EADDRINUSE:
            fix = "set master.port to a free port, or to 0 for any free one"
        elif exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(
            exc, socket.gaierror
        ):
            fix = f"master.interface {interface!r} is not an address of this host; set it to one"
        else:
            fix = "check master.interface and master.port"
        msg = f"the job master cannot listen on {interface}:{port}: {reason}; {fix}"
        raise JobStartError(msg) from exc


class JobMaster:
    """Registration, discovery, barriers, heartbeats and the event log of one job.

    ``spec`` is what every worker receives when it registers (config, entry, args...);
    ``entry_value`` the pickled entry function of a by-value entry (``{"op": "entry"}``).
    """

    def __init__(
        self,
        job_id: str,
        workers: int,
        secret: bytes,
        spec: dict[str, Any],
        log_folder: Path,
        *,
        interface: str = "127.0.0.1",
        port: int = 0,
        failure_timeout: float = 10.0,
        join_timeout: float = 60.0,
        metrics_interval: float | None = None,
        entry_value: bytes = b"",
    ) -> None:
        self.job_id = job_id
        self.secret = secret
        self.spec = spec
        self.entry_value = entry_value
        self.join_timeout = join_timeout
        if metrics_interval is None:  # the job's own config, else the schema's default
            metrics_interval = float(spec.get("config", {}).get("dashboard.metrics_interval", 5.0))
        self.metrics_interval = metrics_interval
        self.record = JobRecord(job_id, workers, failure_timeout)
        self._listener = _listen(interface, port)  # first: a port in use leaves no job folder
        self.address = self._listener.getsockname()[:2]
        self.events = EventLog(log_folder)
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._stopping = False
        self._started = time.monotonic()
        self._write_master_file(log_folder)
        self._flush_events()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._spawn(self._accept_loop, "twister2-master-accept")

    def stop(self) -> None:
        """Close every connection and join every thread the master started."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5.0)
        for conn in list(self._conns):
            conn.close()
        self._flush_events()
        self.events.close()
        with contextlib.suppress(FileNotFoundError):
            (self.events.folder / MASTER_FILE).unlink()

    def _write_master_file(self, folder: Path) -> None:
        path = folder / MASTER_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "host": self.address[0],
                    "port": self.address[1],
                    "pid": os.getpid(),
                    "secret": self.secret.hex(),
                },
                f,
            )

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    # -- what the client's wait loop calls ------------------------------------------------
    def tick(self) -> None:
        """Apply the clock: join deadline, heartbeat timeouts, lost connections, and the
        periodic per-worker ``metrics`` events (``dashboard.metrics_interval``)."""
        with self._cond:
            now = time.monotonic()
            record = self.record
            if (
                record.state is JobState.STARTING
                and now - self._started > self.join_timeout
                and not record.state.finished
            ):
                missing = record.missing()
                msg = (
                    f"workers {missing} did not register with the job master within "
                    f"{self.join_timeout:g} s (master.join_timeout)"
                )
                record.fail(Failure(msg))
            record.check(now)
            record.sample_metrics(now, self.metrics_interval)
            self._changed()

    def process_exited(self, wid: int, returncode: int, host: str = "") -> None:
        with self._cond:
            self.record.process_exited(wid, returncode, host)
            self._changed()

    def fail(self, message: str) -> None:
        with self._cond:
            self.record.fail(Failure(message))
            self._changed()

    def kill(self, reason: str) -> None:
        with self._cond:
            self.record.kill(reason)
            self._changed()

    def log_event(self, kind: str, **fields: Any) -> None:
        with self._cond:
            self.record.events.append((kind, fields))
            self._changed()

    @property
    def state(self) -> JobState:
        return self.record.state

    def wait_change(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait(timeout)

    def _changed(self) -> None:
        self._flush_events()
        self._cond.notify_all()

    def _flush_events(self) -> None:
        events, self.record.events = self.record.events, []
        for kind, fields in events:
            self.events.append(kind, **fields)

    # -- connections ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while True:
            try:
                conn, peer = self._listener.accept()
            except OSError:
                return
            with self._cond:
                if self._stopping:
                    conn.close()
                    return
                self._conns.add(conn)
            self._spawn(self._serve, "twister2-master-conn", conn, peer)

    def _serve(self, conn: socket.socket, peer: Any) -> None:
        wid: int | None = None
        reported = False
        heartbeats = False
        try:
            try:
                wire.server_handshake(conn, self.secret)
            except wire.AuthenticationError as exc:
                log.warning("job master %s: refused connection from %s: %s", self.job_id, peer, exc)
                return
            while True:
                header, blob = wire.recv_frame(conn)
                op = header.get("op")
                if op == "heartbeats":
                    heartbeats = True  # the request connection reports losses, not this one
                    self._heartbeats(conn, int(header["worker_id"]))
                    return
                if op == "spec":
                    wire.send_frame(conn, {"ok": True, "spec": self.spec})
                    continue
                if op == "logs":
                    self._log_stream(conn, int(header["worker_id"]))
                    return
                if op == "entry":
                    wire.send_frame(conn, {"ok": True}, self.entry_value)
                    continue
                reply, wid, ended = self._handle(header, blob, wid)
                reported = reported or ended
                wire.send_frame(conn, reply)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if wid is not None and not reported and not heartbeats:
                log.debug("job master: connection of worker %s ended: %s", wid, exc)
                with self._cond:
                    self.record.connection_lost(wid, time.monotonic())
                    self._changed()
        finally:
            with self._cond:
                self._conns.discard(conn)
            conn.close()

    def _heartbeats(self, conn: socket.socket, wid: int) -> None:
        while True:
            header, _ = wire.recv_frame(conn)
            with self._cond:
                self.record.heartbeat(
                    wid, time.monotonic(), int(header.get("rss", 0)), float(header.get("cpu", 0.0))
                )

    def _log_stream(self, conn: socket.socket, wid: int) -> None:
        """A worker's log lines, one frame per line as it logs them: the frames that have
        arrived together become one ``log`` event; a frame with ``sync`` is answered once
        everything before it is in the event log."""
        while True:
            frames = [wire.recv_frame(conn)[0]]
            try:
                while (
                    not frames[-1].get("sync")
                    and len(frames) < _LOG_BATCH
                    and select.select([conn], [], [], 0)[0]
                ):
                    frames.append(wire.recv_frame(conn)[0])
            finally:  # a worker that died mid-batch: what did arrive is still written
                lines = [line for f in frames for line in f.get("lines", ())]
                dropped = sum(int(f.get("dropped", 0)) for f in frames)
                if lines or dropped:
                    self.log_event("log", worker_id=wid, lines=lines, dropped=dropped)
            if frames[-1].get("sync"):
                wire.send_frame(conn, {"ok": True})

    def _handle(
        self, header: dict[str, Any], blob: bytes, wid: int | None
    ) -> tuple[dict[str, Any], int | None, bool]:
        op = header.get("op")
        if op == "register":
            reply, new_id = self._register(header)
            return reply, new_id, False
        if op == "kill":
            self.kill(str(header.get("reason") or "killed by request"))
            return {"ok": True}, wid, False
        if op == "status":
            with self._cond:
                return (
                    {
                        "ok": True,
                        "state": self.record.state.value,
                        "workers": self.record.worker_list(),
                    },
                    wid,
                    False,
                )
        if wid is None:
            return {"ok": False, "error": f"register before {op!r}"}, wid, False
        if op == "workers":
            return self._wait_workers(float(header.get("timeout", self.join_timeout))), wid, False
        if op == "barrier":
            return self._barrier(wid, str(header["name"]), float(header["timeout"])), wid, False
        if op == "event":
            fields = header.get("fields", {})
            kind = str(header.get("kind", "event"))
            if kind in ("job", "worker", "failure") or not isinstance(fields, dict):
                return {"ok": False, "error": f"workers cannot log {kind!r} events"}, wid, False
            self.log_event(kind, worker_id=wid, **fields)
            return {"ok": True}, wid, False
        if op == "done":
            with self._cond:
                self.record.complete(wid, blob or None)
                self._changed()
            return {"ok": True}, wid, True
        if op == "failed":
            error = header.get("error", {})
            with self._cond:
                member = self.record.members.get(wid)
                failure = Failure(
                    message=f"worker {wid} raised {error.get('type', 'an exception')}: "
                    f"{error.get('message', '')}",
                    worker_id=wid,
                    host=member.host if member else "",
                    exc_type=str(error.get("type", "")),
                    traceback=str(error.get("traceback", "")),
                    task=str(error.get("task", "")),
                )
                self.record.worker_failed(wid, failure, time.monotonic())
                self._changed()
            return {"ok": True}, wid, True
        return {"ok": False, "error": f"unknown request {op!r}"}, wid, False

    def _register(self, header: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        requested = header.get("requested_id")
        with self._cond:
            try:
                wid = self.record.register(
                    None if requested is None else int(requested),
                    str(header.get("host", "")),
                    int(header.get("pid", 0)),
                    str(header.get("address", "")),
                    time.monotonic(),
                )
            except RegistrationError as exc:
                return {"ok": False, "error": str(exc)}, None
            self._changed()
        return {"ok": True, "worker_id": wid, "spec": self.spec}, wid

    def _wait_workers(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.record.all_joined:
                if self.record.state.finished or self._stopping:
                    return {"ok": False, "error": f"job {self.job_id} is {self.record.state.value}"}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = self.record.missing()
                    return {
                        "ok": False,
                        "error": f"workers {missing} did not join within {timeout:g} s",
                    }
                self._cond.wait(min(remaining, _TICK))
            return {"ok": True, "workers": self.record.worker_list()}

    def _barrier(self, wid: int, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            generation = self.record.arrive(name, wid)
            self._cond.notify_all()
            while not self.record.barrier_done(name, generation):
                blocker = self.record.barrier_blocker(name, generation)
                if blocker is None and self._stopping:
                    blocker = "the job master is stopping"
                if blocker is not None:
                    return {"ok": False, "error": f"barrier {name!r} cannot complete: {blocker}"}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = self.record.barrier_missing(name)
                    return {
                        "ok": False,
                        "error": f"barrier {name!r} timed out after {timeout:g} s: "
                        f"workers {missing} did not arrive",
                        "timeout": True,
                    }
                self._cond.wait(min(remaining, _TICK))
            return {"ok": True}

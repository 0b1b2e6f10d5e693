"""The worker's side of the job master protocol.

A worker registers, waits for the full worker list, meets the others at barriers and reports its
end. A background thread sends heartbeats (with the worker's memory and CPU use) on a second
connection; if the job master becomes unreachable, the worker ends itself rather than live on as
an orphan.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from typing import Any

import psutil

from twister2 import wire

__all__ = ["BarrierError", "MasterClient", "MasterError", "MasterUnreachable"]

log = logging.getLogger(__name__)


class MasterError(RuntimeError):
    """The job master refused a request or could not be reached."""


class MasterUnreachable(MasterError):
    """The connection to the job master broke (it ended, or the network failed)."""


class BarrierError(MasterError):
    """A barrier could not complete: a deadline passed or a worker will never arrive."""


def parse_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:5000"`` to ``("127.0.0.1", 5000)``.

    >>> parse_address("127.0.0.1:5000")
    ('127.0.0.1', 5000)
    """
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class MasterClient:
    """An authenticated connection from a worker (or the CLI) to a job master."""

    def __init__(self, address: tuple[str, int], secret: bytes, timeout: float = 30.0) -> None:
        self.address = address
        self.secret = secret
        self._sock = wire.connect(address, secret, timeout=timeout)
        self._lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        self.worker_id: int | None = None

    def request(self, header: dict[str, Any], blob: bytes = b"") -> dict[str, Any]:
        return self._exchange(header, blob)[0]

    def _exchange(self, header: dict[str, Any], blob: bytes = b"") -> tuple[dict[str, Any], bytes]:
        with self._lock:
            try:
                wire.send_frame(self._sock, header, blob)
                return wire.recv_frame(self._sock)
            except OSError as exc:
                msg = f"lost the connection to the job master at {self.address}: {exc}"
                raise MasterUnreachable(msg) from exc

    def entry_value(self) -> bytes:
        """The job's entry function, pickled, when it travels by value."""
        return self._exchange({"op": "entry"})[1]

    def _checked(self, header: dict[str, Any], blob: bytes = b"") -> dict[str, Any]:
        reply = self.request(header, blob)
        if not reply.get("ok"):
            cls = BarrierError if header.get("op") == "barrier" else MasterError
            raise cls(str(reply.get("error", "the job master refused the request")))
        return reply

    def register(self, requested_id: int | None, host: str, address: str) -> dict[str, Any]:
        reply = self._checked(
            {
                "op": "register",
                "requested_id": requested_id,
                "host": host,
                "pid": os.getpid(),
                "address": address,
            }
        )
        self.worker_id = int(reply["worker_id"])
        return reply

    def workers(self, timeout: float) -> list[dict[str, Any]]:
        reply = self._checked({"op": "workers", "timeout": timeout})
        return list(reply["workers"])

    def barrier(self, name: str, timeout: float) -> None:
        self._checked({"op": "barrier", "name": name, "timeout": timeout})

    def event(self, kind: str, **fields: Any) -> None:
        """Append an event (JSON-serialisable fields) to the job's event log, tagged with this
        worker's id: what operators, tasks and the dashboard report through."""
        try:
            self._checked({"op": "event", "kind": kind, "fields": fields})
        except wire.MessageTooLargeError as exc:
            msg = (
                f"event {kind!r} is {exc.size / 2**20:.1f} MiB as JSON, over the "
                f"{exc.limit // 2**20} MiB limit of one message to the job master: report a "
                "summary in the event (counts, sizes, a file's path) and send the data itself "
                "through env.comm or write it to a file"
            )
            raise wire.MessageTooLargeError(exc.size, exc.limit, msg) from None

    def done(self, result: Any) -> None:
        try:
            blob = pickle.dumps(result, protocol=5)
        except Exception as exc:
            msg = f"the entry function's return value ({type(result).__qualname__}) "
            msg += f"cannot be pickled: {exc}"
            raise TypeError(msg) from exc
        self._checked({"op": "done"}, blob)

    def failed(self, error: dict[str, str]) -> None:
        self._checked({"op": "failed", "error": error})

    def start_heartbeats(self, interval: float) -> None:
        """Send a heartbeat every ``interval`` seconds; exit the process if the master is gone."""
        sock = wire.connect(self.address, self.secret)
        wire.send_frame(sock, {"op": "heartbeats", "worker_id": self.worker_id})
        proc = psutil.Process()

        def beat() -> None:
            try:
                while not self._stop.wait(interval):
                    with proc.oneshot():
                        rss = proc.memory_info().rss
                        cpu = proc.cpu_percent()
                    wire.send_frame(
                        sock, {"op": "heartbeat", "rss": rss, "cpu": cpu, "time": time.time()}
                    )
            except OSError:
                if not self._stop.is_set():
                    log.error("worker %s: the job master is gone; ending", self.worker_id)
                    os._exit(70)
            finally:
                sock.close()

        self._heartbeat = threading.Thread(target=beat, name="twister2-heartbeat", daemon=True)
        self._heartbeat.start()

    def close(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5.0)
        self._sock.close()

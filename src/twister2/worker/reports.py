"""Operation reports for the dashboard, sent off the operators' path.

An operator's report (docs/dashboard.md's ``operation`` event) is queued in the worker and sent
to the job master by a thread of its own, so that finishing an operation costs no round trip to
the master (that would add a millisecond to every small collective).

Example
-------
>>> sent = []
>>> reports = ReportQueue(lambda kind, **fields: sent.append((kind, fields["name"])))
>>> reports.put({"name": "total", "op": "allreduce"})
>>> reports.close()
>>> sent
[('operation', 'total')]
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ReportQueue"]

log = logging.getLogger(__name__)

_DONE = None


class ReportQueue:
    """Reports in, ``send("operation", **report)`` calls out, in order, from one thread."""

    def __init__(self, send: Callable[..., None], kind: str = "operation") -> None:
        self._send = send
        self._kind = kind
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="twister2-reports", daemon=True)
        self._thread.start()
        self._closed = False

    def put(self, report: dict[str, Any]) -> None:
        """Queue one report (dropped once the queue is closed)."""
        if not self._closed:
            self._queue.put(report)

    def _run(self) -> None:
        failed = False
        while (report := self._queue.get()) is not _DONE:
            if failed:
                continue
            try:
                self._send(self._kind, **report)
            except Exception as exc:  # the dashboard is a view: losing reports costs no result
                log.warning("operation reports to the dashboard stopped: %s", exc)
                failed = True

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (waiting up to ``timeout`` seconds), then stop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_DONE)
        self._thread.join(timeout)

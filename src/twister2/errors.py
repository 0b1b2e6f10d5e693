"""The errors a job can end with, as the submitting process sees them."""

from __future__ import annotations

__all__ = ["JobFailedError", "JobKilledError", "JobStartError"]


class JobStartError(RuntimeError):
    """A job cannot start here (a port in use, a log folder that is a file, an unsafe scratch
    base...); nothing was started. The message says what to change."""


class JobFailedError(RuntimeError):
    """A job failed: which worker, on which host, and the original traceback.

    ``exc_type`` is the name of the original exception's class, and ``remote_traceback`` its
    traceback as the failing worker printed it.
    """

    def __init__(
        self,
        job_id: str,
        message: str,
        *,
        worker_id: int | None = None,
        host: str = "",
        exc_type: str = "",
        remote_traceback: str = "",
        task: str = "",
    ) -> None:
        self.job_id = job_id
        self.worker_id = worker_id
        self.host = host
        self.exc_type = exc_type
        self.remote_traceback = remote_traceback
        self.task = task
        self.reason = message
        text = f"job {job_id} failed: {message}"
        where = []
        if worker_id is not None:
            where.append(f"worker {worker_id}")
        if host:
            where.append(f"host {host}")
        if task:
            where.append(f"task {task}")
        if remote_traceback:
            text += f"\n--- remote traceback ({', '.join(where)}) ---\n{remote_traceback.rstrip()}"
        super().__init__(text)


class JobKilledError(RuntimeError):
    """A job was killed (``twister2 kill``, Ctrl-C, or the dashboard)."""

    def __init__(self, job_id: str, reason: str) -> None:
        self.job_id = job_id
        self.reason = reason
        super().__init__(f"job {job_id} was killed: {reason}")

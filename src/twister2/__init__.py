"""Twister2 for Python: batch, streaming and iterative analytics with HPC-grade communication.

Names are imported on first use, so that a worker process starts without loading what only
the submitting side needs.

>>> import twister2
>>> callable(twister2.run)
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twister2.errors import JobFailedError, JobKilledError
    from twister2.job import Job, JobState, Resources, WorkerState
    from twister2.shipping import EntryNotShippableError
    from twister2.submit import JobResult, run
    from twister2.worker.env import WorkerEnv, WorkerInfo

__all__ = [
    "EntryNotShippableError",
    "Job",
    "JobFailedError",
    "JobKilledError",
    "JobResult",
    "JobState",
    "Resources",
    "WorkerEnv",
    "WorkerInfo",
    "WorkerState",
    "run",
]

__version__ = "0.1.0"

_WHERE = {
    "Job": "twister2.job",
    "JobState": "twister2.job",
    "Resources": "twister2.job",
    "WorkerState": "twister2.job",
    "JobFailedError": "twister2.errors",
    "JobKilledError": "twister2.errors",
    "EntryNotShippableError": "twister2.shipping",
    "JobResult": "twister2.submit",
    "run": "twister2.submit",
    "WorkerEnv": "twister2.worker.env",
    "WorkerInfo": "twister2.worker.env",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        msg = f"module 'twister2' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

"""Twister2 for Python: batch, streaming and iterative analytics with HPC-grade communication.

>>> import twister2
>>> callable(twister2.run)
True
"""

from twister2.errors import JobFailedError, JobKilledError
from twister2.job import Job, JobState, Resources, WorkerState
from twister2.submit import JobResult, run
from twister2.worker.env import WorkerEnv, WorkerInfo

__all__ = [
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

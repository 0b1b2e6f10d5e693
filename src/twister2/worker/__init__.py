"""Worker processes: the environment a job's entry function receives, and the bootstrap."""

from twister2.worker.env import WorkerEnv, WorkerInfo

__all__ = ["WorkerEnv", "WorkerInfo"]

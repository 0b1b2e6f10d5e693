"""The job description: a name, an entry function, workers, resources per worker and config.

Example
-------
>>> def main(env):
...     return env.worker_id
>>> job = Job.create(main, workers=2, name="demo")
>>> job.workers, job.resources.memory_mb
(2, 512)
>>> job.entry.function
'main'
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["Entry", "Job", "JobState", "Resources", "WorkerState", "new_job_id"]


class JobState(StrEnum):
    """The life of a job, as the job master records it."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def finished(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.KILLED)


class WorkerState(StrEnum):
    """The life of one worker."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    NOT_RESPONDING = "NOT_RESPONDING"


@dataclass(frozen=True)
class Resources:
    """What one worker needs: cpu cores, memory in MB and disk in GB."""

    cpu: float = 1.0
    memory_mb: int = 512
    disk_gb: float = 1.0

    def __post_init__(self) -> None:
        for name in ("cpu", "memory_mb", "disk_gb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                msg = f"resources.{name} must be a positive number, got {value!r}"
                raise ValueError(msg)


@dataclass(frozen=True)
class Entry:
    """Where workers find the entry function: a script file or an importable module."""

    function: str
    module: str | None = None
    script: str | None = None

    @classmethod
    def of(cls, func: Callable[..., Any]) -> Entry:
        """Locate ``func`` so that another process can load it.

        The function must be defined at the top level of a script file or of an importable
        module (worker processes load it from there; closures cannot travel).
        """
        qualname = getattr(func, "__qualname__", "")
        name = getattr(func, "__name__", repr(func))
        if not callable(func) or "<locals>" in qualname or "<lambda>" in qualname:
            msg = (
                f"the entry function {name!r} must be defined at the top level of a file "
                "(worker processes load it from there); lambdas and nested functions cannot be"
            )
            raise ValueError(msg)
        module = func.__module__
        if module == "__main__":
            main = sys.modules.get("__main__")
            path = getattr(main, "__file__", None)
            if not path:
                msg = (
                    f"the entry function {name!r} is defined in an interactive session; "
                    "put it in a .py file and run that file"
                )
                raise ValueError(msg)
            return cls(function=qualname, script=str(Path(path).resolve()))
        if module == "__twister2_main__":  # a worker of a job submitting another job
            import inspect

            path = inspect.getsourcefile(func)
            return cls(function=qualname, script=str(Path(path or "").resolve()))
        return cls(function=qualname, module=module)

    def to_dict(self) -> dict[str, Any]:
        return {"function": self.function, "module": self.module, "script": self.script}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        return cls(function=data["function"], module=data.get("module"), script=data.get("script"))


_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def new_job_id(name: str) -> str:
    """A unique, sortable, file-name-safe job id such as ``hello-20261124-223000-1a2b``.

    >>> new_job_id("my job").startswith("my-job-")
    True
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime())
    return f"{_NAME.sub('-', name).strip('-') or 'job'}-{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Job:
    """A job: ``workers`` processes all running ``entry`` (SPMD)."""

    name: str
    entry: Entry
    workers: int = 1
    resources: Resources = field(default_factory=Resources)
    config: Mapping[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    sys_path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            msg = f"a job needs at least one worker, got workers={self.workers!r}"
            raise ValueError(msg)

    @classmethod
    def create(
        cls,
        func: Callable[..., Any],
        *,
        workers: int = 1,
        name: str | None = None,
        resources: Resources | None = None,
        config: Mapping[str, Any] | None = None,
        args: tuple[str, ...] | list[str] = (),
    ) -> Job:
        """Describe a job that runs ``func(env)`` on ``workers`` workers."""
        entry = Entry.of(func)
        if name is None:
            name = Path(entry.script).stem if entry.script else entry.function
        paths = tuple(p if p else os.getcwd() for p in sys.path)
        return cls(
            name=name,
            entry=entry,
            workers=workers,
            resources=resources or Resources(),
            config=dict(config or {}),
            args=tuple(args),
            sys_path=paths,
        )

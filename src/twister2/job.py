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

import functools
import os
import re
import secrets
import sys
import time
import types
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
    """Where workers find the entry function: a script file, an importable module, or ``value``.

    A function that workers can import by name (defined at the top level of a module or of a
    script file) goes by reference; anything else (a notebook cell's, ``python -``'s or
    ``python -c``'s function, a lambda, a closure, a ``functools.partial``) goes by value:
    ``value`` holds it pickled (see :mod:`twister2.shipping`), and the job master hands it to
    each worker.

    >>> import functools
    >>> Entry.of(new_job_id).module
    'twister2.job'
    >>> entry = Entry.of(functools.partial(new_job_id, "demo"))
    >>> entry.function, entry.by_value
    ('partial(new_job_id)', True)
    """

    function: str
    module: str | None = None
    script: str | None = None
    value: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def by_value(self) -> bool:
        return self.value is not None

    @classmethod
    def of(cls, func: Callable[..., Any]) -> Entry:
        """Locate ``func`` so that another process can load it: by name where it can import
        it, else by value; raises :class:`twister2.shipping.EntryNotShippableError` when
        ``func`` captures something that cannot be pickled."""
        if not callable(func):
            msg = f"the entry function must be callable, got {type(func).__qualname__}"
            raise TypeError(msg)
        by_name = cls._by_reference(func)
        if by_name is not None:
            return by_name
        from twister2.shipping import dumps_entry

        name = _display_name(func)
        return cls(function=name, value=dumps_entry(func, name))

    @classmethod
    def _by_reference(cls, func: Callable[..., Any]) -> Entry | None:
        """``func``'s script or module where a worker can import it by name, else None."""
        if not isinstance(func, types.FunctionType):
            return None
        qualname = func.__qualname__
        if "<" in qualname:  # a lambda, or defined inside a function
            return None
        module_name = func.__module__
        module = sys.modules.get(module_name)
        if module is None or _resolve(module, qualname) is not func:
            return None  # e.g. a notebook's __main__, or a name bound to something else since
        if module_name == "__main__":
            path = getattr(module, "__file__", None)
            if not path or not Path(path).is_file():  # python -c, python -, a notebook
                return None
            return cls(function=qualname, script=str(Path(path).resolve()))
        if module_name == "__twister2_main__":  # a worker of a job submitting another job
            import inspect

            path = inspect.getsourcefile(func)
            if not path:
                return None
            return cls(function=qualname, script=str(Path(path).resolve()))
        return cls(function=qualname, module=module_name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "module": self.module,
            "script": self.script,
            "by_value": self.by_value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], value: bytes | None = None) -> Entry:
        """The entry of ``to_dict``'s ``data``; ``value`` is the pickled function of a
        by-value entry (it travels apart from the JSON)."""
        return cls(
            function=data["function"],
            module=data.get("module"),
            script=data.get("script"),
            value=value,
        )


def _resolve(module: Any, qualname: str) -> Any:
    target = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    return target


def _display_name(func: Callable[..., Any]) -> str:
    """A short name for the job and its log: ``main``, ``<lambda>``, ``partial(main)``."""
    if isinstance(func, functools.partial):
        return f"partial({_display_name(func.func)})"
    return str(getattr(func, "__qualname__", None) or type(func).__qualname__)


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

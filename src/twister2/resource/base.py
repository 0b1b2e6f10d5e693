"""The launcher interface and its registry by cluster name.

A launcher turns a job into running worker processes and stops them. The job master and the
client's wait loop do the rest, so adding a cluster (Slurm, Kubernetes, ...) means writing one
launcher and registering it.

Example
-------
>>> {"local", "mpi"} <= set(available_launchers())
True
>>> get_launcher("nope", {})
Traceback (most recent call last):
...
ValueError: unknown cluster 'nope' (known: kubernetes, local, mesos, mpi, nomad, slurm)
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from twister2.job import Job

__all__ = [
    "LaunchHandle",
    "Launcher",
    "PlacementError",
    "available_launchers",
    "get_launcher",
    "register_launcher",
    "stop_process_group",
    "worker_command",
]

WHOLE_JOB = -1
"""Worker index in :meth:`LaunchHandle.poll` results meaning "the launch as a whole ended"."""


class PlacementError(ValueError):
    """The launcher cannot place the job's workers (too many, too much memory, ...)."""


class LaunchHandle(abc.ABC):
    """The running workers of one job."""

    @abc.abstractmethod
    def poll(self) -> list[tuple[int, int]]:
        """Processes that ended since the last call: ``(worker index, return code)``."""

    @abc.abstractmethod
    def alive(self) -> bool:
        """Whether any process of the launch still runs."""

    @abc.abstractmethod
    def stop(self, grace: float) -> None:
        """End every process: SIGTERM, then SIGKILL after ``grace`` seconds; reap them all."""

    def sessions(self) -> list[int]:
        """Sessions of the processes launched on this host, for the reaper to end should the
        submitting process die (none for a launcher whose workers run elsewhere)."""
        return []


class Launcher(abc.ABC):
    """Starts a job's workers on one kind of cluster."""

    name: str = ""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def check(self, job: Job) -> None:
        """Raise :class:`PlacementError` when the job cannot be placed."""
        check_memory(job, self.name)

    @abc.abstractmethod
    def launch(self, job: Job, env: dict[str, str]) -> LaunchHandle:
        """Start the workers with ``env`` added to their environment."""


def check_memory(job: Job, cluster: str) -> None:
    """The workers' memory must fit this machine's."""
    total_mb = psutil.virtual_memory().total // (1024 * 1024)
    want = job.workers * job.resources.memory_mb
    if want > total_mb:
        msg = (
            f"{job.workers} workers x {job.resources.memory_mb} MB = {want} MB is more memory than "
            f"this machine has ({total_mb} MB) for the {cluster} cluster: lower --workers or "
            "resource.memory_mb"
        )
        raise PlacementError(msg)


def worker_command() -> list[str]:
    return [sys.executable, "-m", "twister2.worker"]


def stop_process_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group led by ``proc``, SIGKILL what is left after ``grace``; reap."""
    pgid = proc.pid
    members = _group_members(pgid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not any(p.is_running() for p in _alive(members)):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    for member in _alive(members):
        with contextlib.suppress(psutil.Error):
            member.kill()
    proc.wait()


def _group_members(pgid: int) -> list[psutil.Process]:
    found = []
    with contextlib.suppress(psutil.Error):
        leader = psutil.Process(pgid)
        found = [leader, *leader.children(recursive=True)]
    return found


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


LauncherFactory = Callable[[Mapping[str, Any]], Launcher]
_REGISTRY: dict[str, LauncherFactory] = {}


def register_launcher(name: str, factory: LauncherFactory) -> None:
    """Make ``twister2 submit <name> ...`` use ``factory(config)``."""
    _REGISTRY[name] = factory


def available_launchers() -> list[str]:
    return sorted(_REGISTRY)


def get_launcher(name: str, config: Mapping[str, Any]) -> Launcher:
    """The launcher for cluster ``name``."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        msg = f"unknown cluster {name!r} (known: {', '.join(available_launchers())})"
        raise ValueError(msg) from None
    return factory(config)

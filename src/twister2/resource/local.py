"""The embedded local cluster: every worker a child process of the submitting process.

More workers than cores is fine (they share the cores); the memory the job asks for must fit.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from twister2.job import Job
from twister2.resource.base import (
    Launcher,
    LaunchHandle,
    PlacementError,
    register_launcher,
    stop_process_group,
    worker_command,
)

__all__ = ["LocalLauncher"]


class LocalHandle(LaunchHandle):
    def __init__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.procs = procs
        self._reported: set[int] = set()

    def poll(self) -> list[tuple[int, int]]:
        ended = []
        for index, proc in enumerate(self.procs):
            code = proc.poll()
            if code is not None and index not in self._reported:
                self._reported.add(index)
                ended.append((index, code))
        return ended

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def sessions(self) -> list[int]:
        return [p.pid for p in self.procs]  # each worker leads its own session

    def stop(self, grace: float) -> None:
        for proc in self.procs:
            stop_process_group(proc, grace if proc.poll() is None else 0.0)


class LocalLauncher(Launcher):
    name = "local"

    def check(self, job: Job) -> None:
        limit = int(self.config["resource.local.max_workers"])
        if job.workers > limit:
            msg = (
                f"{job.workers} workers is more than the local cluster places "
                f"(resource.local.max_workers is {limit}): lower --workers or raise that key"
            )
            raise PlacementError(msg)
        super().check(job)

    def launch(self, job: Job, env: dict[str, str]) -> LocalHandle:
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for index in range(job.workers):
                worker_env: dict[str, Any] = {
                    **os.environ,
                    **env,
                    "TWISTER2_WORKER_INDEX": str(index),
                }
                procs.append(
                    subprocess.Popen(worker_command(), env=worker_env, start_new_session=True)
                )
        except BaseException:
            LocalHandle(procs).stop(0.0)
            raise
        return LocalHandle(procs)


register_launcher("local", LocalLauncher)

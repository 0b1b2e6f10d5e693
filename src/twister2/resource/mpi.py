"""The mpi cluster: workers are the ranks of one ``mpiexec`` (the MPI from PyPI by default).

``resource.mpi.hostfile`` spreads the ranks over several hosts (the job master then has to listen
on an address they reach: ``master.interface``). More ranks than cores works, as on local.

On one host (no hostfile) nothing listens beyond loopback: MPICH's ranks are started by its
fork-based process manager (``mpiexec.gforker``, no control port; hydra's listens on every
address) and its network modules are held to the loopback device (``UCX_NET_DEVICES=lo``,
``FI_TCP_IFACE=lo``). With a hostfile, ``resource.mpi.interface`` names the interface MPI traffic
uses (hydra's ``-iface`` and the same variables). docs/channels.md states the trust model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from twister2.job import Job
from twister2.resource.base import (
    WHOLE_JOB,
    Launcher,
    LaunchHandle,
    PlacementError,
    check_memory,
    register_launcher,
    stop_process_group,
    worker_command,
)

__all__ = ["MpiLauncher", "find_mpiexec"]


def find_mpiexec(configured: str = "") -> str:
    """The mpiexec to use: the configured one, the one beside this Python, or the one on PATH."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            msg = f"resource.mpi.mpiexec is {configured!r}, which is not an executable"
            raise PlacementError(msg)
        return found
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    if found is None:
        msg = (
            "no mpiexec found: install the mpi extra (`pip install 'twister2[mpi]'`, which brings "
            "MPICH and mpi4py) or set resource.mpi.mpiexec"
        )
        raise PlacementError(msg)
    return found


class MpiHandle(LaunchHandle):
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._reported = False

    def poll(self) -> list[tuple[int, int]]:
        code = self.proc.poll()
        if code is None or self._reported:
            return []
        self._reported = True
        return [(WHOLE_JOB, code)]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def sessions(self) -> list[int]:
        return [self.proc.pid]  # mpiexec leads a session; its proxies and ranks stay in it

    def stop(self, grace: float) -> None:
        stop_process_group(self.proc, grace if self.proc.poll() is None else 0.5)


class MpiLauncher(Launcher):
    name = "mpi"

    def check(self, job: Job) -> None:
        self.mpiexec = find_mpiexec(str(self.config["resource.mpi.mpiexec"]))
        hostfile = self.config["resource.mpi.hostfile"]
        if hostfile:
            path = Path(hostfile)
            if not path.is_file():
                msg = f"resource.mpi.hostfile {str(path)!r} does not exist"
                raise PlacementError(msg)
        else:
            check_memory(job, self.name)

    def command(self, job: Job) -> list[str]:
        hostfile = self.config["resource.mpi.hostfile"]
        interface = str(self.config["resource.mpi.interface"])
        mpiexec = self.mpiexec
        forker = Path(mpiexec).parent / "mpiexec.gforker"
        if not hostfile and _is_hydra(mpiexec) and forker.exists():
            mpiexec = str(forker)  # one host: no process manager port at all
        cmd = [mpiexec, "-n", str(job.workers)]
        if hostfile:
            cmd += (
                ["-f", str(hostfile)] if _is_hydra(self.mpiexec) else ["--hostfile", str(hostfile)]
            )
            if interface and _is_hydra(self.mpiexec):
                cmd += ["-iface", interface]
        cmd += [str(a) for a in self.config["resource.mpi.extra_args"]]
        return [*cmd, *worker_command()]

    def launch(self, job: Job, env: dict[str, str]) -> MpiHandle:
        if not hasattr(self, "mpiexec"):
            self.check(job)
        full_env = {**os.environ, **env}
        device = "" if self.config["resource.mpi.hostfile"] else "lo"
        device = str(self.config["resource.mpi.interface"]) or device
        if device:  # where MPICH's ucx and ofi network modules listen and connect
            full_env.setdefault("UCX_NET_DEVICES", device)
            full_env.setdefault("FI_TCP_IFACE", device)
        full_env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        full_env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        proc = subprocess.Popen(self.command(job), env=full_env, start_new_session=True)
        return MpiHandle(proc)


def _is_hydra(mpiexec: str) -> bool:
    resolved = os.path.realpath(mpiexec)
    return "hydra" in resolved or (Path(mpiexec).parent / "mpichversion").exists()


register_launcher("mpi", MpiLauncher)

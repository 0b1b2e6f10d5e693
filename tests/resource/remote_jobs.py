"""Entry functions of the jobs the resource-manager tests run (workers import them from here)."""

from __future__ import annotations

import os
import socket
from typing import Any

from twister2 import WorkerEnv


def where(env: WorkerEnv) -> dict[str, Any]:
    """Who and where each worker is, after a barrier and one exchange over the channel."""
    env.barrier("where")
    right = (env.worker_id + 1) % env.num_workers
    env.comm.send(env.worker_id, dest=right, tag=3)
    left = env.comm.recv(tag=3)
    env.logger.info("worker %d of %d on %s", env.worker_id, env.num_workers, socket.gethostname())
    return {
        "id": env.worker_id,
        "n": env.num_workers,
        "host": socket.gethostname(),
        "left": left,
        "slurm_procid": os.environ.get("SLURM_PROCID"),
        "pod": os.environ.get("POD_NAME"),
        "channel": env.comm.scheme,
    }


def mpi_allreduce(env: WorkerEnv) -> tuple[int, int, int]:
    """The user's own mpi4py calls inside a job: (rank, size, sum of the ranks)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    return comm.Get_rank(), comm.Get_size(), comm.allreduce(comm.Get_rank())

"""What a worker's entry function receives: :class:`WorkerEnv`.

Example
-------
A job's entry function, run on every worker::

    def main(env: WorkerEnv) -> None:
        env.logger.info("hello from worker %d of %d", env.worker_id, env.num_workers)
        env.comm.send(env.worker_id, dest=0)
        env.barrier()
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twister2.master.client import MasterClient
from twister2.net.channel import Channel
from twister2.net.dataflow import Dataflow
from twister2.worker.reports import ReportQueue

__all__ = ["WorkerEnv", "WorkerInfo"]


@dataclass(frozen=True)
class WorkerInfo:
    """One worker of the job: its id, host, process id and channel address."""

    id: int
    host: str
    pid: int
    address: str


@dataclass
class WorkerEnv:
    """The job as one worker sees it.

    Attributes
    ----------
    job_id, worker_id, num_workers:
        Which job, which worker (0..N-1) and how many.
    config:
        The job's resolved configuration (flat dotted keys).
    comm:
        The channel to every other worker (``send``/``recv``).
    workers:
        Every worker of the job, by id, with its host.
    logger:
        A logger whose lines carry the job and worker id.
    scratch_dir:
        A directory private to this worker, removed when the job ends.
    args:
        The script's arguments (what followed ``--`` on ``twister2 submit``).
    cluster:
        ``local``, ``mpi``, ...
    """

    job_id: str
    worker_id: int
    num_workers: int
    config: Mapping[str, Any]
    comm: Channel
    workers: list[WorkerInfo]
    logger: logging.LoggerAdapter[logging.Logger]
    scratch_dir: Path
    args: list[str]
    cluster: str
    master: MasterClient = field(repr=False)
    _dataflow: Dataflow | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)
    _reports: ReportQueue | None = field(default=None, repr=False)

    @property
    def dataflow(self) -> Dataflow:
        """The Twister2:Net dataflow engine over ``comm``: create operators on it.

        >>> from twister2.net import Plan                     # doctest: +SKIP
        >>> from twister2.net.batch import AllReduce          # doctest: +SKIP
        >>> op = AllReduce(env.dataflow, Plan.per_worker(env.num_workers), "sum")  # doctest: +SKIP
        """
        if self._dataflow is None:
            flow = Dataflow(self.comm, config=self.config, scratch_dir=self.scratch_dir)
            self._reports = ReportQueue(self.master.event)
            flow.reporter = self._reports.put  # one operation event per finished operation
            self._dataflow = flow
        return self._dataflow

    def close(self) -> None:
        """Stop the dataflow engine, if it was started (the worker's bootstrap does this)."""
        if self._closed:
            return
        self._closed = True
        # (started if it was not: on closing, the dataflow tells workers that sent messages to
        # operations this worker never created)
        self.dataflow.close()
        self._dataflow = None
        if self._reports is not None:
            self._reports.close()

    def barrier(self, name: str = "default", timeout: float | None = None) -> None:
        """Wait until every worker has reached barrier ``name``.

        Raises :class:`twister2.master.BarrierError` when ``timeout`` seconds (default
        ``master.barrier_timeout``) pass first, naming the workers that did not arrive, or as
        soon as one of them ends without arriving.
        """
        limit = float(self.config["master.barrier_timeout"]) if timeout is None else timeout
        self.master.barrier(name, limit)

    @property
    def mpi_comm(self) -> Any:
        """The mpi4py communicator of the job's workers (the mpi cluster only)."""
        if self.cluster != "mpi":
            msg = (
                f"env.mpi_comm needs the mpi cluster, but this job runs on {self.cluster!r}: "
                "submit it with `twister2 submit mpi ...`"
            )
            raise RuntimeError(msg)
        from mpi4py import MPI

        return MPI.COMM_WORLD

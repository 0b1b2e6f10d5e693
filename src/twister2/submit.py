"""Running a job: ``twister2.run(main, workers=4)`` from a script, or ``twister2 submit``.

The submitting process resolves the config, starts the job master, asks the cluster's launcher for
the workers, follows the job to its end and cleans up: no worker, job master or port outlives
:func:`run`, whatever happens.

Example
-------
A job file (``python hello.py`` runs it on the embedded local cluster)::

    import twister2

    def main(env):
        return env.worker_id * 10

    if __name__ == "__main__":
        result = twister2.run(main, workers=4)
        assert result.values == [0, 10, 20, 30]
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twister2 import config as config_mod
from twister2 import wire
from twister2.errors import JobFailedError, JobKilledError, JobStartError
from twister2.job import Job, JobState, Resources, new_job_id
from twister2.master.server import JobMaster
from twister2.resource import get_launcher
from twister2.resource.base import WHOLE_JOB, LaunchHandle
from twister2.resource.reaper import Reaper
from twister2.scratch import job_scratch, reclaim_dead_jobs, remove_scratch, scratch_base

__all__ = ["JobResult", "run", "submission"]

log = logging.getLogger(__name__)

_POLL = 0.1
_SETTLE = 3.0


@dataclass
class JobResult:
    """A finished job, as :func:`run` returns it.

    ``job_id`` is the job's id (what ``twister2 jobs``, ``twister2 kill`` and the dashboard
    show), ``state`` is :attr:`JobState.COMPLETED`, ``values[i]`` is worker ``i``'s return value
    and ``log_folder`` the job's folder under ``job.log_dir`` (its event log ``events.jsonl``).
    See docs/api.md.
    """

    job_id: str
    state: JobState
    values: list[Any] = field(default_factory=list)
    log_folder: Path | None = None


@dataclass
class _Submission:
    cluster: str | None = None
    workers: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    args: list[str] | None = None
    used: bool = False


_submission: _Submission | None = None


@contextlib.contextmanager
def submission(
    cluster: str, workers: int | None, config: Mapping[str, Any], args: list[str]
) -> Iterator[_Submission]:
    """While active, :func:`run` calls take these settings over the script's own (the CLI)."""
    global _submission
    previous = _submission
    _submission = _Submission(cluster, workers, dict(config), list(args))
    try:
        yield _submission
    finally:
        _submission = previous


def run(
    main: Callable[..., Any],
    *,
    workers: int = 1,
    cluster: str = "local",
    config: Mapping[str, Any] | None = None,
    name: str | None = None,
    resources: Resources | None = None,
    args: list[str] | None = None,
    timeout: float | None = None,
) -> JobResult:
    """Run ``main(env)`` on ``workers`` workers of ``cluster`` and wait for the job's end.

    ``main`` goes to the workers by reference when they can import it by name (the top level of
    a module or of the script being run), else by value (cloudpickle): a function from a
    notebook, from ``python -`` or from ``python -c``, a lambda, a closure, a
    ``functools.partial``. ``args`` (the workers' ``env.args``) defaults to the script's own
    arguments, ``sys.argv[1:]``, and to none in an interactive session.

    Raises :class:`twister2.shipping.EntryNotShippableError` before anything starts when ``main``
    captures something that cannot be pickled, :class:`twister2.errors.JobFailedError` (naming
    the worker, its host and the original traceback) when a worker fails, and
    :class:`twister2.errors.JobKilledError` when the job is killed, or runs past ``timeout``
    seconds (the ``job.timeout`` key; None: no limit). Under ``twister2 submit`` the command
    line's cluster, workers, config and arguments take precedence over the arguments given here.
    See docs/api.md.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as logs:
    ...     result = run(lambda env: env.worker_id * 10, workers=2, config={"job.log_dir": logs})
    >>> result.state.value, result.values
    ('COMPLETED', [0, 10])
    """
    overrides = dict(config or {})
    if timeout is not None:
        overrides["job.timeout"] = timeout
    script_args = list(args if args is not None else _script_args())
    if _submission is not None:
        _submission.used = True
        cluster = _submission.cluster or cluster
        workers = _submission.workers or workers
        overrides.update(_submission.config)
        if _submission.args is not None:
            script_args = _submission.args
    cfg = config_mod.resolve(cluster, overrides)
    if resources is None:
        resources = Resources(
            cpu=float(cfg["resource.cpu"]),
            memory_mb=int(cfg["resource.memory_mb"]),
            disk_gb=float(cfg["resource.disk_gb"]),
        )
    job = Job.create(
        main,
        workers=workers,
        name=name,
        resources=resources,
        config=cfg.to_dict(),
        args=script_args,
    )
    return _Runner(job, cluster, cfg).run()


class _Runner:
    def __init__(self, job: Job, cluster: str, cfg: config_mod.Config) -> None:
        self.job = job
        self.cluster = cluster
        self.cfg = cfg
        self.job_id = new_job_id(job.name)
        self.launch_error: Exception | None = None

    def run(self) -> JobResult:
        launcher = get_launcher(self.cluster, self.cfg)
        launcher.check(self.job)
        secret = wire.new_secret()
        log_folder = _log_folder(Path(self.cfg["job.log_dir"])) / self.job_id
        base = scratch_base(self.cfg["job.scratch_dir"])
        scratch = job_scratch(base, self.job_id)
        try:
            reclaim_dead_jobs(base)
            master = self._master(secret, scratch, log_folder)
        except BaseException:
            remove_scratch(scratch)
            raise
        host, port = master.address
        env = {
            "TWISTER2_JOB_ID": self.job_id,
            "TWISTER2_MASTER_ADDRESS": f"{host}:{port}",
            "TWISTER2_JOB_SECRET": secret.hex(),
        }
        handle: LaunchHandle | None = None
        reaper: Reaper | None = None
        log.info(
            "job %s: %d workers on %s (event log %s)",
            self.job_id,
            self.job.workers,
            self.cluster,
            log_folder,
        )
        try:
            reaper = Reaper.start(scratch, log_folder)
            master.start()
            with _interrupts_kill(master):
                handle = launcher.launch(self.job, env)
                reaper.watch(handle.sessions())
                self._follow(master, handle)
        finally:
            if handle is not None:
                handle.stop(float(self.cfg["master.kill_grace"]))
            master.stop()
            remove_scratch(scratch)
            if reaper is not None:
                reaper.done()
        log.info("job %s: %s", self.job_id, master.state.value)
        if self.launch_error is not None:
            raise self.launch_error
        return self._outcome(master, log_folder)

    def _master(self, secret: bytes, scratch: Path, log_folder: Path) -> JobMaster:
        spec = {
            "cluster": self.cluster,
            "config": self.cfg.to_dict(),
            "entry": self.job.entry.to_dict(),
            "args": list(self.job.args),
            "sys_path": list(self.job.sys_path),
            "scratch_root": str(scratch),
        }
        master = JobMaster(
            self.job_id,
            self.job.workers,
            secret,
            spec,
            log_folder,
            interface=str(self.cfg["master.interface"]),
            port=int(self.cfg["master.port"]),
            failure_timeout=float(self.cfg["master.failure_timeout"]),
            join_timeout=float(self.cfg["master.join_timeout"]),
            entry_value=self.job.entry.value or b"",
        )
        master.log_event(
            "job",
            state=JobState.STARTING.value,
            name=self.job.name,
            cluster=self.cluster,
            workers=self.job.workers,
            resources=vars(self.job.resources),
            master_pid=os.getpid(),
            entry=self.job.entry.to_dict(),
        )
        return master

    def _follow(self, master: JobMaster, handle: LaunchHandle) -> None:
        """Wait for the job's end, feeding the master what the launcher sees."""
        ended_at: float | None = None
        limit = self.cfg["job.timeout"]
        deadline = None if limit is None else time.monotonic() + float(limit)
        while not master.state.finished:
            if deadline is not None and time.monotonic() > deadline:
                master.kill(f"the job ran past its time limit of {float(limit):g} s (job.timeout)")
                break
            try:
                ended = handle.poll()
            except Exception as exc:  # the launcher's own verdict (e.g. Slurm's reason)
                master.fail(str(exc))  # the event log says FAILED, and why
                self.launch_error = exc  # re-raised as it is, once everything is cleaned up
                break
            for index, code in ended:
                if index == WHOLE_JOB:
                    ended_at = time.monotonic()
                    if code != 0:
                        log.debug("mpiexec of %s exited with %s", self.job_id, code)
                else:
                    master.process_exited(index, code)
            master.tick()
            if ended_at is not None and time.monotonic() - ended_at > _SETTLE:
                master.fail(f"the {self.cluster} launcher's processes ended before the job did")
            master.wait_change(_POLL)
        if master.state is JobState.COMPLETED:
            # workers leave by themselves after reporting; give them a moment before stop()
            deadline = time.monotonic() + float(self.cfg["master.kill_grace"])
            while handle.alive() and time.monotonic() < deadline:
                time.sleep(0.02)

    def _outcome(self, master: JobMaster, log_folder: Path) -> JobResult:
        record = master.record
        if record.state is JobState.COMPLETED:
            values = [_value(record.members[i].result) for i in range(self.job.workers)]
            return JobResult(self.job_id, record.state, values, log_folder)
        if record.state is JobState.KILLED:
            raise JobKilledError(self.job_id, record.kill_reason)
        failure = record.failure
        if failure is None:
            raise JobFailedError(self.job_id, f"ended in state {record.state.value}")
        raise JobFailedError(
            self.job_id,
            failure.message,
            worker_id=failure.worker_id,
            host=failure.host,
            exc_type=failure.exc_type,
            remote_traceback=failure.traceback,
            task=failure.task,
        )


def _script_args() -> list[str]:
    """The running script's arguments; none in an interactive session (a Python or IPython
    prompt, a Jupyter kernel), whose ``sys.argv`` is the interpreter's or the kernel's own."""
    return [] if hasattr(sys, "ps1") else sys.argv[1:]


def _log_folder(path: Path) -> Path:
    """``job.log_dir``, created if missing; a :class:`JobStartError` if it cannot be."""
    if path.exists() and not path.is_dir():
        msg = f"job.log_dir {path} is a file, not a directory; set job.log_dir to a directory"
        raise JobStartError(msg)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create job.log_dir {path}: {exc.strerror or exc}; set job.log_dir elsewhere"
        raise JobStartError(msg) from exc
    return path


def _value(blob: bytes | None) -> Any:
    return pickle.loads(blob) if blob else None


@contextlib.contextmanager
def _interrupts_kill(master: JobMaster) -> Iterator[None]:
    """Ctrl-C, SIGTERM or SIGHUP (a closed terminal) on the submitting process kills the job
    (and so cleans it up)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        master.kill(f"the submitting process received {signal.Signals(signum).name}")

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, on_signal) for s in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""What the job master knows about a job, as a plain object with no sockets or threads.

The server feeds it what happens (a registration, a heartbeat, a barrier arrival, a process exit,
the clock) and reads back decisions (ids, barrier releases, the job's state, the failure to
report). Tests drive it directly.

Example
-------
>>> job = JobRecord("demo", workers=2, failure_timeout=10.0)
>>> job.register(None, "h", 11, "", now=0.0), job.register(None, "h", 12, "", now=0.0)
(0, 1)
>>> job.state.value
'RUNNING'
>>> job.arrive("b", 0), job.barrier_done("b", 0), job.arrive("b", 1), job.barrier_done("b", 0)
(0, False, 0, True)
>>> job.check(now=30.0); job.state.value, job.failure.message
('FAILED', 'worker 0 sent no heartbeat for 30.0 s (master.failure_timeout is 10 s)')
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

from twister2.job import JobState, WorkerState

__all__ = ["Failure", "JobRecord", "RegistrationError", "WorkerRecord", "describe_exit"]

END_BARRIER = "twister2.end"
"""The barrier every worker meets after its entry function returns."""

LOST_GRACE = 2.0
"""Seconds to wait, after a worker's connection drops, for the launcher to say how it ended."""

FAILURE_SETTLE = 1.0
"""Seconds a worker's reported error waits for news of a worker that died before it: when one
worker is killed, the others soon raise errors about its closed connections, and often report
them before the launcher sees the death. The job's failure names the worker that died first."""


class RegistrationError(RuntimeError):
    """A worker could not join the job."""


@dataclass
class WorkerRecord:
    worker_id: int
    host: str
    pid: int
    address: str
    state: WorkerState = WorkerState.RUNNING
    last_seen: float = 0.0
    rss: int = 0
    cpu: float = 0.0
    result: bytes | None = None

    def info(self) -> dict[str, Any]:
        return {"id": self.worker_id, "host": self.host, "pid": self.pid, "address": self.address}


@dataclass
class Failure:
    """Why a job failed: which worker, where, and the original error."""

    message: str
    worker_id: int | None = None
    host: str = ""
    exc_type: str = ""
    traceback: str = ""
    task: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "worker_id": self.worker_id,
            "host": self.host,
            "exc_type": self.exc_type,
            "traceback": self.traceback,
            "task": self.task,
        }


def describe_exit(returncode: int) -> str:
    """``exited by SIGKILL`` or ``exited with code 3``.

    >>> describe_exit(-9), describe_exit(3)
    ('exited by SIGKILL', 'exited with code 3')
    """
    if returncode < 0:
        try:
            return f"exited by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"exited by signal {-returncode}"
    if returncode > 128 and returncode - 128 in signal.Signals._value2member_map_:
        return f"exited by {signal.Signals(returncode - 128).name}"
    return f"exited with code {returncode}"


@dataclass
class JobRecord:
    job_id: str
    workers: int
    failure_timeout: float
    state: JobState = JobState.STARTING
    failure: Failure | None = None
    kill_reason: str = ""
    members: dict[int, WorkerRecord] = field(default_factory=dict)
    arrived: dict[str, set[int]] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)
    lost: dict[int, float] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    metrics_due: float = 0.0
    reported: list[tuple[float, Failure]] = field(default_factory=list)

    # -- joining -------------------------------------------------------------------------------
    def register(self, requested: int | None, host: str, pid: int, address: str, now: float) -> int:
        """Give a worker its id: the one it asks for (an MPI rank) or the lowest free one."""
        if self.state.finished:
            msg = f"job {self.job_id} is already {self.state.value}"
            raise RegistrationError(msg)
        if requested is not None:
            if not 0 <= requested < self.workers:
                msg = f"worker id {requested} is out of range 0..{self.workers - 1}"
                raise RegistrationError(msg)
            if requested in self.members:
                msg = f"worker id {requested} is already taken"
                raise RegistrationError(msg)
            wid = requested
        else:
            free = [i for i in range(self.workers) if i not in self.members]
            if not free:
                msg = f"all {self.workers} workers of job {self.job_id} have already joined"
                raise RegistrationError(msg)
            wid = free[0]
        self.members[wid] = WorkerRecord(wid, host, pid, address, last_seen=now)
        self._event("worker", worker_id=wid, state=WorkerState.RUNNING.value, host=host, pid=pid)
        if self.all_joined and self.state is JobState.STARTING:
            self._set_state(JobState.RUNNING)
        return wid

    @property
    def all_joined(self) -> bool:
        return len(self.members) == self.workers

    def missing(self) -> list[int]:
        return [i for i in range(self.workers) if i not in self.members]

    def worker_list(self) -> list[dict[str, Any]]:
        return [self.members[i].info() for i in sorted(self.members)]

    # -- liveness ------------------------------------------------------------------------------
    def heartbeat(self, wid: int, now: float, rss: int = 0, cpu: float = 0.0) -> None:
        member = self.members.get(wid)
        if member is None:
            return
        member.last_seen = now
        member.rss, member.cpu = rss, cpu
        if member.state is WorkerState.NOT_RESPONDING:
            member.state = WorkerState.RUNNING

    def sample_metrics(self, now: float, interval: float) -> None:
        """Log one ``metrics`` event per live worker (rss, cpu, seconds since its heartbeat)
        when ``interval`` seconds have passed since the last sample; ``interval <= 0`` logs none.

        >>> job = JobRecord("demo", workers=1, failure_timeout=10.0)
        >>> job.register(None, "h", 11, "", now=0.0); job.heartbeat(0, 1.0, rss=2048, cpu=50.0)
        0
        >>> job.events.clear(); job.sample_metrics(2.0, 5.0); job.sample_metrics(3.0, 5.0)
        >>> job.events
        [('metrics', {'worker_id': 0, 'rss': 2048, 'cpu': 50.0, 'heartbeat_age': 1.0})]
        """
        if interval <= 0 or now < self.metrics_due:
            return
        for wid, member in sorted(self.members.items()):
            if member.state in (WorkerState.RUNNING, WorkerState.NOT_RESPONDING) and member.rss:
                self.metrics_due = now + interval  # the first sample comes with the first beat
                age = round(max(0.0, now - member.last_seen), 3)
                self._event(
                    "metrics", worker_id=wid, rss=member.rss, cpu=member.cpu, heartbeat_age=age
                )

    def connection_lost(self, wid: int, now: float) -> None:
        """A worker's connection dropped before it reported its end."""
        member = self.members.get(wid)
        if member is None or member.state in (WorkerState.COMPLETED, WorkerState.FAILED):
            return
        self.lost.setdefault(wid, now)

    def process_exited(self, wid: int, returncode: int, host: str = "") -> None:
        """The launcher saw worker ``wid``'s process end with ``returncode``."""
        member = self.members.get(wid)
        if member is not None and member.state is WorkerState.COMPLETED and returncode == 0:
            return
        if member is not None and member.state is WorkerState.FAILED:
            return
        if returncode == 0:
            message = f"worker {wid} exited without reporting its end"
        else:
            message = f"worker {wid} {describe_exit(returncode)}"
        where = host or (member.host if member else "")
        self.fail(Failure(message, worker_id=wid, host=where))

    def check(self, now: float) -> None:
        """Apply the clock: heartbeat timeouts, connections lost longer than the grace, and
        reported errors that waited :data:`FAILURE_SETTLE` for news of an earlier death."""
        if self.state.finished:
            return
        first_report = self.reported[0][0] if self.reported else None
        undecided = False
        for wid, since in sorted(self.lost.items(), key=lambda kv: kv[1]):
            if first_report is not None and since > first_report + FAILURE_SETTLE:
                continue  # lost after a worker reported an error: a consequence, not the cause
            if now - since >= LOST_GRACE:
                member = self.members[wid]
                msg = f"worker {wid} lost its connection to the job master (process died?)"
                self.fail(Failure(msg, worker_id=wid, host=member.host))
                return
            undecided = True
        if first_report is not None and not undecided and now - first_report >= FAILURE_SETTLE:
            self.fail(self.reported[0][1])
            return
        for wid, member in sorted(self.members.items()):
            if member.state is not WorkerState.RUNNING:
                continue
            silent = now - member.last_seen
            if silent > self.failure_timeout:
                member.state = WorkerState.NOT_RESPONDING
                msg = (
                    f"worker {wid} sent no heartbeat for {silent:.1f} s "
                    f"(master.failure_timeout is {self.failure_timeout:g} s)"
                )
                self.fail(Failure(msg, worker_id=wid, host=member.host))
                return

    # -- barriers ------------------------------------------------------------------------------
    def arrive(self, name: str, wid: int) -> int:
        """Worker ``wid`` reached barrier ``name``; returns the generation it waits on."""
        generation = self.generation.get(name, 0)
        waiting = self.arrived.setdefault(name, set())
        waiting.add(wid)
        if len(waiting) == self.workers:
            self.generation[name] = generation + 1
            self.arrived[name] = set()
        return generation

    def barrier_done(self, name: str, generation: int) -> bool:
        return self.generation.get(name, 0) > generation

    def barrier_blocker(self, name: str, generation: int) -> str | None:
        """Why barrier ``name`` can never complete, or None while it still can."""
        if self.barrier_done(name, generation):
            return None
        if self.state.finished:
            return f"job {self.job_id} is {self.state.value}"
        waiting = self.arrived.get(name, set())
        at_end = self.arrived.get(END_BARRIER, set()) if name != END_BARRIER else set()
        gone = [
            w
            for w, m in sorted(self.members.items())
            if w not in waiting
            and (m.state in (WorkerState.COMPLETED, WorkerState.FAILED) or w in at_end)
        ]
        if gone:
            return f"workers {gone} finished without reaching barrier {name!r}"
        return None

    def barrier_missing(self, name: str) -> list[int]:
        waiting = self.arrived.get(name, set())
        return [i for i in range(self.workers) if i not in waiting]

    # -- endings -------------------------------------------------------------------------------
    def complete(self, wid: int, result: bytes | None) -> None:
        member = self.members[wid]
        member.state = WorkerState.COMPLETED
        member.result = result
        self.lost.pop(wid, None)
        self._event("worker", worker_id=wid, state=WorkerState.COMPLETED.value)
        done = all(m.state is WorkerState.COMPLETED for m in self.members.values())
        if self.all_joined and done and not self.state.finished:
            self._set_state(JobState.COMPLETED)

    def worker_failed(self, wid: int, failure: Failure, now: float | None = None) -> None:
        """Worker ``wid`` reported an error. With ``now`` the job fails at the next
        :meth:`check` after :data:`FAILURE_SETTLE` seconds, naming a worker that died meanwhile
        (or had died) if there is one; without it, the job fails at once.

        >>> job = JobRecord("demo", workers=3, failure_timeout=10.0)
        >>> for _ in range(3): _ = job.register(None, "h", 1, "", now=0.0)
        >>> job.worker_failed(0, Failure("worker 0 raised OSError: worker 2 closed", 0), now=5.0)
        >>> job.connection_lost(2, now=5.1); job.process_exited(2, -9)
        >>> job.failure.message
        'worker 2 exited by SIGKILL; as a consequence, worker 0 raised OSError: worker 2 closed'
        """
        member = self.members.get(wid)
        if member is not None:
            member.state = WorkerState.FAILED
            self.lost.pop(wid, None)
        self._event("worker", worker_id=wid, state=WorkerState.FAILED.value)
        if now is None:
            self.fail(failure)
        elif not self.state.finished:
            self.reported.append((now, failure))

    def fail(self, failure: Failure) -> None:
        if self.state.finished:
            return
        consequences = [
            f.message.splitlines()[0][:300] for _, f in self.reported if f is not failure
        ]
        if consequences:
            failure.message += "; as a consequence, " + "; ".join(consequences)
        self.failure = failure
        self._event("failure", **failure.to_dict())
        self._set_state(JobState.FAILED, reason=failure.message)

    def kill(self, reason: str) -> None:
        if self.state.finished:
            return
        self.kill_reason = reason
        self._set_state(JobState.KILLED, reason=reason)

    def _set_state(self, state: JobState, reason: str = "") -> None:
        self.state = state
        self._event("job", state=state.value, reason=reason)

    def _event(self, kind: str, **fields: Any) -> None:
        self.events.append((kind, fields))

"""The job master's state, driven directly: no sockets, no threads."""

from __future__ import annotations

import pytest

from twister2.job import JobState, WorkerState
from twister2.master.record import (
    END_BARRIER,
    LOST_GRACE,
    Failure,
    JobRecord,
    RegistrationError,
    describe_exit,
)


def joined(n: int, timeout: float = 10.0) -> JobRecord:
    job = JobRecord("j", workers=n, failure_timeout=timeout)
    for _ in range(n):
        job.register(None, "h", 1, "", now=0.0)
    return job


def test_ids_are_dense_and_requested_ids_are_honoured() -> None:
    job = JobRecord("j", workers=4, failure_timeout=10.0)
    assert job.register(2, "h", 1, "", 0.0) == 2
    assert job.register(None, "h", 1, "", 0.0) == 0
    assert job.register(None, "h", 1, "", 0.0) == 1
    assert job.state is JobState.STARTING
    with pytest.raises(RegistrationError, match="already taken"):
        job.register(2, "h", 1, "", 0.0)
    with pytest.raises(RegistrationError, match=r"out of range 0\.\.3"):
        job.register(7, "h", 1, "", 0.0)
    assert job.register(None, "h", 1, "", 0.0) == 3
    assert job.state is JobState.RUNNING
    with pytest.raises(RegistrationError, match="already joined"):
        job.register(None, "h", 1, "", 0.0)


def test_barrier_generations_release_only_when_all_arrive() -> None:
    job = joined(3)
    g = job.arrive("b", 0)
    job.arrive("b", 1)
    assert not job.barrier_done("b", g)
    assert job.barrier_missing("b") == [2]
    job.arrive("b", 2)
    assert job.barrier_done("b", g)
    g2 = job.arrive("b", 0)  # the same name can be used again
    assert g2 == g + 1 and not job.barrier_done("b", g2)


def test_barrier_blocked_by_a_finished_worker() -> None:
    job = joined(2)
    g = job.arrive("b", 0)
    assert job.barrier_blocker("b", g) is None
    job.complete(1, None)
    assert "workers [1] finished without reaching barrier 'b'" in (
        job.barrier_blocker("b", g) or ""
    )


def test_heartbeat_timeout_fails_the_silent_worker() -> None:
    job = joined(2, timeout=5.0)
    job.heartbeat(0, now=4.0)
    job.heartbeat(1, now=1.0)
    job.check(now=5.5)
    assert job.state is JobState.RUNNING
    job.check(now=6.5)
    assert job.state is JobState.FAILED
    assert job.failure is not None and job.failure.worker_id == 1
    assert job.members[1].state is WorkerState.NOT_RESPONDING


def test_lost_connection_waits_for_a_better_explanation() -> None:
    job = joined(2, timeout=100.0)
    job.connection_lost(1, now=10.0)
    job.check(now=10.0 + LOST_GRACE / 2)
    assert job.state is JobState.RUNNING
    job.process_exited(1, -9)
    assert job.failure is not None and job.failure.message == "worker 1 exited by SIGKILL"


def test_lost_connection_without_explanation_fails_after_grace() -> None:
    job = joined(2)
    job.connection_lost(0, now=0.0)
    job.check(now=LOST_GRACE + 0.1)
    assert job.failure is not None and "worker 0 lost its connection" in job.failure.message


def test_completion_and_first_failure_wins() -> None:
    job = joined(2)
    job.complete(0, b"x")
    assert job.state is JobState.RUNNING
    job.worker_failed(1, Failure("first", worker_id=1))
    job.fail(Failure("second"))
    assert job.state is JobState.FAILED and job.failure is not None
    assert job.failure.message == "first"
    job.kill("too late")
    assert job.state is JobState.FAILED


def test_all_complete() -> None:
    job = joined(2)
    job.complete(1, None)
    job.complete(0, None)
    assert job.state is JobState.COMPLETED
    job.process_exited(0, 0)  # a clean exit after completing is not a failure
    assert job.state is JobState.COMPLETED
    kinds = [(k, f.get("state")) for k, f in job.events]
    assert ("job", "COMPLETED") in kinds and kinds.count(("worker", "COMPLETED")) == 2


def test_describe_exit() -> None:
    assert describe_exit(-15) == "exited by SIGTERM"
    assert describe_exit(137) == "exited by SIGKILL"
    assert describe_exit(1) == "exited with code 1"


def test_a_worker_at_the_end_barrier_never_reaches_another() -> None:
    job = joined(2)
    g = job.arrive("collective", 0)
    job.arrive(END_BARRIER, 1)  # worker 1 returned from its entry function
    assert "workers [1] finished without reaching barrier 'collective'" in (
        job.barrier_blocker("collective", g) or ""
    )
    assert job.barrier_blocker(END_BARRIER, 0) is None

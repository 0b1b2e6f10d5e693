"""Jobs end to end on the local and mpi clusters: real processes, sockets and MPI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import twister2
from tests import jobs
from twister2 import JobFailedError, JobState
from twister2.master import list_jobs, read_events

CLUSTERS = ["local", pytest.param("mpi", marks=pytest.mark.mpi)]
SIZES = [1, 2, 4]


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", SIZES)
def test_hello_discovery_and_ids(cluster: str, workers: int, jobs_dir: Path) -> None:
    result = twister2.run(jobs.hello, workers=workers, cluster=cluster, args=["a", "b"])
    assert result.state is JobState.COMPLETED
    values = result.values
    assert [v["id"] for v in values] == list(range(workers))
    assert all(v["n"] == workers for v in values)
    pids = [v["pid"] for v in values]
    assert len(set(pids)) == workers
    for v in values:  # every worker sees every worker, with the right process ids
        assert v["workers"] == [(i, pids[i], values[i]["workers"][i][2]) for i in range(workers)]
        assert v["args"] == ["a", "b"]
        assert v["job_id"] == result.job_id
    assert {v["channel"] for v in values} == {"mpi" if cluster == "mpi" else "tcp"}
    states = [e["state"] for e in read_events(jobs_dir / result.job_id) if e["type"] == "job"]
    assert states == ["STARTING", "RUNNING", "COMPLETED"]
    assert list_jobs(jobs_dir)[0].state == "COMPLETED"


@pytest.mark.parametrize(
    ("cluster", "channel"),
    [
        ("local", "tcp"),
        pytest.param("mpi", "mpi", marks=pytest.mark.mpi),
        pytest.param("mpi", "tcp", marks=pytest.mark.mpi),
    ],
)
@pytest.mark.parametrize("workers", [1, 3])
def test_point_to_point_over_real_channels(cluster: str, channel: str, workers: int) -> None:
    result = twister2.run(
        jobs.channel_checks, workers=workers, cluster=cluster, config={"network.channel": channel}
    )
    assert result.values == ["ok"] * workers


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", [2, 3])
def test_barrier_waits_for_everyone(cluster: str, workers: int) -> None:
    result = twister2.run(jobs.barriers, workers=workers, cluster=cluster)
    for round_ in range(5):
        arrivals = [w[round_][0] for w in result.values]
        departures = [w[round_][1] for w in result.values]
        assert min(departures) >= max(arrivals)


def test_config_reaches_workers() -> None:
    result = twister2.run(jobs.hello, workers=2, config={"master.failure_timeout": 7.5})
    assert [v["timeout"] for v in result.values] == [7.5, 7.5]


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", [1, 3])
def test_raising_worker_fails_the_job_with_its_traceback(cluster: str, workers: int) -> None:
    start = time.monotonic()
    with pytest.raises(JobFailedError) as info:
        twister2.run(jobs.raise_in_last, workers=workers, cluster=cluster)
    err = info.value
    assert time.monotonic() - start < 30  # the others at the barrier do not wait for its deadline
    assert err.worker_id == workers - 1
    assert err.exc_type == "ValueError"
    assert f"boom from worker {workers - 1}" in str(err)
    assert "raise_in_last" in err.remote_traceback
    assert f"worker {workers - 1}" in str(err) and err.host in str(err)


@pytest.mark.parametrize("workers", [1, 3])
def test_worker_killed_by_signal_local(workers: int) -> None:
    with pytest.raises(JobFailedError) as info:
        twister2.run(jobs.sigkill_last, workers=workers)
    assert f"worker {workers - 1} exited by SIGKILL" in str(info.value)
    assert info.value.worker_id == workers - 1


@pytest.mark.mpi
@pytest.mark.parametrize("workers", [1, 3])
def test_worker_killed_by_signal_mpi(workers: int) -> None:
    with pytest.raises(JobFailedError) as info:
        twister2.run(jobs.sigkill_last, workers=workers, cluster="mpi")
    assert info.value.worker_id == workers - 1
    assert f"worker {workers - 1}" in str(info.value)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_silent_worker_is_found_by_heartbeats(cluster: str) -> None:
    cfg = {"master.failure_timeout": 2.0, "master.heartbeat_interval": 0.2}
    with pytest.raises(JobFailedError) as info:
        twister2.run(jobs.sigstop_last, workers=2, cluster=cluster, config=cfg)
    assert "worker 1 sent no heartbeat" in str(info.value)


def test_worker_exiting_without_report() -> None:
    with pytest.raises(JobFailedError) as info:
        twister2.run(jobs.exit_silently_last, workers=2)
    assert "worker 1 exited without reporting its end" in str(info.value)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_barrier_deadline_names_missing_workers(cluster: str) -> None:
    with pytest.raises(JobFailedError) as info:
        twister2.run(jobs.late_for_barrier, workers=2, cluster=cluster)
    text = str(info.value)
    assert "BarrierError" in text and "timed out after 1 s" in text and "[1]" in text


def test_unpicklable_result_is_a_clear_error() -> None:
    with pytest.raises(JobFailedError) as info:
        twister2.run(jobs.unpicklable_result, workers=1)
    assert "cannot be pickled" in str(info.value)


def test_mpi_channel_on_local_cluster_is_refused() -> None:
    with pytest.raises(JobFailedError) as info:
        twister2.run(jobs.hello, workers=1, config={"network.channel": "mpi"})
    assert "twister2 submit mpi" in str(info.value)

"""Every Harp collective in real worker processes, over tcp (the local cluster) and mpi, at 1, 2
and 4 workers, on fixed random tables, against the single-process reference; raw MPI mixed with
Twister2 in one mpi job; and what bad input gets in a real job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import twister2
from tests.harp import harp_jobs
from tests.harp.cases import expected, make_inputs
from twister2.errors import JobFailedError

CLUSTERS = [("local", "tcp"), pytest.param("mpi", "mpi", marks=pytest.mark.mpi)]


@pytest.mark.parametrize(("cluster", "channel"), CLUSTERS)
@pytest.mark.parametrize(("workers", "combiner_name"), [(1, "sum"), (2, "weighted"), (4, "sum")])
def test_every_collective_in_real_processes(
    cluster: str, channel: str, workers: int, combiner_name: str
) -> None:
    seed = 40 + workers
    result = twister2.run(
        harp_jobs.all_collectives,
        workers=workers,
        cluster=cluster,
        config={"network.channel": channel},
        args=[str(seed), combiner_name],
    )
    want = expected(make_inputs(seed, workers, combiner_name=combiner_name))
    for worker, got in enumerate(result.values):
        for name, value in want[worker].items():
            assert got[name] == value, (name, worker)
        if cluster == "mpi":
            assert got["mpi"] == {
                "rank": worker,
                "size": workers,
                "ranks": list(range(workers)),
                "operator_sum": [workers * (workers - 1) // 2] * 3,
                "from_left": [(worker - 1) % workers] * 5,
                "harp_equals_mpi": True,
            }
        else:
            assert got["mpi_comm_error"] == (
                "env.mpi_comm needs the mpi cluster, but this job runs on 'local': "
                "submit it with `twister2 submit mpi ...`"
            )


def fails(entry: Callable[..., Any], cluster: str = "local") -> str:
    with pytest.raises(JobFailedError) as info:
        twister2.run(entry, workers=2, cluster=cluster)
    return str(info.value)


@pytest.mark.parametrize("cluster", ["local", pytest.param("mpi", marks=pytest.mark.mpi)])
def test_a_collective_called_by_only_some_workers_names_the_missing_ones(cluster: str) -> None:
    text = fails(harp_jobs.skip_collective, cluster)
    # worker 1 returned without calling it: the barrier fails as soon as worker 1 is waiting
    # at the job's end, without waiting out its deadline
    assert (
        "harp allreduce (context 'main', operation 'step') on worker 0: not every worker called "
        "it: barrier 'harp/main/step/allreduce' cannot complete: workers [1] finished without "
        "reaching barrier 'harp/main/step/allreduce'"
    ) in text


def test_workers_in_different_operations_time_out_naming_each_other() -> None:
    text = fails(harp_jobs.different_operations)
    assert "not every worker called it: barrier 'harp/main/step-" in text
    assert "timed out after 2 s: workers [" in text and "] did not arrive" in text


def test_mismatched_shapes_in_a_job() -> None:
    text = fails(harp_jobs.mismatched_shapes)
    assert (
        "harp allreduce (context 'main', operation 'shapes') on worker 1: cannot combine "
        "partition 1 with sum: shape (3,) from worker 0 but (4,) from worker 1"
    ) in text


def test_a_partitioner_past_the_last_worker_in_a_job() -> None:
    text = fails(harp_jobs.past_the_last_worker)
    assert ("the partitioner returned worker 2 for partition 5, but the workers are 0..1") in text

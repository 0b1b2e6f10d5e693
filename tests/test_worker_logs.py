"""A worker's log lines reach the event log (and so the dashboard) as they are logged."""

from __future__ import annotations

from pathlib import Path

import pytest

import twister2
from tests import jobs
from twister2 import JobFailedError
from twister2.master import read_events

CLUSTERS = ["local", pytest.param("mpi", marks=pytest.mark.mpi)]


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", [1, 3])
def test_lines_of_a_worker_killed_right_after_logging_them_are_kept(
    cluster: str, workers: int, jobs_dir: Path
) -> None:
    with pytest.raises(JobFailedError) as info:
        twister2.run(jobs.log_then_sigkill_last, workers=workers, cluster=cluster)
    killed = workers - 1
    assert info.value.worker_id == killed
    events = read_events(jobs_dir / info.value.job_id)
    messages = [
        line["message"]
        for e in events
        if e["type"] == "log" and e["worker_id"] == killed
        for line in e["lines"]
    ]
    assert messages == [f"line {i} of worker {killed} before the kill" for i in range(3)]

"""Every streaming operator in real worker processes over tcp and mpi at 1, 2 and 4 workers."""

from __future__ import annotations

from typing import Any

import pytest

import twister2
from tests.net.stream.cases import NAMES, expected, plan_for, sort_expected
from tests.net.stream.stream_jobs import all_stream_operators


@pytest.mark.parametrize(
    ("cluster", "channel"),
    [("local", "tcp"), pytest.param("mpi", "mpi", marks=pytest.mark.mpi)],
)
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_every_stream_operator_in_real_processes(cluster: str, channel: str, workers: int) -> None:
    result = twister2.run(
        all_stream_operators, workers=workers, cluster=cluster, config={"network.channel": channel}
    )
    for name in NAMES:
        merged: dict[int, Any] = {}
        for part in result.values:
            merged.update(part[name])
        assert merged == sort_expected(name, expected(name, plan_for(name, workers))), name

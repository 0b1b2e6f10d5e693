"""Every batch operator in real worker processes, over the tcp and mpi channels, at 1, 2 and 4
workers, with 3 sources and 5 targets (not dividing evenly), against the reference."""

from __future__ import annotations

from typing import Any

import pytest

import twister2
from tests.net.batch.batch_jobs import all_operators
from tests.net.batch.cases import NAMES, expected, make_inputs, plan_for


@pytest.mark.parametrize(
    ("cluster", "channel"),
    [("local", "tcp"), pytest.param("mpi", "mpi", marks=pytest.mark.mpi)],
)
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_every_operator_in_real_processes(cluster: str, channel: str, workers: int) -> None:
    result = twister2.run(
        all_operators, workers=workers, cluster=cluster, config={"network.channel": channel}
    )
    for name in NAMES:
        merged: dict[int, Any] = {}
        for part in result.values:
            merged.update(part[name])
        plan = plan_for(name, workers)
        assert merged == expected(name, plan, make_inputs(name, len(plan.sources))), name

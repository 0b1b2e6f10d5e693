"""Every Harp collective on threads over the inproc channel, against the single-process reference.

The bulk of the property testing runs here (fast): random tables from Hypothesis at 1, 2 and 4
workers, with every combiner; empty tables, one partition, and partitions on only some workers.
``test_collectives_jobs.py`` runs the same cases in real processes over tcp and mpi.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harp.cases import COMBINERS, Inputs, expected, make_inputs, run_collectives
from tests.harp.threads import run_harp
from twister2.harp import CombineError, Harp, HarpError, Table
from twister2.net import OperationError


def check(inputs: Inputs) -> None:
    got = run_harp(inputs.workers, lambda harp: run_collectives(harp, inputs))
    want = expected(inputs)
    for worker in range(inputs.workers):
        for name in want[worker]:
            assert got[worker][name] == want[worker][name], (name, worker)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    workers=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**16),
    combiner_name=st.sampled_from(COMBINERS),
    data=st.data(),
)
def test_every_collective_matches_the_reference(
    workers: int, seed: int, combiner_name: str, data: Any
) -> None:
    pids = st.lists(st.integers(0, 8), max_size=6, unique=True).map(sorted)
    present = data.draw(st.lists(pids, min_size=workers, max_size=workers), label="present")
    check(make_inputs(seed, workers, present, combiner_name))


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize(
    "shape",
    ["empty", "one_partition", "some_workers", "all_workers_all_ids"],
)
def test_edge_cases(workers: int, shape: str) -> None:
    present = {
        "empty": [[] for _ in range(workers)],
        "one_partition": [[5] if w == workers - 1 else [] for w in range(workers)],
        "some_workers": [[0, 3, 7] if w % 2 else [] for w in range(workers)],
        "all_workers_all_ids": [list(range(9)) for _ in range(workers)],
    }[shape]
    for combiner_name in ("sum", "weighted"):
        check(make_inputs(workers, workers, present, combiner_name))


def test_the_default_cases_at_every_size() -> None:
    for workers in (1, 2, 3, 4):
        check(make_inputs(7, workers))


# -- bad input ---------------------------------------------------------------------------------
def test_mismatched_shapes_name_the_partition_the_shapes_and_the_workers() -> None:
    def body(harp: Harp) -> Table:
        size = 3 if harp.worker_id == 0 else 4
        return harp.allreduce(Table("sum", {1: np.zeros(size)}), operation="shapes")

    with pytest.raises(
        CombineError,
        match=r"harp allreduce \(context 'main', operation 'shapes'\) on worker 1: cannot "
        r"combine partition 1 with sum: shape \(3,\) from worker 0 but \(4,\) from worker 1",
    ):
        run_harp(2, body)


def test_a_partitioner_past_the_last_worker() -> None:
    def body(harp: Harp) -> Table:
        return harp.regroup(Table("sum", {6: 1.0}), lambda pid, n: n, operation="moving")

    with pytest.raises(
        ValueError,
        match=r"harp regroup \(context 'main', operation 'moving'\) on worker \d: the "
        r"partitioner returned worker 3 for partition 6, but the workers are 0..2",
    ):
        run_harp(3, body)


def test_bad_arguments() -> None:
    def body(harp: Harp) -> None:
        with pytest.raises(ValueError, match=r"root 2 is not a worker \(the workers are 0..1\)"):
            harp.broadcast(Table(), root=2)
        with pytest.raises(TypeError, match=r"must be a twister2\.harp\.Table, got dict"):
            harp.allreduce({0: 1})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"returned .a. .*it must return a worker index"):
            harp.regroup(Table("sum", {0: 1}), lambda pid, n: "a")  # type: ignore[arg-type,return-value]
        with pytest.raises(HarpError, match=r"the partitioner raised ZeroDivisionError"):
            harp.push(Table("sum", {0: 1}), Table(), lambda pid, n: 1 // 0)

    run_harp(2, body)


def test_pull_of_a_partition_its_owner_does_not_have() -> None:
    def body(harp: Harp) -> Table:
        global_part = Table("sum", {harp.worker_id: 1.0})  # ids 0 and 1; id 3 is nowhere
        return harp.pull(global_part, Table("sum", {1: 0.0, 3: 0.0}), operation="fetch")

    with pytest.raises(
        HarpError,
        match=r"harp pull \(context 'main', operation 'fetch'\) on worker \d: not in their "
        r"owners' global tables: partition 3 \(owner: worker 1\)",
    ):
        run_harp(2, body)


@pytest.mark.parametrize("kind", ["allreduce", "rotate", "broadcast"])
def test_a_collective_called_by_only_some_workers_names_them(kind: str) -> None:
    """Without a job master (no barrier), the collective's own deadline names who is missing."""

    def body(harp: Harp) -> Any:
        if harp.worker_id == 2:
            return None
        table = Table("sum", {harp.worker_id: np.ones(2)})
        if kind == "broadcast":
            return harp.broadcast(table, root=2, timeout=1.0)
        return getattr(harp, kind)(table, timeout=1.0)

    missing = "workers [2] have not sent" if kind != "broadcast" else "from worker 2 have not"
    with pytest.raises(
        HarpError, match=rf"harp {kind} .* on worker [01]: did not complete within 1 s: "
    ) as info:
        run_harp(3, body)
    assert missing in str(info.value)
    assert isinstance(info.value, OperationError)

"""Every batch operator on threads over the inproc channel, against the single-process reference.

The bulk of the property testing runs here (fast); ``test_batch_jobs.py`` runs every operator in
real processes over tcp and mpi.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.net.batch.cases import NAMES, expected, make_inputs, plan_for, run_case
from tests.net.spmd_threads import run_spmd
from twister2.net import Dataflow, Plan
from twister2.net.inproc import InprocChannel


def run_threads(
    name: str,
    plan: Plan,
    inputs: list[list[Any]],
    config: dict[str, Any] | None = None,
    scratch: Path | None = None,
) -> dict[int, Any]:
    channels = InprocChannel.group(plan.workers)
    flows = [
        Dataflow(ch, config=config, scratch_dir=scratch / f"w{ch.rank}" if scratch else None)
        for ch in channels
    ]
    try:
        parts = run_spmd(
            lambda r: run_case(name, flows[r], plan, inputs), plan.workers, timeout=120
        )
    finally:
        for flow in flows:
            flow.close()
        for ch in channels:
            ch.close()
    merged: dict[int, Any] = {}
    for part in parts:
        assert not set(part) & set(merged)
        merged.update(part)
    return merged


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("workers", "sources", "targets"), [(1, 3, 5), (2, 3, 5), (4, 3, 5), (3, 7, 2), (4, 1, 1)]
)
def test_operator_matches_reference(name: str, workers: int, sources: int, targets: int) -> None:
    plan = plan_for(name, workers, sources, targets)
    inputs = make_inputs(name, len(plan.sources), seed=workers * 10 + sources)
    assert run_threads(name, plan, inputs) == expected(name, plan, inputs)


@pytest.mark.parametrize(
    "name",
    [
        "partition",
        "keyed_gather",
        "keyed_gather_sorted",
        "keyed_partition",
        "join_inner",
        "join_outer",
        "join_sort_outer",
    ],
)
def test_spilling_with_a_tiny_memory_limit(name: str, tmp_path: Path) -> None:
    plan = plan_for(name, 3, 4, 3)
    inputs = make_inputs(name, len(plan.sources), seed=3, per_source=800)
    config = {"net.spill.memory_bytes": 2000, "net.batch_records": 64}
    assert run_threads(name, plan, inputs, config, tmp_path) == expected(name, plan, inputs)
    assert list(tmp_path.rglob("spill"))  # spill folders are made only when data spills
    assert list(tmp_path.rglob("*.run")) == []  # and closing the operation removed the runs


keys = st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b", "hot"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    workers=st.integers(1, 3),
    data=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["a", "b", "hot", "c"]), st.one_of(st.none(), st.integers())),
            max_size=30,
        ),
        min_size=1,
        max_size=4,
    ),
    targets=st.integers(1, 4),
)
def test_keyed_gather_property(
    workers: int, data: list[list[tuple[str, Any]]], targets: int
) -> None:
    plan = Plan.spread(len(data), targets, workers)
    assert run_threads("keyed_gather", plan, data) == expected("keyed_gather", plan, data)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    workers=st.integers(1, 3),
    data=st.lists(st.lists(st.integers(-1000, 1000), max_size=20), min_size=1, max_size=4),
    targets=st.integers(1, 4),
)
def test_reduce_and_allreduce_property(workers: int, data: list[list[int]], targets: int) -> None:
    plan = Plan.spread(len(data), targets, workers)
    assert run_threads("reduce", plan, data) == expected("reduce", plan, data)
    assert run_threads("allreduce", plan, data) == expected("allreduce", plan, data)


@pytest.mark.parametrize("fn", ["sum", "user"])
def test_reduce_never_changes_the_values_sent(fn: str) -> None:
    import numpy as np

    from twister2.net.batch import AllReduce

    def add_in_place(a: Any, b: Any) -> Any:
        a += b
        return a

    sent = [np.arange(5.0), np.ones(5), np.full(5, 2.0)]
    copies = [a.copy() for a in sent]
    (ch,) = InprocChannel.group(1)
    with Dataflow(ch) as flow:
        op = AllReduce(flow, Plan.spread(3, 1, 1), "sum" if fn == "sum" else add_in_place)
        for source, array in enumerate(sent):
            op.send(source, array)
            op.finish(source)
        result = op.wait().result()
    ch.close()
    assert result.tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert all((a == c).all() for a, c in zip(sent, copies, strict=True))

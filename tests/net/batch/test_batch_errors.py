"""What bad input gets from the batch operators (issue 3), and the inputs that are not bad.

Bad input (a reduce function that raises, a value that cannot be pickled, arrays of different
shapes in a SUM, a partitioner's bad answer, keys that cannot be compared where they must be
sorted) raises :class:`OperationError` in the user's thread, naming the operator, the worker and
the offending value's type; in a real job the job fails with that text, and nothing hangs.
Empty inputs give empty results. A full send buffer refuses values until the caller progresses.
Most of it runs on threads over the inproc channel; one representative set runs in real jobs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import twister2
from tests.net.batch import error_jobs
from tests.net.batch.cases import NAMES, expected, make_inputs, plan_for, run_case
from tests.net.spmd_threads import run_spmd
from twister2.errors import JobFailedError
from twister2.net import Dataflow, OperationError, Plan
from twister2.net.batch import (
    AllReduce,
    Broadcast,
    Direct,
    Gather,
    Join,
    KeyedGather,
    KeyedPartition,
    KeyedReduce,
    Partition,
    Reduce,
)
from twister2.net.inproc import InprocChannel


def run_ranks(
    workers: int,
    body: Callable[[Dataflow], Any],
    config: dict[str, Any] | None = None,
    scratch: Path | None = None,
) -> list[Any]:
    """``body(flow)`` on one thread per worker. When one raises, the channels close so that the
    others end too; the first error is re-raised. A hang is a ``TimeoutError``."""
    channels = InprocChannel.group(workers)
    flows = [
        Dataflow(ch, config=config, scratch_dir=scratch / f"w{ch.rank}" if scratch else None)
        for ch in channels
    ]

    def close_channels() -> None:
        for ch in channels:
            ch.close()

    try:
        return run_spmd(lambda r: body(flows[r]), workers, timeout=60, on_error=close_channels)
    finally:
        for flow in flows:
            flow.close()
        close_channels()


def drive(op: Any, inputs: dict[int, list[Any]]) -> Any:
    """Send this worker's sources' values (retrying refused sends), finish them, wait."""
    for source in op.plan.local_sources(op.rank):
        op.send_all(source, inputs.get(source, []), finish=True)
    return op.wait(timeout=30)


def raises(workers: int, body: Callable[[Dataflow], Any], *parts: str, **kw: Any) -> str:
    """Run ``body``; it must raise an OperationError whose text has every one of ``parts``."""
    with pytest.raises(OperationError) as info:
        run_ranks(workers, body, **kw)
    text = str(info.value)
    for part in parts:
        assert re.search(part, text), f"{part!r} not in {text!r}"
    return text


def failing_add(a: Any, b: Any) -> Any:
    msg = "this reduce function always fails"
    raise ArithmeticError(msg)


# -- a reduce function that raises ---------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_reduce_function_that_raises(workers: int) -> None:
    # one worker: the function runs in send(); two: where worker 1's partial meets worker 0's
    plan = Plan.spread(2, 1, workers)
    text = raises(
        workers,
        lambda flow: drive(Reduce(flow, plan, failing_add), {0: [1.5], 1: [2.5]}),
        r"^reduce \(operation \d+\) on worker 0: ",
        "ArithmeticError: this reduce function always fails",
        "value of type float",
    )
    if workers == 2:
        assert "from worker 1" in text


def test_keyed_reduce_function_that_raises_at_the_target() -> None:
    plan = Plan.spread(2, 1, 2)
    raises(
        2,
        lambda flow: drive(KeyedReduce(flow, plan, failing_add), {0: [("k", 1)], 1: [("k", 2)]}),
        r"^keyed reduce \(operation \d+\) on worker 0: ",
        "ArithmeticError",
        "key 'k', value of type int",
    )


def test_allreduce_function_that_raises_fails_every_worker_without_a_hang() -> None:
    plan = Plan.spread(3, 3, 3)
    raises(
        3,
        lambda flow: drive(AllReduce(flow, plan, failing_add), {0: [1], 1: [2], 2: [3]}),
        r"^allreduce \(operation \d+\) on worker \d: ",
        "value of type int",
    )


# -- arrays of different shapes in a SUM -----------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_sum_of_arrays_with_different_shapes(workers: int) -> None:
    plan = Plan.spread(2, 1, workers)
    inputs = {0: [np.zeros(3)], 1: [np.zeros(4)]}
    raises(
        workers,
        lambda flow: drive(Reduce(flow, plan, "sum"), inputs),
        r"^reduce \(operation \d+\) on worker 0: ",
        r"different shapes \(3,\) and \(4,\)",
        "value of type ndarray",
    )


def test_keyed_sum_of_arrays_with_different_shapes() -> None:
    plan = Plan.spread(1, 1, 1)
    raises(
        1,
        lambda flow: drive(
            KeyedReduce(flow, plan, "sum"), {0: [("k", np.zeros(2)), ("k", np.zeros(5))]}
        ),
        r"^keyed reduce \(operation \d+\) on worker 0: ",
        "different shapes",
        "value of type ndarray",
    )


# -- values that cannot be pickled --------------------------------------------------------------
def _generator() -> Any:
    yield 1


@pytest.mark.parametrize(
    ("make", "kind"), [(lambda: lambda: None, "function"), (_generator, "generator")]
)
def test_a_value_that_cannot_be_pickled(make: Callable[[], Any], kind: str) -> None:
    # source 0 on worker 0 sends to target 1 on worker 1: the value must cross the channel
    plan = Plan.spread(2, 2, 2)

    def body(flow: Dataflow) -> Any:
        op = Partition(flow, plan, partitioner=error_jobs.to_last_target)
        return drive(op, {0: [1, make()], 1: [2]})

    raises(
        2,
        body,
        r"^partition \(operation \d+\) on worker 0: ",
        f"cannot send a value of type {kind} to worker 1",
    )


def test_an_unpicklable_value_for_a_local_target_is_delivered() -> None:
    plan = Plan.spread(1, 1, 1)
    fn = lambda: 42  # noqa: E731 - the point is a lambda

    def body(flow: Dataflow) -> list[Any]:
        return list(drive(Partition(flow, plan), {0: [fn]}).result(0))

    assert run_ranks(1, body) == [[fn]]


def test_a_reduce_partial_that_cannot_be_pickled() -> None:
    plan = Plan.spread(2, 1, 2)
    gen = _generator()
    raises(
        2,
        lambda flow: drive(Reduce(flow, plan, lambda a, b: a), {0: [1], 1: [gen]}),
        r"^reduce \(operation \d+\) on worker 1: cannot send a value of type generator",
    )


# -- a partitioner's bad answers ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("partitioner", "what"),
    [
        (
            lambda value, n: n,
            r"returned target 3 for a value of type (int|tuple), .* targets are 0\.\.2",
        ),
        (lambda value, n: -1, r"returned target -1 for a value of type (int|tuple)"),
        (lambda value, n: "t1", r"returned 't1' \(str\) for a value of type (int|tuple)"),
        (lambda value, n: 1.0, r"returned 1\.0 \(float\) for a value of type (int|tuple)"),
        (lambda value, n: True, r"returned True \(bool\)"),
    ],
)
@pytest.mark.parametrize("operator", ["partition", "keyed partition", "keyed reduce", "join"])
def test_a_partitioner_returning_a_bad_target(
    partitioner: Callable[[Any, int], Any], what: str, operator: str
) -> None:
    plan = Plan.spread(2, 3, 2)

    def body(flow: Dataflow) -> Any:
        if operator == "partition":
            return drive(Partition(flow, plan, partitioner), {0: [7], 1: [8]})
        if operator == "keyed partition":
            return drive(KeyedPartition(flow, plan, partitioner), {0: [(7, "a")], 1: [(8, "b")]})
        if operator == "keyed reduce":
            op = KeyedReduce(flow, plan, "sum", partitioner)
            return drive(op, {0: [(7, 1)], 1: [(8, 2)]})
        return drive(Join(flow, plan, partitioner=partitioner), {0: [(7, "a")], 1: [(8, "b")]})

    raises(2, body, rf"^{operator} \(operation \d+\) on worker \d: the partitioner ", what)


def test_a_partitioner_may_return_a_numpy_integer() -> None:
    plan = Plan.spread(2, 3, 2)

    def body(flow: Dataflow) -> dict[int, list[Any]]:
        op = drive(Partition(flow, plan, lambda v, n: np.int64(v) % n), {0: [0, 1], 1: [2, 5]})
        return {t: sorted(op.result(t)) for t in plan.local_targets(flow.rank)}

    merged = {t: vs for part in run_ranks(2, body) for t, vs in part.items()}
    assert merged == {0: [0], 1: [1], 2: [2, 5]}


# -- keys that cannot be compared where they must be sorted --------------------------------------
@pytest.mark.parametrize("spill", [False, True])
def test_sorted_keyed_gather_with_keys_that_cannot_be_compared(spill: bool, tmp_path: Path) -> None:
    plan = Plan.spread(2, 1, 2)
    inputs = {0: [(i, i) for i in range(50)], 1: [(f"k{i}", i) for i in range(50)]}
    config = {"net.spill.memory_bytes": 300} if spill else None

    def body(flow: Dataflow) -> Any:
        op = KeyedGather(flow, plan, sort=True)
        try:
            drive(op, inputs)
            return list(op.result(0)) if flow.rank == 0 else []
        finally:
            op.close()

    raises(
        2,
        body,
        r"^keyed gather \(operation \d+\) on worker 0: ",
        "cannot be compared",
        "int",
        "str",
        config=config,
        scratch=tmp_path,
    )
    assert list(tmp_path.rglob("*.run")) == []  # no spill file left behind


def test_unsorted_keyed_gather_takes_keys_that_cannot_be_compared() -> None:
    plan = Plan.spread(1, 1, 1)

    def body(flow: Dataflow) -> Any:
        op = drive(KeyedGather(flow, plan), {0: [(1, "a"), ("1", "b"), (1, "c")]})
        return sorted(op.result(0), key=repr)

    assert run_ranks(1, body) == [[("1", ["b"]), (1, ["a", "c"])]]


@pytest.mark.parametrize(
    ("left", "right", "types"),
    [
        ([(1, "a"), (2, "b")], [("1", "x")], r"keys of types int and str cannot be compared"),
        ([(1, "a"), ("2", "b")], [(1, "x")], r"keys of types \['int', 'str'\] cannot be compared"),
    ],
)
def test_sort_join_with_keys_that_cannot_be_compared(
    left: list[Any], right: list[Any], types: str
) -> None:
    plan = Plan.spread(1, 1, 1)

    def body(flow: Dataflow) -> Any:
        join = Join(flow, plan, how="outer", algorithm="sort")
        for record in left:
            assert join.send_left(0, record)
        for record in right:
            assert join.send_right(0, record)
        join.finish_left(0)
        join.finish_right(0)
        return list(join.wait(timeout=30).result(0))

    raises(1, body, r"^join \(operation \d+\) on worker 0: ", types)


# -- empty inputs ---------------------------------------------------------------------------------
EMPTY_PLANS = [(1, 3, 5), (2, 3, 5), (3, 2, 4), (4, 1, 2)]


def _run_case(name: str, plan: Plan, inputs: list[list[Any]]) -> dict[int, Any]:
    parts = run_ranks(plan.workers, lambda flow: run_case(name, flow, plan, inputs))
    return {t: r for part in parts for t, r in part.items()}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("workers", "sources", "targets"), EMPTY_PLANS)
def test_every_source_empty(name: str, workers: int, sources: int, targets: int) -> None:
    plan = plan_for(name, workers, sources, targets)
    inputs: list[list[Any]] = [[] for _ in plan.sources]
    got = _run_case(name, plan, inputs)
    assert got == expected(name, plan, inputs)
    for result in got.values():
        assert result in (None, []), result  # nothing at all: None for a reduce, else empty


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("workers", "sources", "targets"), EMPTY_PLANS)
def test_one_source_one_key(name: str, workers: int, sources: int, targets: int) -> None:
    # the last source sends everything, under one key: the other sources send nothing, and all
    # but one target of the routed operators get nothing
    plan = plan_for(name, workers, sources, targets)
    full = make_inputs(name, len(plan.sources), seed=5)
    one = [v for vs in full for v in vs][:5]
    if name.startswith("join"):
        one = [(side, ("hot", value)) for side, (_, value) in one]
    elif name.startswith("keyed"):
        one = [("hot", value) for _, value in one]
    inputs = [[] for _ in plan.sources[:-1]] + [one]
    assert _run_case(name, plan, inputs) == expected(name, plan, inputs)


# -- flow control ---------------------------------------------------------------------------------
LIMIT = 3
TINY = {"net.send_buffer_records": LIMIT, "net.batch_records": 50}


@pytest.mark.parametrize("name", NAMES)
def test_every_operator_completes_with_a_tiny_send_buffer(name: str) -> None:
    plan = plan_for(name, 3, 4, 3)
    inputs = make_inputs(name, len(plan.sources), seed=11, per_source=120)
    parts = run_ranks(3, lambda flow: run_case(name, flow, plan, inputs), config=TINY)
    assert {t: r for part in parts for t, r in part.items()} == expected(name, plan, inputs)


# operators whose send can be refused: how to make one, and every value its targets received
QUEUEING: dict[str, tuple[Callable[[Dataflow, Plan], Any], Callable[[Any, int], list[Any]]]] = {
    "gather": (lambda f, p: Gather(f, p), lambda op, t: [v for _, v in op.result()]),
    "broadcast": (lambda f, p: Broadcast(f, p, source=0), lambda op, t: list(op.result(t))),
    "direct": (lambda f, p: Direct(f, p), lambda op, t: list(op.result(t))),
    "partition": (lambda f, p: Partition(f, p), lambda op, t: list(op.result(t))),
    "keyed partition": (lambda f, p: KeyedPartition(f, p), lambda op, t: list(op.result(t))),
    "keyed gather": (
        lambda f, p: KeyedGather(f, p),
        lambda op, t: [(k, v) for k, vs in op.result(t) for v in vs],
    ),
    "join": (lambda f, p: Join(f, p), lambda op, t: list(op.result(t))),
}


@pytest.mark.parametrize("name", list(QUEUEING))
def test_a_full_send_buffer_refuses_values_until_progress(name: str) -> None:
    make, received = QUEUEING[name]
    workers, per_source = 2, 200
    plan = Plan.spread(3, 3, workers)
    keyed = name != "gather" and name != "broadcast" and name != "direct"

    def values(source: int) -> list[Any]:
        return [(f"k{i % 17}", (source, i)) if keyed else (source, i) for i in range(per_source)]

    def body(flow: Dataflow) -> tuple[int, int, dict[int, list[Any]]]:
        op = make(flow, plan)
        refused = most = 0
        sends = (op.send_left, op.send_right) if name == "join" else (op.send,)
        for source in plan.local_sources(flow.rank):
            if name == "broadcast" and source != 0:
                continue  # only source 0 broadcasts
            for send in sends:
                for value in values(source):
                    while not send(source, value):
                        refused += 1
                        assert op._pending == LIMIT  # refused only when full
                        op.progress()
                    most = max(most, op._pending)
            if name == "join":
                op.finish_left(source)
                op.finish_right(source)
            else:
                op.finish(source)
        op.wait(timeout=30)
        mine = plan.local_targets(flow.rank)
        if name == "gather":
            mine = mine[:1] if plan.targets[0] == flow.rank else []
        return refused, most, {t: received(op, t) for t in mine}

    parts = run_ranks(workers, body, config=TINY)
    refused = sum(p[0] for p in parts)
    assert refused > 0, "the send buffer never filled"
    assert max(p[1] for p in parts) <= LIMIT  # what waits unsent stays bounded
    got = [v for p in parts for vs in p[2].values() for v in vs]
    if name == "broadcast":
        assert all(sorted(vs) == values(0) for p in parts for vs in p[2].values())
    elif name == "join":  # every left value meets every right value of its key
        per_key = Counter(i % 17 for i in range(per_source))
        assert len(got) == sum((3 * n) ** 2 for n in per_key.values())
    else:
        assert sorted(got) == sorted(v for s in range(3) for v in values(s))


@pytest.mark.parametrize("name", ["reduce", "allreduce", "keyed reduce"])
def test_combining_operators_never_refuse(name: str) -> None:
    plan = Plan.spread(3, 2, 2)

    def body(flow: Dataflow) -> bool:
        if name == "keyed reduce":
            op: Any = KeyedReduce(flow, plan, "sum")
            vals = [(i % 7, i) for i in range(100)]
        else:
            op = Reduce(flow, plan, "sum") if name == "reduce" else AllReduce(flow, plan, "sum")
            vals = list(range(100))
        ok = all(op.send(s, v) for s in plan.local_sources(flow.rank) for v in vals)
        for s in plan.local_sources(flow.rank):
            op.finish(s)
        op.wait(timeout=30)
        return ok

    assert all(run_ranks(2, body, config=TINY))


# -- in real jobs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "parts"),
    [
        (
            error_jobs.unpicklable_partition,
            [r"partition \(operation \d+\) on worker 0", "value of type function"],
        ),
        (
            error_jobs.raising_reduce,
            [r"reduce \(operation \d+\) on worker 0", "ArithmeticError", "of type float"],
        ),
        (
            error_jobs.mixed_keys_sort_join,
            [r"join \(operation \d+\) on worker 0", "keys of types int and str"],
        ),
    ],
    ids=["unpicklable", "raising-reduce", "mixed-keys-join"],
)
def test_bad_input_fails_a_real_job(entry: Callable[..., Any], parts: list[str]) -> None:
    with pytest.raises(JobFailedError) as info:
        twister2.run(entry, workers=2, config={"network.recv_timeout": 60})
    assert info.value.worker_id == 0
    assert info.value.exc_type.endswith("OperationError")
    text = str(info.value)
    for part in parts:
        assert re.search(part, text), f"{part!r} not in {text!r}"

"""Every batch operator as a case: how to drive it on one worker, and what it must give.

A case runs SPMD: ``run_case(name, flow, plan, inputs)`` on every worker returns that worker's
``{target: normalised result}``; ``expected(name, plan, inputs)`` is the single-process answer for
every target. The same cases run on threads over the inproc channel and in real jobs over tcp
and mpi.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from tests.net.batch.reference import (
    ref_gather,
    ref_join,
    ref_keyed_gather,
    ref_keyed_reduce,
    ref_reduce,
)
from twister2.net import Dataflow, Plan
from twister2.net.batch import (
    AllGather,
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
from twister2.net.partitioners import stable_hash

NAMES = [
    "reduce",
    "allreduce",
    "gather",
    "allgather",
    "broadcast",
    "direct",
    "partition",
    "keyed_reduce",
    "keyed_gather",
    "keyed_gather_sorted",
    "keyed_partition",
    "join_inner",
    "join_left",
    "join_right",
    "join_outer",
    "join_sort_outer",
    "reduce_arrays",
]


def _plain(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return ("array", x.dtype.str, x.tolist())
    return x


def _drive(op: Any, plan: Plan, rank: int, inputs: list[list[Any]]) -> None:
    for source in plan.local_sources(rank):
        if isinstance(op, Broadcast) and source != op.source:
            continue
        op.send_all(source, inputs[source], finish=True)
    op.wait(timeout=120)


def run_case(name: str, flow: Dataflow, plan: Plan, inputs: list[list[Any]]) -> dict[int, Any]:
    rank = flow.rank
    mine = plan.local_targets(rank)
    if name in ("reduce", "reduce_arrays"):
        op: Any = Reduce(flow, plan, "sum", target=0)
        _drive(op, plan, rank, inputs)
        return {0: _plain(op.result())} if plan.targets[0] == rank else {}
    if name == "allreduce":
        op = AllReduce(flow, plan, "max")
        _drive(op, plan, rank, inputs)
        return {t: _plain(op.result()) for t in mine}
    if name == "gather":
        op = Gather(flow, plan, target=len(plan.targets) - 1)
        _drive(op, plan, rank, inputs)
        last = len(plan.targets) - 1
        return {last: op.result()} if plan.targets[last] == rank else {}
    if name == "allgather":
        op = AllGather(flow, plan)
        _drive(op, plan, rank, inputs)
        return {t: op.result() for t in mine}
    if name == "broadcast":
        last = len(plan.sources) - 1
        op = Broadcast(flow, plan, source=last)
        only = [vs if s == last else [] for s, vs in enumerate(inputs)]
        _drive(op, plan, rank, only)
        return {t: list(op.result(t)) for t in mine}
    if name == "direct":
        op = Direct(flow, plan)
        _drive(op, plan, rank, inputs)
        out = {t: sorted(op.result(t), key=repr) for t in mine}
        op.close()
        return out
    if name == "partition":
        op = Partition(flow, plan, partitioner=lambda v, n: stable_hash(v) % n)
        _drive(op, plan, rank, inputs)
        out = {t: sorted(op.result(t), key=repr) for t in mine}
        op.close()
        return out
    if name == "keyed_partition":
        op = KeyedPartition(flow, plan)
        _drive(op, plan, rank, inputs)
        out = {t: sorted(op.result(t), key=repr) for t in mine}
        op.close()
        return out
    if name == "keyed_reduce":
        op = KeyedReduce(flow, plan, operator.add)
        _drive(op, plan, rank, inputs)
        return {t: sorted(op.result(t).items(), key=repr) for t in mine}
    if name in ("keyed_gather", "keyed_gather_sorted"):
        op = KeyedGather(flow, plan, sort=name.endswith("sorted"))
        _drive(op, plan, rank, inputs)
        out = {}
        for t in mine:
            groups = list(op.result(t))
            if name.endswith("sorted"):
                keys = [k for k, _ in groups]
                assert keys == sorted(keys), keys
            out[t] = sorted(((k, sorted(vs, key=repr)) for k, vs in groups), key=repr)
        op.close()
        return out
    if name.startswith("join"):
        how = name.rsplit("_", 1)[1]
        algorithm = "sort" if "sort" in name else "hash"
        op = Join(flow, plan, how=how, algorithm=algorithm)
        for source in plan.local_sources(rank):
            for side, value in inputs[source]:
                send = op.send_left if side == "L" else op.send_right
                while not send(source, value):
                    op.progress()
            op.finish_left(source)
            op.finish_right(source)
        op.wait(timeout=120)
        out = {t: sorted(op.result(t), key=repr) for t in mine}
        op.close()
        return out
    raise ValueError(name)


def make_inputs(name: str, sources: int, seed: int = 0, per_source: int = 40) -> list[list[Any]]:
    """Deterministic inputs: skewed keys, a hot key, None values, an empty source."""
    rng = np.random.default_rng(seed)
    inputs: list[list[Any]] = []
    for s in range(sources):
        n = 0 if s == 1 else int(rng.integers(1, per_source))
        if name == "reduce_arrays":
            inputs.append([rng.integers(0, 100, size=(3, 4)) for _ in range(n)])
        elif name in ("reduce", "allreduce"):
            inputs.append([int(x) for x in rng.integers(-50, 50, size=n)])
        elif name in ("gather", "allgather", "broadcast", "direct", "partition"):
            inputs.append([(s, i, None if i % 5 == 0 else float(i)) for i in range(n)])
        elif name.startswith("join"):
            rows = []
            for i in range(n):
                side = "L" if rng.random() < 0.5 else "R"
                key = "hot" if rng.random() < 0.3 else f"k{int(rng.integers(0, 12))}"
                rows.append((side, (key, (s, i))))
            inputs.append(rows)
        else:  # keyed
            inputs.append(
                [
                    ("hot" if rng.random() < 0.3 else f"k{int(rng.integers(0, 15))}", i)
                    for i in range(n)
                ]
            )
    return inputs


def expected(name: str, plan: Plan, inputs: list[list[Any]]) -> dict[int, Any]:
    nt = len(plan.targets)
    if name == "reduce":
        return {0: ref_reduce(inputs, operator.add)}
    if name == "reduce_arrays":
        return {0: _plain(ref_reduce(inputs, np.add))}
    if name == "allreduce":
        return {t: ref_reduce(inputs, max) for t in range(nt)}
    if name == "gather":
        return {nt - 1: ref_gather(inputs)}
    if name == "allgather":
        return {t: ref_gather(inputs) for t in range(nt)}
    if name == "broadcast":
        return {t: list(inputs[-1]) for t in range(nt)}
    if name == "direct":
        return {t: sorted(inputs[t], key=repr) for t in range(nt)}
    if name == "partition":
        out: dict[int, list[Any]] = {t: [] for t in range(nt)}
        for vs in inputs:
            for v in vs:
                out[stable_hash(v) % nt].append(v)
        return {t: sorted(vs, key=repr) for t, vs in out.items()}
    if name == "keyed_partition":
        out = {t: [] for t in range(nt)}
        for vs in inputs:
            for k, v in vs:
                out[stable_hash(k) % nt].append((k, v))
        return {t: sorted(vs, key=repr) for t, vs in out.items()}
    if name == "keyed_reduce":
        return {
            t: sorted(d.items(), key=repr)
            for t, d in ref_keyed_reduce(inputs, nt, operator.add).items()
        }
    if name.startswith("keyed_gather"):
        return {
            t: sorted(((k, sorted(vs, key=repr)) for k, vs in d.items()), key=repr)
            for t, d in ref_keyed_gather(inputs, nt).items()
        }
    if name.startswith("join"):
        how = name.rsplit("_", 1)[1]
        rows: dict[int, list[Any]] = {t: [] for t in range(nt)}
        left = [r for vs in inputs for side, r in vs if side == "L"]
        right = [r for vs in inputs for side, r in vs if side == "R"]
        for row in ref_join(left, right, how):
            rows[stable_hash(row[0]) % nt].append(row)
        return {t: sorted(r, key=repr) for t, r in rows.items()}
    raise ValueError(name)


def plan_for(name: str, workers: int, sources: int = 3, targets: int = 5) -> Plan:
    if name == "direct":
        return Plan.spread(sources, sources, workers)
    return Plan.spread(sources, targets, workers)


def run_all_cases(flow: Dataflow, workers: int) -> dict[str, dict[int, Any]]:
    """Every case with 3 sources and 5 targets (the SPMD body of the real-job tests)."""
    results = {}
    for name in NAMES:
        plan = plan_for(name, workers)
        results[name] = run_case(name, flow, plan, make_inputs(name, len(plan.sources)))
    return results

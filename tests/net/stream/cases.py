"""Every streaming operator as an SPMD case: stream a bounded number of values, check what
arrived. The same cases run on threads (inproc) and in real jobs (tcp, mpi)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from twister2.net import Dataflow, Plan
from twister2.net.partitioners import stable_hash
from twister2.net.stream import (
    END,
    StreamAllGather,
    StreamAllReduce,
    StreamBroadcast,
    StreamDirect,
    StreamGather,
    StreamKeyedGather,
    StreamKeyedPartition,
    StreamKeyedReduce,
    StreamPartition,
    StreamReduce,
)

NAMES = [
    "partition",
    "keyed_partition",
    "direct",
    "broadcast",
    "reduce",
    "gather",
    "allreduce",
    "allgather",
    "keyed_reduce",
    "keyed_gather",
]
COUNT = 300


def values_of(name: str, source: int) -> list[Any]:
    if name in ("keyed_partition", "keyed_reduce", "keyed_gather"):
        return [(f"k{(source * 7 + i) % 11}", source * 1000 + i) for i in range(COUNT)]
    if name in ("reduce", "allreduce"):
        return [source * 1000 + i for i in range(COUNT)]
    return [(source, i) for i in range(COUNT)]


def make(name: str, flow: Dataflow, plan: Plan) -> Any:
    if name == "partition":
        return StreamPartition(flow, plan, partitioner=lambda v, n: stable_hash(v) % n)
    if name == "keyed_partition":
        return StreamKeyedPartition(flow, plan)
    if name == "direct":
        return StreamDirect(flow, plan)
    if name == "broadcast":
        return StreamBroadcast(flow, plan, source=0)
    if name == "reduce":
        return StreamReduce(flow, plan, "sum", target=len(plan.targets) - 1)
    if name == "gather":
        return StreamGather(flow, plan, target=0)
    if name == "allreduce":
        return StreamAllReduce(flow, plan, "sum")
    if name == "allgather":
        return StreamAllGather(flow, plan)
    if name == "keyed_reduce":
        return StreamKeyedReduce(flow, plan, "sum")
    if name == "keyed_gather":
        return StreamKeyedGather(flow, plan)
    raise ValueError(name)


def plan_for(name: str, workers: int) -> Plan:
    if name == "direct":
        return Plan.spread(3, 3, workers)
    return Plan.spread(3, 5, workers)


def run_case(name: str, flow: Dataflow, plan: Plan) -> dict[int, list[Any]]:
    """Send every local source's values (consuming local targets while pushed back), stop,
    and collect every local target's values until the stream ends."""
    op = make(name, flow, plan)
    rank = flow.rank
    targets = plan.local_targets(rank)
    got: dict[int, list[Any]] = {t: [] for t in targets}
    sources = [s for s in plan.local_sources(rank) if not (name == "broadcast" and s != 0)]
    feeds = {s: iter(values_of(name, s)) for s in sources}
    pending = {s: next(feeds[s], None) for s in sources}
    while pending:
        for s in list(pending):
            value = pending[s]
            if value is None:
                op.finish(s)
                del pending[s]
                continue
            if op.send(s, value):
                pending[s] = next(feeds[s], None)
            else:
                for t in targets:
                    got[t] += op.poll(t)
                time.sleep(0.0005)
    # consume every local target together (one target left unread would hold up the others
    # once the receive buffer is full: that is the backpressure working)
    live, deadline = set(targets), time.monotonic() + 60
    while live:
        moved = 0
        for t in sorted(live):
            values = op.poll(t)
            got[t] += values
            moved += len(values)
            if op.ended(t):
                live.discard(t)
        assert time.monotonic() < deadline, f"targets {sorted(live)} never ended"
        if not moved:
            time.sleep(0.001)
    if targets:
        assert op.receive(targets[0], timeout=1) is END
    op.wait(timeout=60)  # this worker's own sends are drained too
    op.close()
    return got


def expected(name: str, plan: Plan) -> dict[int, Any]:
    nt = len(plan.targets)
    sources = range(len(plan.sources))
    if name in ("partition", "keyed_partition"):
        out: dict[int, list[Any]] = {t: [] for t in range(nt)}
        for s in sources:
            for v in values_of(name, s):
                key = v[0] if name == "keyed_partition" else v
                out[stable_hash(key) % nt].append(v)
        return out
    if name == "direct":
        return {t: values_of(name, t) for t in range(nt)}
    if name == "broadcast":
        return {t: values_of(name, 0) for t in range(nt)}
    if name in ("reduce", "allreduce"):
        totals = [sum(values_of(name, s)[i] for s in sources) for i in range(COUNT)]
        return {nt - 1: totals} if name == "reduce" else {t: totals for t in range(nt)}
    if name in ("gather", "allgather"):
        rows = [[(s, values_of(name, s)[i]) for s in sources] for i in range(COUNT)]
        return {0: rows} if name == "gather" else {t: rows for t in range(nt)}
    if name in ("keyed_reduce", "keyed_gather"):
        out2: dict[int, dict[str, Any]] = {t: defaultdict(list) for t in range(nt)}
        for s in sources:
            for k, v in values_of(name, s):
                out2[stable_hash(k) % nt][k].append(v)
        if name == "keyed_reduce":
            return {t: {k: sum(vs) for k, vs in d.items()} for t, d in out2.items()}
        return {t: {k: sorted(vs) for k, vs in d.items()} for t, d in out2.items()}
    raise ValueError(name)


def normalise(name: str, got: dict[int, list[Any]]) -> dict[int, Any]:
    """What arrived, in the shape of ``expected``; checks per-source order on the way."""
    if name in ("partition", "keyed_partition"):
        for values in got.values():
            by_source: dict[int, list[int]] = defaultdict(list)
            for v in values:
                src, seq = (v[1] // 1000, v[1] % 1000) if name == "keyed_partition" else v
                by_source[src].append(seq)
            for seqs in by_source.values():
                assert seqs == sorted(seqs), "values from one source arrived out of order"
        return {t: sorted(vs, key=repr) for t, vs in got.items()}
    if name == "keyed_reduce":
        out: dict[int, dict[str, Any]] = {}
        for t, values in got.items():
            last: dict[str, Any] = {}
            for k, total in values:
                assert k not in last or total >= last[k], "a running total went down"
                last[k] = total
            out[t] = last
        return out
    if name == "keyed_gather":
        groups: dict[int, dict[str, Any]] = {}
        for t, values in got.items():
            d: dict[str, list[Any]] = defaultdict(list)
            for k, vs in values:
                d[k] += vs
            groups[t] = {k: sorted(vs) for k, vs in d.items()}
        return groups
    if name in ("reduce", "gather"):
        return {t: vs for t, vs in got.items() if vs}
    return got


def sort_expected(name: str, exp: dict[int, Any]) -> dict[int, Any]:
    if name in ("partition", "keyed_partition"):
        return {t: sorted(vs, key=repr) for t, vs in exp.items()}
    return exp


def run_all_cases(flow: Dataflow, workers: int) -> dict[str, dict[int, Any]]:
    return {name: normalise(name, run_case(name, flow, plan_for(name, workers))) for name in NAMES}

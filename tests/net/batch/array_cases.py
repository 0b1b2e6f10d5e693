"""Every array-tier operator as a case, with its pure-Python reference.

Inputs are plain Python rows (dicts), per source a list of batches; each batch becomes one Arrow
table that the source sends. ``run_case(name, flow, plan, inputs)`` runs one worker's side (SPMD)
and returns ``{target: normalised result}``; ``expected(name, plan, inputs)`` computes the same
from the rows with dictionaries and ``stable_hash``, never with pyarrow. The cases run on threads
over the inproc channel and in real jobs over tcp and mpi.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from twister2.net import Dataflow, Plan
from twister2.net.batch import ArrayJoin, ArrayKeyedGather, ArrayKeyedReduce, ArrayPartition
from twister2.net.partitioners import stable_hash

NAMES = [
    "partition",
    "partition_round_robin",
    "keyed_reduce",
    "keyed_gather",
    "join_inner",
    "join_left",
    "join_right",
    "join_outer",
]
AGGS = {"v": ["sum", "min", "max", "count", "mean"]}
REDUCE_COLUMNS = ("k", "v_sum", "v_min", "v_max", "v_count", "v_mean")

Row = dict[str, Any]
Batch = list[Row]


def schema(kind: str, side: str = "L") -> pa.Schema:
    key = pa.int64() if kind == "int" else pa.string()
    other = ("s", pa.string()) if side == "L" else ("t", pa.string())
    return pa.schema([("k", key), ("v", pa.int64()), other])


def table(rows: Batch, kind: str, side: str = "L") -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema(kind, side))


def _key(rng: np.random.Generator, kind: str, uniform: int) -> Any:
    r = rng.random()
    if r < 0.05:
        return None
    if uniform:
        k = int(rng.integers(-uniform, uniform))
    elif r < 0.35:  # one hot key
        return 7 if kind == "int" else "hot"
    else:
        k = int(rng.zipf(1.6)) % 40 - 20  # skewed, negatives too
    return k if kind == "int" else f"k{k}"


def make_inputs(
    name: str, sources: int, kind: str = "int", seed: int = 0, rows: int = 40, uniform: int = 0
) -> list[list[Any]]:
    """Per source, a list of batches (source 1 sends nothing; some batches are empty).

    A batch is a list of rows, or for joins ``(side, rows)`` with side ``"L"`` or ``"R"``. Keys
    are skewed with a hot key and some nulls; with ``uniform`` they spread evenly over
    ``-uniform..uniform`` (still with nulls).
    """
    rng = np.random.default_rng(seed)
    inputs: list[list[Any]] = []
    for s in range(sources):
        batches: list[Any] = []
        for b in range(0 if s == 1 else int(rng.integers(1, 5))):
            side = "L" if rng.random() < 0.5 else "R"
            other = "t" if side == "R" and name.startswith("join") else "s"
            n = 0 if b == 1 else int(rng.integers(1, rows))
            batch = [
                {
                    "k": _key(rng, kind, uniform),
                    "v": None if rng.random() < 0.1 else int(rng.integers(-100, 100)),
                    other: None if rng.random() < 0.1 else f"{s}.{b}.{i}",
                }
                for i in range(n)
            ]
            batches.append((side, batch) if name.startswith("join") else batch)
        inputs.append(batches)
    return inputs


# -- normalising results ------------------------------------------------------------------------
def _rows(t: pa.Table) -> list[tuple[Any, ...]]:
    return sorted((tuple(sorted(r.items())) for r in t.to_pylist()), key=repr)


def _plain(rows: list[Row]) -> list[tuple[Any, ...]]:
    return sorted((tuple(sorted(r.items())) for r in rows), key=repr)


def _null_last(key: Any) -> tuple[bool, Any]:
    return (key is None, key if key is not None else 0)


def _drive(op: Any, plan: Plan, rank: int, inputs: list[list[Any]], kind: str) -> None:
    for source in plan.local_sources(rank):
        for batch in inputs[source]:
            assert op.send(source, table(batch, kind))
        op.finish(source)
    op.wait(timeout=120)


def run_case(
    name: str,
    flow: Dataflow,
    plan: Plan,
    inputs: list[list[Any]],
    kind: str = "int",
    before_close: Callable[[], None] | None = None,
) -> dict[int, Any]:
    """One worker's side of case ``name``: ``{target: normalised result}`` for its targets
    (``before_close`` runs once the results are read, before the operation is closed)."""
    rank = flow.rank
    mine = plan.local_targets(rank)
    out: dict[int, Any] = {}
    sent = any(inputs)  # else no schema is known anywhere: results have no columns
    if name.startswith("partition"):
        op: Any = ArrayPartition(flow, plan, key=None if name.endswith("robin") else "k")
        _drive(op, plan, rank, inputs, kind)
        for t in mine:
            result = op.result(t)
            assert result.schema.equals(schema(kind)) if sent else result.num_columns == 0
            out[t] = _rows(result)
    elif name == "keyed_reduce":
        op = ArrayKeyedReduce(flow, plan, "k", AGGS)
        _drive(op, plan, rank, inputs, kind)
        for t in mine:
            result = op.result(t)
            assert tuple(result.column_names) == (REDUCE_COLUMNS if sent else ())
            out[t] = [tuple(r.values()) for r in result.to_pylist()]
    elif name == "keyed_gather":
        op = ArrayKeyedGather(flow, plan, "k")
        _drive(op, plan, rank, inputs, kind)
        for t in mine:
            rows = [r for b in op.result(t) for r in b.to_pylist()]
            keys = [r["k"] for r in rows]
            assert keys == sorted(keys, key=_null_last), keys
            groups = [(k, g.num_rows) for k, g in op.groups(t)]
            assert [k for k, _ in groups] == list(dict.fromkeys(keys))
            assert sum(n for _, n in groups) == len(rows)
            out[t] = _plain(rows)
    elif name.startswith("join"):
        op = ArrayJoin(flow, plan, "k", how=name.removeprefix("join_"))
        for source in plan.local_sources(rank):
            for side, batch in inputs[source]:
                send = op.send_left if side == "L" else op.send_right
                assert send(source, table(batch, kind, side))
            op.finish_left(source)
            op.finish_right(source)
        op.wait(timeout=120)
        out = {t: _rows(op.result(t)) for t in mine}
    else:
        raise ValueError(name)
    if before_close is not None:
        before_close()
    op.close()
    return out


# -- the references -------------------------------------------------------------------------------
def _target(key: Any, n: int) -> int:
    return stable_hash(key) % n


def expected(name: str, plan: Plan, inputs: list[list[Any]]) -> dict[int, Any]:
    """The single-process answer of case ``name`` for every target."""
    nt = len(plan.targets)
    if name == "partition":
        parts: dict[int, list[Row]] = {t: [] for t in range(nt)}
        for batches in inputs:
            for batch in batches:
                for row in batch:
                    parts[_target(row["k"], nt)].append(row)
        return {t: _plain(rows) for t, rows in parts.items()}
    if name == "partition_round_robin":
        parts = {t: [] for t in range(nt)}
        for source, batches in enumerate(inputs):
            turn = source
            for batch in batches:
                if batch:  # an empty table has no record batch to deal
                    parts[turn % nt].extend(batch)
                    turn += 1
        return {t: _plain(rows) for t, rows in parts.items()}
    if name == "keyed_reduce":
        return {t: ref_keyed_reduce(rows) for t, rows in _by_target(inputs, nt).items()}
    if name == "keyed_gather":
        return {t: _plain(rows) for t, rows in _by_target(inputs, nt).items()}
    if name.startswith("join"):
        how = name.removeprefix("join_")
        left = [r for bs in inputs for side, b in bs if side == "L" for r in b]
        right = [r for bs in inputs for side, b in bs if side == "R" for r in b]
        sides = {side for bs in inputs for side, _ in bs}  # a side that sent no table at all
        joined: dict[int, list[Row]] = {t: [] for t in range(nt)}  # has no known columns
        for row in ref_join(left, right, how, "L" in sides, "R" in sides):
            joined[_target(row["k"], nt)].append(row)
        return {t: _plain(rows) for t, rows in joined.items()}
    raise ValueError(name)


def _by_target(inputs: list[list[Batch]], nt: int) -> dict[int, list[Row]]:
    parts: dict[int, list[Row]] = {t: [] for t in range(nt)}
    for batches in inputs:
        for batch in batches:
            for row in batch:
                parts[_target(row["k"], nt)].append(row)
    return parts


def ref_keyed_reduce(rows: list[Row]) -> list[tuple[Any, ...]]:
    groups: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        groups[row["k"]].append(row["v"])
    out = []
    for key in sorted(groups, key=_null_last):
        values = [v for v in groups[key] if v is not None]
        total = sum(values) if values else None
        mean = sum(values) / len(values) if values else None
        low, high = (min(values), max(values)) if values else (None, None)
        out.append((key, total, low, high, len(values), mean))
    return out


def ref_join(
    left: list[Row], right: list[Row], how: str, left_known: bool = True, right_known: bool = True
) -> list[Row]:
    """SQL semantics: null keys match nothing; clashing right columns get ``_right``. A side
    whose schema is unknown (it sent no table at all) contributes no columns but its key."""
    if not right_known:
        return list(left) if how in ("left", "outer") else []
    if not left_known:
        return list(right) if how in ("right", "outer") else []
    rkeys: dict[Any, list[Row]] = defaultdict(list)
    for r in right:
        if r["k"] is not None:
            rkeys[r["k"]].append(r)
    lkeys = {r["k"] for r in left if r["k"] is not None}
    nulls = {"v_right": None, "t": None}
    out = []
    for lrow in left:
        matches = rkeys.get(lrow["k"], []) if lrow["k"] is not None else []
        for r in matches:
            out.append({**lrow, "v_right": r["v"], "t": r["t"]})
        if not matches and how in ("left", "outer"):
            out.append({**lrow, **nulls})
    if how in ("right", "outer"):
        for r in right:
            if r["k"] is None or r["k"] not in lkeys:
                out.append({"k": r["k"], "v": None, "s": None, "v_right": r["v"], "t": r["t"]})
    return out


def plan_for(workers: int, sources: int = 3, targets: int = 5) -> Plan:
    return Plan.spread(sources, targets, workers)


def run_all_cases(flow: Dataflow, workers: int) -> dict[str, dict[int, Any]]:
    """Every case with 3 sources and 5 targets, int and string keys (the real-job body)."""
    results = {}
    plan = plan_for(workers)
    for kind in ("int", "str"):
        for name in NAMES:
            inputs = make_inputs(name, len(plan.sources), kind, seed=workers)
            results[f"{name}/{kind}"] = run_case(name, flow, plan, inputs, kind)
    return results


SPILL_LIMIT = 20_000
"""``net.spill.memory_bytes`` of the spilling cases (their data is well over 10 times that)."""
SPILL_NAMES = ("keyed_gather", "partition", "join_outer")


def spill_inputs(name: str, sources: int, kind: str) -> list[list[Any]]:
    uniform = 10_000 if name.startswith("join") else 0  # a hot key would square the output
    return make_inputs(name, sources, kind, seed=11, rows=10_000, uniform=uniform)


def run_spilling_cases(flow: Dataflow, workers: int, scratch: Any) -> dict[str, Any]:
    """The spilling cases (with ``net.spill.memory_bytes`` set to :data:`SPILL_LIMIT`), and
    whether each spilled (files under ``scratch``) and removed its files on close."""
    results: dict[str, Any] = {}
    plan = plan_for(workers, 3, 2)
    for kind in ("int", "str"):
        for name in SPILL_NAMES:
            inputs = spill_inputs(name, len(plan.sources), kind)
            spilled: list[bool] = []
            before_close = _count_files(scratch, spilled)
            results[f"{name}/{kind}"] = run_case(name, flow, plan, inputs, kind, before_close)
            results[f"{name}/{kind}/files"] = (spilled, sorted(scratch.rglob("*.arrow")))
    return results


def _count_files(scratch: Any, seen: list[bool]) -> Any:
    def hook() -> None:
        seen.append(bool(list(scratch.rglob("*.arrow"))))

    return hook

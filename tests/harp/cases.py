"""Every Harp collective as a case: random tables, the SPMD body, and the single-process answer.

``make_tables`` builds each worker's input from a seed; ``run_collectives(harp, inputs)`` calls
every collective on one worker and returns its results in a comparable form; ``expected``
computes every worker's results in one process from all the inputs. The same cases run on
threads over the inproc channel (with Hypothesis) and in real jobs over tcp and mpi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from twister2.harp import Combiner, Harp, Table, combiner, modulo

COLLECTIVES = [
    "broadcast",
    "reduce",
    "allreduce",
    "allgather",
    "regroup",
    "aggregate",
    "push",
    "pull",
    "rotate",
]


def weighted(old: Any, new: Any) -> Any:
    """A combiner whose result depends on the order (so the order is tested too)."""
    return old * 0.5 + new


COMBINERS = ["sum", "min", "max", "replace", "weighted"]


def get_combiner(name: str) -> Combiner:
    return combiner(weighted, "weighted") if name == "weighted" else combiner(name)


def spread(pid: int, workers: int) -> int:
    """A partitioner other than the default."""
    return (3 * pid + 1) % workers


@dataclass
class Inputs:
    """What every worker passes to the collectives."""

    workers: int
    combiner: str
    tables: list[dict[int, Any]]
    """Each worker's table."""
    globals: list[dict[int, Any]]
    """Each worker's part of the global table of push and pull (partition ``pid`` on worker
    ``pid % workers``)."""
    root: int
    shift: int

    def table(self, worker: int) -> Table:
        return Table(get_combiner(self.combiner), self.tables[worker])

    def global_table(self, worker: int) -> Table:
        return Table(get_combiner(self.combiner), self.globals[worker])


def _data(rng: np.random.Generator, pid: int) -> Any:
    """Partition ``pid``'s data on one worker: arrays of a shape and dtype fixed by the id (so
    that equal ids combine), and a plain Python number for id 7."""
    if pid == 7:
        return int(rng.integers(-50, 50))
    shape = (pid % 3 + 1,) if pid % 2 else (2, pid % 4 + 1)
    if pid % 3 == 0:
        return rng.integers(-100, 100, size=shape)
    return rng.standard_normal(shape)


def make_inputs(
    seed: int,
    workers: int,
    present: list[list[int]] | None = None,
    combiner_name: str = "sum",
    npids: int = 9,
) -> Inputs:
    """Each worker's table has the ids in ``present[worker]`` (default: a random subset)."""
    rng = np.random.default_rng([seed, workers])
    if present is None:
        present = [
            sorted(int(p) for p in np.flatnonzero(rng.random(npids) < 0.6)) for _ in range(workers)
        ]
    tables = [{pid: _data(rng, pid) for pid in ids} for ids in present]
    everything = sorted({pid for ids in present for pid in ids} | {0, 1})
    globals_ = [
        {pid: _data(rng, pid) for pid in everything if modulo(pid, workers) == w}
        for w in range(workers)
    ]
    return Inputs(
        workers=workers,
        combiner=combiner_name,
        tables=tables,
        globals=globals_,
        root=int(rng.integers(0, workers)),
        shift=int(rng.integers(-workers, 2 * workers + 1)),
    )


def canon(value: Any) -> Any:
    """A comparable form: arrays by dtype, shape and exact bytes; tables as sorted pairs."""
    if isinstance(value, Table):
        return (value.combiner.name, tuple((p.id, canon(p.data)) for p in value))
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, float):
        return ("float", value.hex())
    return value


def run_collectives(harp: Harp, inputs: Inputs) -> dict[str, Any]:
    """Every collective on this worker, in order; results in canonical form."""
    me = harp.worker_id
    table, global_table = inputs.table(me), inputs.global_table(me)
    before = canon(table)
    out = {
        "broadcast": harp.broadcast(table if me == inputs.root else table.empty(), inputs.root),
        "reduce": harp.reduce(table, inputs.root, operation="reduce"),
        "allreduce": harp.allreduce(table, context="tests", operation="allreduce"),
        "allgather": harp.allgather(table),
        "regroup": harp.regroup(table, spread),
        "aggregate": harp.aggregate(table),
        "push": harp.push(table, global_table),
        "pull": harp.pull(global_table, table),
        "rotate": harp.rotate(table, inputs.shift),
    }
    harp.barrier(operation="end")
    assert canon(table) == before, "a collective modified its input table"
    return {name: canon(result) for name, result in out.items()}


# -- the single-process reference ----------------------------------------------------------------
def _fold(comb: Combiner, pid: int, values: list[Any]) -> Any:
    parts = [(f"from worker {i}", v) for i, v in enumerate(values)]
    return values[0] if len(values) == 1 else comb.merge(pid, parts)


def _combined(comb: Combiner, tables: list[dict[int, Any]], pids: set[int] | None = None) -> Table:
    out = Table(comb)
    every = sorted({pid for t in tables for pid in t})
    for pid in every:
        if pids is None or pid in pids:
            out[pid] = _fold(comb, pid, [t[pid] for t in tables if pid in t])
    return out


def expected(inputs: Inputs) -> list[dict[str, Any]]:
    """Every worker's results, computed in one process."""
    n, comb = inputs.workers, get_combiner(inputs.combiner)
    tables = inputs.tables
    everything = _combined(comb, tables)
    results = []
    for w in range(n):
        pushed = Table(comb, inputs.globals[w])
        for pid in sorted({pid for t in tables for pid in t if modulo(pid, n) == w}):
            values = [t[pid] for t in tables if pid in t]
            if pid in pushed:
                values.insert(0, pushed[pid])
            pushed[pid] = _fold(comb, pid, values)
        pulled = Table(comb, {pid: inputs.globals[modulo(pid, n)][pid] for pid in tables[w]})
        out = {
            "broadcast": Table(comb, tables[inputs.root]),
            "reduce": everything if w == inputs.root else Table(comb),
            "allreduce": everything,
            "allgather": everything,
            "regroup": _combined(comb, tables, {p for p in everything.ids() if spread(p, n) == w}),
            "aggregate": everything,
            "push": pushed,
            "pull": pulled,
            "rotate": Table(comb, tables[(w - inputs.shift) % n]),
        }
        results.append({name: canon(t) for name, t in out.items()})
    return results

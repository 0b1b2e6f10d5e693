"""The array tier's join: left and right Arrow tables joined on a key column at each target
(Arrow's vectorised hash join), spilling to a Grace hash join past the memory limit.

Example
-------
>>> import pyarrow as pa
>>> from twister2.net.inproc import InprocChannel
>>> from twister2.net import Dataflow, Plan
>>> (ch,) = InprocChannel.group(1)
>>> with Dataflow(ch) as flow:
...     join = ArrayJoin(flow, Plan.per_worker(1), "k", how="outer")
...     _ = join.send_left(0, pa.table({"k": [1, 2], "v": ["a", "b"]}))
...     _ = join.send_right(0, pa.table({"k": [1, 3], "v": ["x", "z"]}))
...     join.finish_left(0); join.finish_right(0)
...     joined = join.wait().result(0).sort_by("k")
>>> joined.column_names, [tuple(row.values()) for row in joined.to_pylist()]
(['k', 'v', 'v_right'], [(1, 'a', 'x'), (2, 'b', None), (3, None, 'z')])
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from twister2.net.batch.array_kernels import ArrayPartitioner, describe_schema
from twister2.net.batch.array_ops import ARROW_ERRORS, ArrayRouted
from twister2.net.batch.array_spill import MAX_BUCKETS, TableStore, hash_buckets
from twister2.net.dataflow import Dataflow
from twister2.net.plan import Plan

__all__ = ["ArrayJoin"]

_JOIN_TYPES = {
    "inner": "inner",
    "left": "left outer",
    "right": "right outer",
    "outer": "full outer",
    "full": "full outer",
}


class ArrayJoin(ArrayRouted):
    """Left and right tables joined on ``key`` at each target: inner, left, right or full outer.

    Both sides are routed by the key's hash, so equal keys meet at one target, which joins them
    with Arrow's vectorised hash join (``pyarrow.Table.join``, ``coalesce_keys``: one key
    column). Null keys match nothing (as in SQL). Non-key columns whose names clash get
    ``suffixes`` (default: ``""`` on the left, ``"_right"`` on the right). The result is one
    table per target, rows in no particular order. When a target's data spilled past the memory
    limit, both sides are cut into hash buckets on disk and joined bucket by bucket (a Grace hash
    join), the output written to IPC files and returned memory-mapped.

    ``plan`` gives the left sources and the targets, ``right_sources`` the workers of the right
    sources (default: the same as the left's). If one side sent no table at all anywhere, the
    result has that side's key only (its other columns are unknown).

    Examples
    --------
    >>> from twister2.net.inproc import InprocChannel
    >>> from twister2.net import Dataflow, Plan
    >>> (ch,) = InprocChannel.group(1)
    >>> with Dataflow(ch) as flow:
    ...     join = ArrayJoin(flow, Plan.per_worker(1), "k", how="left")
    ...     _ = join.send_left(0, pa.table({"k": [1, 2], "v": ["a", "b"]}))
    ...     _ = join.send_right(0, pa.table({"k": [1], "v": ["x"]}))
    ...     join.finish_left(0); join.finish_right(0)
    ...     join.wait().result(0).sort_by("k").to_pylist()
    [{'k': 1, 'v': 'a', 'v_right': 'x'}, {'k': 2, 'v': 'b', 'v_right': None}]
    """

    name = "array join"
    sides = 2

    def __init__(
        self,
        flow: Dataflow,
        plan: Plan,
        key: str,
        how: str = "inner",
        *,
        right_sources: tuple[int, ...] | None = None,
        partitioner: ArrayPartitioner | None = None,
        suffixes: tuple[str, str] = ("", "_right"),
    ) -> None:
        if how not in _JOIN_TYPES:
            msg = f"{self.name}: unknown how={how!r} (known: {', '.join(_JOIN_TYPES)})"
            raise ValueError(msg)
        self.how = how
        self.suffixes = suffixes
        right = right_sources if right_sources is not None else plan.sources
        self._right_open = {i for i, w in enumerate(right) if w == flow.rank}
        self._right_all = set(self._right_open)
        super().__init__(flow, plan, key, partitioner)

    def _new_stores(self) -> None:
        self._sides = [{t: self._store(t, side) for t in self._local_targets} for side in (0, 1)]
        self._outputs: dict[int, TableStore] = {}
        self._results: dict[int, pa.Table] = {}

    def _send_side(self, side: int, source: int, value: Any) -> bool:
        self._raise_error()
        for target, part in self._split(self._input(value, side)):
            self._enqueue(target, side, part)
        return True

    def send_left(self, source: int, value: Any) -> bool:
        """Route a left table's rows by key; always ``True``."""
        self._check_source(source)
        return self._send_side(0, source, value)

    def send_right(self, source: int, value: Any) -> bool:
        """Route a right table's rows by key; always ``True``."""
        self._check_right(source)
        return self._send_side(1, source, value)

    def send(self, source: int, value: Any) -> bool:
        """The same as :meth:`send_left`."""
        return self.send_left(source, value)

    def finish_left(self, source: int) -> None:
        self.finish(source)

    def finish_right(self, source: int) -> None:
        self._check_right(source)
        self._right_open.discard(source)

    def _check_right(self, source: int) -> None:
        if source not in self._right_open:
            state = "already finished" if source in self._right_all else "not hosted here"
            msg = f"{self.name} on worker {self.rank}: right source {source} is {state}"
            raise ValueError(msg)

    @property
    def sources_finished(self) -> bool:
        return not self._open_sources and not self._right_open

    def _note_schema(self, side: int, schema: pa.Schema, source: int) -> None:
        super()._note_schema(side, schema, source)
        left, right = self._schema
        assert self.key is not None
        if left is not None and right is not None:
            lk, rk = left.field(self.key).type, right.field(self.key).type
            if lk != rk:
                msg = f"the left key {self.key!r} is {lk} but the right key is {rk}"
                raise TypeError(msg)

    def _keep(self, target: int, side: int, table: pa.Table) -> None:
        self._sides[side][target].add(table)

    def _side_table(self, side: int, table: pa.Table | None) -> pa.Table | None:
        if table is not None:
            return table
        other = self._schema[1 - side]
        assert self.key is not None and other is not None
        return pa.table({self.key: pa.array([], type=other.field(self.key).type)})

    def _join(self, left: pa.Table | None, right: pa.Table | None) -> pa.Table:
        left, right = self._side_table(0, left), self._side_table(1, right)
        assert left is not None and right is not None
        try:
            out = left.join(
                right,
                keys=self.key,
                join_type=_JOIN_TYPES[self.how],
                left_suffix=self.suffixes[0] or None,
                right_suffix=self.suffixes[1] or None,
                coalesce_keys=True,
            )
        except ARROW_ERRORS as exc:
            msg = (
                f"cannot join {describe_schema(left.schema)} with "
                f"{describe_schema(right.schema)}: {exc}"
            )
            raise self._wrap(exc, msg) from exc
        names = out.column_names
        if len(set(names)) != len(names):
            clash = sorted({n for n in names if names.count(n) > 1})
            msg = f"columns {clash} clash even with suffixes {self.suffixes}: pass other suffixes"
            raise self._wrap(ValueError(msg), msg)
        return out

    def result(self, target: int) -> pa.Table:
        """The joined rows at ``target``, as one table (see the class notes on spilling)."""
        self._check_target(target)
        if all(schema is None for schema in self._schema):
            return pa.table({})
        if target not in self._results:
            left, right = self._sides[0][target], self._sides[1][target]
            if left.spilled or right.spilled:
                self._results[target] = self._grace_join(target, left, right)
            else:
                tables = [s.table() for s in (left, right)]
                self._results[target] = self._join(
                    *(t if t is not None else self._empty_side(i) for i, t in enumerate(tables))
                )
        return self._results[target]

    def _empty_side(self, side: int) -> pa.Table | None:
        schema = self._schema[side]
        return schema.empty_table() if schema is not None else None

    def _grace_join(self, target: int, left: TableStore, right: TableStore) -> pa.Table:
        assert self.key is not None
        count = min(MAX_BUCKETS, max(2, math.ceil((left.nbytes + right.nbytes) / left.limit)))
        out = self._outputs[target] = TableStore(1, left.folder, f"{left.name}-joined")
        buckets = [
            hash_buckets(s, self.key, count, "h", left.limit) if s.schema is not None else None
            for s in (left, right)
        ]
        try:
            for b in range(count):
                tables = [
                    bk.table(b) if bk is not None else self._empty_side(i)
                    for i, bk in enumerate(buckets)
                ]
                joined = self._join(*tables)
                if len(joined) or out.schema is None:
                    out.add(joined)
                for bk in buckets:
                    if bk is not None:
                        bk.remove(b)
        finally:
            for bk in buckets:
                if bk is not None:
                    bk.remove_all()
        table = out.table()
        assert table is not None
        return table

    def close(self) -> None:
        """Remove the spill files (and those of a spilled join's output)."""
        for stores in getattr(self, "_sides", []):
            for store in stores.values():
                store.close()
        for store in getattr(self, "_outputs", {}).values():
            store.close()

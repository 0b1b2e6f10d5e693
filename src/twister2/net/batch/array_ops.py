"""The array tier's routed operators: partition, keyed reduce and keyed gather of Arrow tables
(:mod:`twister2.net.batch.arrays` gives the overview), and :class:`ArrayRouted`, the part they
share with :class:`~twister2.net.batch.array_join.ArrayJoin`: splitting each sent table by key,
grouping the parts bound for one worker into messages, and checking that one operation sees one
schema (per side).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from twister2.net.batch.array_kernels import (
    Aggregations,
    ArrayPartitioner,
    compact,
    describe_schema,
    split_by_target,
    to_table,
)
from twister2.net.batch.array_spill import TableStore, sorted_batches
from twister2.net.batch.keyed import Routed
from twister2.net.dataflow import Dataflow
from twister2.net.plan import Plan

__all__ = ["BATCH_BYTES", "ArrayKeyedGather", "ArrayKeyedReduce", "ArrayPartition", "ArrayRouted"]

BATCH_BYTES = 1 << 20
"""Parts of tables bound for one worker are sent together once they reach this many bytes (or an
eighth of ``net.spill.memory_bytes``, if less)."""

ARROW_ERRORS = (pa.ArrowException, TypeError, ValueError, KeyError)
"""What Arrow kernels raise on data they cannot handle (wrapped into ``OperationError``)."""


class ArrayRouted(Routed):
    """Tables split by key and routed to targets in batches, with one schema per side.

    Subclasses say what a target keeps (``_keep``) and may change how parts for one target are
    merged before they travel (``_merge``) and the schemas the end message carries.
    """

    sides = 1

    def __init__(
        self,
        flow: Dataflow,
        plan: Plan,
        key: str | None,
        partitioner: ArrayPartitioner | None = None,
    ) -> None:
        if key is not None and (not isinstance(key, str) or not key):
            msg = f"{self.name}: the key must be a column name, got {key!r}"
            raise TypeError(msg)
        self.key = key
        self._partitioner = partitioner
        super().__init__(flow, plan)

    def _init_state(self) -> None:
        self._sent_schema: list[pa.Schema | None] = [None] * self.sides
        self._schema: list[pa.Schema | None] = [None] * self.sides
        self._outbox_bytes: dict[int, int] = {}
        self._spill_limit = int(self.flow.setting("net.spill.memory_bytes"))
        self._batch_bytes = min(BATCH_BYTES, max(1, self._spill_limit // 8))
        super()._init_state()

    # -- sending -------------------------------------------------------------------------------
    def _needed_columns(self) -> list[str]:
        return [self.key] if self.key is not None else []

    def _input(self, value: Any, side: int = 0) -> pa.Table:
        """``value`` as a table, checked for its columns and against the earlier schema."""
        try:
            table = to_table(value)
        except TypeError as exc:
            raise self._wrap(exc, str(exc)) from exc
        for column in self._needed_columns():
            if column not in table.column_names:
                msg = (
                    f"no column {column!r} in the table sent "
                    f"(its columns: {', '.join(table.column_names) or 'none'})"
                )
                raise self._wrap(KeyError(msg), msg) from None
        known = self._sent_schema[side]
        if known is None:
            self._sent_schema[side] = table.schema
        elif not known.equals(table.schema):
            msg = (
                f"tables with different schemas sent to one operation{_side(self.sides, side)}: "
                f"first {describe_schema(known)}, now {describe_schema(table.schema)}"
            )
            raise self._wrap(TypeError(msg), msg)
        return table

    def _split(self, table: pa.Table) -> list[tuple[int, pa.Table]]:
        assert self.key is not None
        try:
            return split_by_target(table, self.key, self._ntargets, self._partitioner)
        except Exception as exc:
            kind = table.schema.field(self.key).type
            msg = f"cannot route by key column {self.key!r} of type {kind}: {exc}"
            raise self._wrap(exc, msg) from exc

    def _enqueue(self, target: int, side: int, table: pa.Table) -> None:
        if len(table) == 0:
            return
        worker = self.plan.targets[target]
        self._outbox.setdefault(worker, []).append((target, side, table))
        size = self._outbox_bytes.get(worker, 0) + table.nbytes
        self._outbox_bytes[worker] = size
        if size >= self._batch_bytes:
            self._flush(worker)

    def _merge(self, side: int, tables: list[pa.Table]) -> pa.Table:
        """The parts for one target and side as one table."""
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def _flush(self, dest: int | None = None, kind: str = "data") -> None:
        for worker in [dest] if dest is not None else self._flush_order():
            parts = self._outbox.pop(worker, None)
            self._outbox_bytes.pop(worker, None)
            if not parts:
                continue
            grouped: dict[tuple[int, int], list[pa.Table]] = {}
            for target, side, table in parts:
                grouped.setdefault((target, side), []).append(table)
            payload = []
            for (target, side), tables in grouped.items():
                merged = self._merge(side, tables)
                if worker != self.rank:  # one contiguous chunk, only its own rows, to pickle
                    merged = compact(merged.combine_chunks())
                payload.append((target, (side, merged)))
            self._transmit(worker, kind, payload)

    def _end_schemas(self) -> tuple[pa.Schema | None, ...]:
        """The schemas of what this worker sent (they travel with its end message)."""
        return tuple(self._sent_schema)

    def _step(self) -> None:
        if not self.sources_finished or self._end_sent:
            return
        self._flush()
        schemas = self._end_schemas()
        for worker in self.plan.target_workers:
            self._transmit(worker, "end", schemas)
        self._end_sent = True

    # -- receiving (dispatcher thread, lock held) ----------------------------------------------
    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        if kind == "end":
            for side, schema in enumerate(payload):
                if schema is not None:
                    self._note_schema(side, schema, source)
        else:
            for _target, (side, table) in payload:
                self._note_schema(side, table.schema, source)
        super()._on_message(source, kind, payload)

    def _note_schema(self, side: int, schema: pa.Schema, source: int) -> None:
        known = self._schema[side]
        if known is None:
            self._schema[side] = schema
        elif not known.equals(schema):
            msg = (
                f"tables with different schemas reached one operation{_side(self.sides, side)}: "
                f"{describe_schema(known)} and, from worker {source}, {describe_schema(schema)}"
            )
            raise TypeError(msg)

    def _accept(self, target: int, record: Any) -> None:
        side, table = record
        self._keep(target, side, table)

    def _keep(self, target: int, side: int, table: pa.Table) -> None:
        raise NotImplementedError

    # -- targets -------------------------------------------------------------------------------
    def _store(self, target: int, side: int = 0, sample_key: str | None = None) -> TableStore:
        scratch = self.flow.scratch_dir
        return TableStore(
            self._spill_limit // max(1, len(self._local_targets) * self.sides),
            scratch / "spill" if scratch else None,
            f"{self.name.replace(' ', '-')}-t{target}-s{side}",
            sample_key=sample_key,
        )

    def _empty(self, side: int = 0) -> pa.Table:
        schema = self._schema[side]
        return schema.empty_table() if schema is not None else pa.table({})

    def close(self) -> None:
        """Remove the operation's spill files (every array operator has this method)."""


def _side(sides: int, side: int) -> str:
    return "" if sides == 1 else (" (left side)" if side == 0 else " (right side)")


class ArrayPartition(ArrayRouted):
    """Each table's rows to targets by the hash of their ``key`` column (or whole record batches
    round robin over the targets when ``key`` is ``None``).

    Parameters
    ----------
    flow : Dataflow
    plan : Plan
        The logical sources and targets.
    key : str, optional
        The key column. ``None`` deals each source's record batches round robin over the targets.
    partitioner : callable, optional
        ``partitioner(key_column, number_of_targets) -> array of target indices`` (one per row),
        instead of the key hash. Needs a ``key``.

    Examples
    --------
    >>> from twister2.net.inproc import InprocChannel
    >>> from twister2.net import Dataflow, Plan
    >>> (ch,) = InprocChannel.group(1)
    >>> with Dataflow(ch) as flow:
    ...     op = ArrayPartition(flow, Plan.spread(1, 2, 1), key="k")
    ...     _ = op.send(0, pa.table({"k": [1, 2, 3, 4], "v": [1.0, 2.0, 3.0, 4.0]}))
    ...     op.finish(0)
    ...     [op.wait().result(t).column("k").to_pylist() for t in (0, 1)]
    [[2, 4], [1, 3]]
    """

    name = "array partition"

    def __init__(
        self,
        flow: Dataflow,
        plan: Plan,
        key: str | None = None,
        partitioner: ArrayPartitioner | None = None,
    ) -> None:
        if key is None and partitioner is not None:
            msg = f"{self.name}: a partitioner needs a key column to look at"
            raise ValueError(msg)
        self._next_target = {s: s for s in plan.local_sources(flow.rank)}
        super().__init__(flow, plan, key, partitioner)

    def _new_stores(self) -> None:
        self._stores = {t: self._store(t) for t in self._local_targets}

    def send(self, source: int, value: Any) -> bool:
        """Route a table's rows; always ``True`` (parts are sent as they fill a batch)."""
        self._check_source(source)
        self._raise_error()
        table = self._input(value)
        if self.key is None:
            for batch in table.to_batches():
                target = self._next_target[source] % self._ntargets
                self._next_target[source] += 1
                self._enqueue(target, 0, pa.Table.from_batches([batch]))
        else:
            for target, part in self._split(table):
                self._enqueue(target, 0, part)
        return True

    def _keep(self, target: int, side: int, table: pa.Table) -> None:
        self._stores[target].add(table)

    def result(self, target: int) -> pa.Table:
        """Every row that reached ``target``, as one table (memory-mapped from the spill files
        for the part that spilled: valid after :meth:`close`, which only unlinks them)."""
        self._check_target(target)
        table = self._stores[target].table()
        return table if table is not None else self._empty()

    def close(self) -> None:
        """Remove the spill files."""
        for store in getattr(self, "_stores", {}).values():
            store.close()


class ArrayKeyedReduce(ArrayRouted):
    """Rows with equal keys aggregated; each key's row at the target its hash picks.

    Every table is aggregated on the sending worker first (``Table.group_by(key).aggregate``),
    partial aggregates bound for one worker are combined again before they travel, and the
    target combines what arrives. ``aggregations`` maps a column to a function or a list of them:
    ``sum``, ``min``, ``max``, ``count`` (of non-null values) and ``mean``. The result has the
    key column, then one column ``f"{column}_{function}"`` per aggregation, sorted by key (nulls
    last); see :class:`~twister2.net.batch.array_kernels.Aggregations`.
    """

    name = "array keyed reduce"

    def __init__(
        self,
        flow: Dataflow,
        plan: Plan,
        key: str,
        aggregations: Mapping[str, str | Sequence[str]],
        partitioner: ArrayPartitioner | None = None,
    ) -> None:
        self.aggregations = Aggregations.of(key, aggregations)
        super().__init__(flow, plan, key, partitioner)

    def _new_stores(self) -> None:
        self._partials: dict[int, list[pa.Table]] = {t: [] for t in self._local_targets}
        self._results: dict[int, pa.Table] = {}

    def _needed_columns(self) -> list[str]:
        return [*super()._needed_columns(), *self.aggregations.columns]

    def send(self, source: int, value: Any) -> bool:
        """Aggregate a table and route its per-key partial aggregates; always ``True``."""
        self._check_source(source)
        self._raise_error()
        table = self._input(value)
        if len(table) == 0:
            return True
        try:
            partial = self.aggregations.partial(table)
        except ARROW_ERRORS as exc:
            msg = f"cannot aggregate a table {describe_schema(table.schema)}: {exc}"
            raise self._wrap(exc, msg) from exc
        for target, part in self._split(partial):
            self._enqueue(target, 0, part)
        return True

    def _merge(self, side: int, tables: list[pa.Table]) -> pa.Table:
        return tables[0] if len(tables) == 1 else self.aggregations.combine(tables)

    def _end_schemas(self) -> tuple[pa.Schema | None, ...]:
        schema = self._sent_schema[0]
        if schema is None:
            return (None,)
        try:
            return (self.aggregations.partial(schema.empty_table()).schema,)
        except ARROW_ERRORS as exc:
            msg = f"cannot aggregate a table {describe_schema(schema)}: {exc}"
            raise self._wrap(exc, msg) from exc

    def _keep(self, target: int, side: int, table: pa.Table) -> None:
        parts = self._partials[target]
        parts.append(table)
        if len(parts) >= 64:
            self._partials[target] = [self.aggregations.combine(parts)]

    def result(self, target: int) -> pa.Table:
        """The key and its aggregates, one row per key that reached ``target``, by key."""
        self._check_target(target)
        if target not in self._results:
            parts = self._partials[target] or [self._empty()]
            if parts[0].num_columns == 0:
                return parts[0]
            try:
                out = self.aggregations.finish(self.aggregations.combine(parts))
            except ARROW_ERRORS as exc:
                raise self._wrap(exc, f"cannot combine the aggregates: {exc}") from exc
            self._results[target] = out
            self._partials[target] = []
        return self._results[target]


class ArrayKeyedGather(ArrayRouted):
    """Rows grouped by key at the target the key's hash picks, in key order.

    The result is an iterator of record batches in ``key`` order (stable for rows arriving in
    one batch, nulls last). Past the memory limit a target's rows spill as Arrow IPC files and
    come back by an external sort (key-range buckets under the limit, each sorted in memory;
    see :func:`~twister2.net.batch.array_spill.sorted_batches`), so a target's data never has to
    be in memory at once. ``sort=False`` promises only that equal keys are adjacent (this
    implementation sorts either way). :meth:`groups` yields ``(key, rows)`` per key.

    Examples
    --------
    >>> from twister2.net.inproc import InprocChannel
    >>> from twister2.net import Dataflow, Plan
    >>> (ch,) = InprocChannel.group(1)
    >>> with Dataflow(ch) as flow:
    ...     op = ArrayKeyedGather(flow, Plan.spread(1, 1, 1), "k")
    ...     _ = op.send(0, pa.table({"k": ["b", "a", "b"], "v": [1, 2, 3]}))
    ...     op.finish(0)
    ...     [(k, rows.column("v").to_pylist()) for k, rows in op.wait().groups(0)]
    [('a', [2]), ('b', [1, 3])]
    """

    name = "array keyed gather"

    def __init__(
        self,
        flow: Dataflow,
        plan: Plan,
        key: str,
        partitioner: ArrayPartitioner | None = None,
        *,
        sort: bool = True,
    ) -> None:
        self.sort = sort
        super().__init__(flow, plan, key, partitioner)

    def _new_stores(self) -> None:
        self._stores = {t: self._store(t, sample_key=self.key) for t in self._local_targets}

    def send(self, source: int, value: Any) -> bool:
        """Route a table's rows by key; always ``True``."""
        self._check_source(source)
        self._raise_error()
        for target, part in self._split(self._input(value)):
            self._enqueue(target, 0, part)
        return True

    def _keep(self, target: int, side: int, table: pa.Table) -> None:
        self._stores[target].add(table)

    def result(self, target: int) -> Iterator[pa.RecordBatch]:
        """``target``'s rows as record batches in key order (an iterator; it may be read again)."""
        self._check_target(target)
        return self._sorted(self._stores[target])

    def _sorted(self, store: TableStore) -> Iterator[pa.RecordBatch]:
        assert self.key is not None
        limit = store.limit
        try:
            yield from sorted_batches(store, self.key, limit)
        except ARROW_ERRORS as exc:
            kind = store.schema.field(self.key).type if store.schema is not None else "?"
            msg = f"keys of type {kind} in column {self.key!r} cannot be sorted: {exc}"
            raise self._wrap(exc, msg) from exc

    def table(self, target: int) -> pa.Table:
        """``target``'s rows in key order as one table (in memory)."""
        batches = list(self.result(target))
        if not batches:
            return self._empty()
        return pa.Table.from_batches(batches)

    def groups(self, target: int) -> Iterator[tuple[Any, pa.Table]]:
        """``(key, rows)`` for every key at ``target``, in key order (each group in memory)."""
        assert self.key is not None
        pending: list[pa.RecordBatch] = []
        pending_key: Any = None
        for batch in self.result(target):
            keys = batch.column(self.key)
            starts = _run_starts(keys)
            ends = [*starts[1:], len(batch)]
            for start, end in zip(starts, ends, strict=True):
                value = keys[start].as_py()
                part = batch.slice(start, end - start)
                if start == 0 and pending and _same_key(value, pending_key):
                    pending.append(part)
                    continue
                if pending:
                    yield pending_key, pa.Table.from_batches(pending)
                pending, pending_key = [part], value
        if pending:
            yield pending_key, pa.Table.from_batches(pending)

    def close(self) -> None:
        """Remove the spill files."""
        for store in getattr(self, "_stores", {}).values():
            store.close()


def _run_starts(keys: Any) -> list[int]:
    """Where each run of equal keys starts in ``keys`` (nulls equal nulls, NaN equals NaN)."""
    if len(keys) == 0:
        return []
    if pa.types.is_dictionary(keys.type):
        keys = keys.cast(keys.type.value_type)
    head, tail = keys.slice(1), keys.slice(0, len(keys) - 1)
    differ = pc.not_equal(head, tail).fill_null(False).to_numpy(zero_copy_only=False)
    nulls = keys.is_null().to_numpy(zero_copy_only=False)
    differ = differ | (nulls[1:] != nulls[:-1])
    if pa.types.is_floating(keys.type):
        nan = pc.is_nan(keys).fill_null(False).to_numpy(zero_copy_only=False)
        differ &= ~(nan[1:] & nan[:-1])
    return [0, *(np.flatnonzero(differ) + 1).tolist()]


def _same_key(a: Any, b: Any) -> bool:
    return bool(a == b or (a is None and b is None) or (a != a and b != b))

"""Directly routed batch operators: direct, partition, keyed partition, keyed reduce, keyed gather.

Each value goes straight from its source's worker to its target's worker, in batches (small
values to the same worker travel together). When a worker's sources have all finished it tells
every worker that hosts targets; a target's result is complete once every worker has said so.
Partition, keyed partition and keyed gather hold what they receive in a :class:`SpillStore`, so
data larger than ``net.spill.memory_bytes`` goes to the worker's scratch folder.

Example
-------
>>> from twister2.net.inproc import InprocChannel
>>> from twister2.net import Dataflow, Plan
>>> (ch,) = InprocChannel.group(1)
>>> with Dataflow(ch) as flow:
...     op = KeyedReduce(flow, Plan.spread(sources=2, targets=1, workers=1), "sum")
...     for s in (0, 1):
...         _ = op.send(s, ("a", 1)); _ = op.send(s, ("b", s)); op.finish(s)
...     sorted(op.wait().result(0).items())
[('a', 2), ('b', 1)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import groupby
from typing import Any

from twister2.net.dataflow import Dataflow, Operation
from twister2.net.partitioners import (
    HashPartitioner,
    Partitioner,
    RoundRobin,
    check_target,
    stable_hash,
)
from twister2.net.plan import Plan
from twister2.net.reductions import ReduceFunction, combine, resolve
from twister2.net.spill import SpillStore

__all__ = ["Direct", "KeyedGather", "KeyedPartition", "KeyedReduce", "Partition"]


class Routed(Operation):
    """Values routed to targets; results per local target once every worker has finished."""

    def _init_state(self) -> None:
        self._local_targets = self.plan.local_targets(self.rank)
        self._ends_needed = self.flow.size if self._local_targets else 0
        self._ends = 0
        self._end_sent = False
        self._complete = not self._local_targets
        self._ntargets = len(self.plan.targets)
        self._new_stores()

    def _new_stores(self) -> None:
        """Make the per-target state."""

    def _spill_store(self, target: int, key: Callable[[Any], Any] | None) -> SpillStore:
        limit = int(self.flow.setting("net.spill.memory_bytes"))
        scratch = self.flow.scratch_dir
        folder = scratch / "spill" if scratch else None
        return SpillStore(
            max(1, limit // max(1, len(self._local_targets))),
            folder,
            key=key,
            name=f"{self.name}-t{target}",
        )

    def _target_of(self, chosen: Any, value: Any) -> int:
        try:
            return check_target(chosen, self._ntargets, value)
        except (TypeError, ValueError) as exc:
            raise self._wrap(exc, str(exc)) from exc

    def _accept(self, target: int, record: Any) -> None:
        raise NotImplementedError

    def _finalize(self) -> None:
        """Every worker has finished: make the results."""

    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        if kind == "data":
            for target, record in payload:
                self._accept(target, record)
        elif kind == "end":
            self._ends += 1
            if self._ends == self._ends_needed:
                self._finalize()
                self._complete = True

    def _step(self) -> None:
        if self._end_sent:
            return
        if not self.sources_finished:
            if self._pending >= self._limit:
                self._flush()  # send() refuses values while the buffer is full: make room
            return
        self._flush_all()
        for worker in self.plan.target_workers:
            self._transmit(worker, "end", None)
        self._end_sent = True

    def _flush_all(self) -> None:
        self._flush()

    def done(self) -> bool:
        return self._end_sent and self._complete

    def _check_target(self, target: int) -> None:
        if target not in self._local_targets:
            where = self.plan.targets[target] if 0 <= target < self._ntargets else None
            msg = f"{self.name}: target {target} is on worker {where}, not on worker {self.rank}"
            raise ValueError(msg)

    def _waiting_for(self) -> str:
        if self._open_sources:
            return f"sources {sorted(self._open_sources)} have not finished"
        return f"{self._ends_needed - self._ends} workers have not finished sending"


class _Listing(Routed):
    """Targets keep every record they receive (spilling past the memory limit)."""

    _key: Callable[[Any], Any] | None = None

    def _new_stores(self) -> None:
        self._stores = {t: self._spill_store(t, self._key) for t in self._local_targets}

    def _accept(self, target: int, record: Any) -> None:
        self._stores[target].extend((record,))

    def result(self, target: int) -> Iterator[Any]:
        """The records that reached ``target`` (an iterator; it may be read again)."""
        self._check_target(target)
        return iter(self._stores[target])

    def close(self) -> None:
        """Remove any spill files."""
        for store in getattr(self, "_stores", {}).values():
            store.close()


class Direct(_Listing):
    """Source ``i``'s values to target ``i`` (one to one)."""

    name = "direct"

    def __init__(self, flow: Dataflow, plan: Plan) -> None:
        if len(plan.sources) != len(plan.targets):
            msg = (
                f"direct needs as many targets as sources, got {len(plan.sources)} sources "
                f"and {len(plan.targets)} targets"
            )
            raise ValueError(msg)
        super().__init__(flow, plan)

    def send(self, source: int, value: Any) -> bool:
        self._check_source(source)
        self._raise_error()
        return self._queue(self.plan.targets[source], (source, value))


class Partition(_Listing):
    """Each value to the target ``partitioner(value, number_of_targets)`` picks.

    The default deals each source's values round robin over the targets.
    """

    name = "partition"

    def __init__(self, flow: Dataflow, plan: Plan, partitioner: Partitioner | None = None) -> None:
        self._partitioner = partitioner
        self._round_robin = {s: RoundRobin(s) for s in plan.local_sources(flow.rank)}
        super().__init__(flow, plan)

    def _choose(self, source: int, value: Any) -> Any:
        if self._partitioner is None:
            return self._round_robin[source](value, self._ntargets)
        return self._partitioner(value, self._ntargets)

    def send(self, source: int, value: Any) -> bool:
        self._check_source(source)
        self._raise_error()
        try:
            chosen = self._choose(source, value)
        except Exception as exc:
            raise self._wrap(exc, f"the partitioner raised {type(exc).__name__}: {exc}") from exc
        target = self._target_of(chosen, value)
        return self._queue(self.plan.targets[target], (target, value))


def _pair(record: Any, name: str) -> tuple[Any, Any]:
    if not isinstance(record, tuple) or len(record) != 2:
        msg = f"{name} sends (key, value) pairs, got a {type(record).__qualname__}"
        raise TypeError(msg)
    return record


class KeyedPartition(Partition):
    """``(key, value)`` pairs routed by key: ``partitioner(key, number_of_targets)``."""

    name = "keyed partition"

    def __init__(self, flow: Dataflow, plan: Plan, partitioner: Partitioner | None = None) -> None:
        super().__init__(flow, plan, partitioner or HashPartitioner())

    def _choose(self, source: int, value: Any) -> Any:
        key, _ = _pair(value, self.name)
        assert self._partitioner is not None
        return self._partitioner(key, self._ntargets)


class KeyedGather(KeyedPartition):
    """Values grouped by key at their target: ``(key, [values])``; optionally in key order.

    ``sort=True`` orders groups by key (``sort_key(key)`` when given). Past the memory limit,
    records spill to disk in sorted runs and are merged back (an external merge sort).
    """

    name = "keyed gather"

    def __init__(
        self,
        flow: Dataflow,
        plan: Plan,
        partitioner: Partitioner | None = None,
        *,
        sort: bool = False,
        sort_key: Callable[[Any], Any] | None = None,
    ) -> None:
        self.sort = sort or sort_key is not None
        self.sort_key = sort_key
        super().__init__(flow, plan, partitioner)

    def _new_stores(self) -> None:
        if self.sort:
            by = self.sort_key
            self._key = (lambda r: by(r[0])) if by is not None else (lambda r: r[0])
        else:
            self._key = lambda r: stable_hash(r[0])
        super()._new_stores()

    def result(self, target: int) -> Iterator[tuple[Any, list[Any]]]:  # type: ignore[override]
        """``(key, [values])`` groups at ``target``: in key order with ``sort``."""
        self._check_target(target)
        if self.sort:
            try:
                records = iter(self._stores[target])
                for key, group in groupby(records, key=lambda r: r[0]):
                    yield key, [v for _, v in group]
            except TypeError as exc:  # from sorting or merging keys
                what = f"the keys at target {target} cannot be compared for sorting: {exc}"
                raise self._wrap(exc, what) from exc
            return
        records = iter(self._stores[target])
        for _, same_hash in groupby(records, key=lambda r: stable_hash(r[0])):
            groups: dict[Any, list[Any]] = {}
            for key, value in same_hash:
                groups.setdefault(key, []).append(value)
            yield from groups.items()


class KeyedReduce(Routed):
    """Values with equal keys combined; each key's total at the target its partitioner picks.

    Values are combined on the sending worker first, so only one value per key and target
    travels per batch.
    """

    name = "keyed reduce"

    def __init__(
        self,
        flow: Dataflow,
        plan: Plan,
        fn: str | ReduceFunction = "sum",
        partitioner: Partitioner | None = None,
    ) -> None:
        self.fn = resolve(fn)
        self._partitioner = partitioner or HashPartitioner()
        super().__init__(flow, plan)

    def _new_stores(self) -> None:
        self._combined: dict[int, dict[tuple[int, Any], Any]] = {}
        self._tables: dict[int, dict[Any, Any]] = {t: {} for t in self._local_targets}

    def send(self, source: int, value: Any) -> bool:
        self._check_source(source)
        self._raise_error()
        key, item = _pair(value, self.name)
        try:
            chosen = self._partitioner(key, self._ntargets)
        except Exception as exc:
            raise self._wrap(exc, f"the partitioner raised {type(exc).__name__}: {exc}") from exc
        target = self._target_of(chosen, value)
        worker = self.plan.targets[target]
        table = self._combined.setdefault(worker, {})
        slot = (target, key)
        try:
            table[slot] = combine(self.fn, table[slot], item) if slot in table else _copy(item)
        except Exception as exc:
            kind = type(item).__qualname__
            msg = f"{type(exc).__name__}: {exc} (key {key!r}, value of type {kind})"
            raise self._wrap(exc, msg) from exc
        if len(table) >= self._batch:
            self._send_combined(worker)
        return True

    def _send_combined(self, worker: int) -> None:
        table = self._combined.pop(worker, None)
        if table:
            self._transmit(worker, "data", [(t, (k, v)) for (t, k), v in table.items()])

    def _flush_all(self) -> None:
        for worker in list(self._combined):
            self._send_combined(worker)

    def _accept(self, target: int, record: Any) -> None:
        key, value = record
        table = self._tables[target]
        try:
            table[key] = combine(self.fn, table[key], value) if key in table else value
        except Exception as exc:
            kind = type(value).__qualname__
            msg = f"{type(exc).__name__}: {exc} (key {key!r}, value of type {kind})"
            raise self._wrap(exc, msg) from exc

    def result(self, target: int) -> dict[Any, Any]:
        """``{key: combined value}`` at ``target``."""
        self._check_target(target)
        return self._tables[target]


def _copy(value: Any) -> Any:
    copy = getattr(value, "copy", None)
    return copy() if callable(copy) and hasattr(value, "dtype") else value

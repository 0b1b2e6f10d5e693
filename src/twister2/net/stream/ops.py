"""Twister2:Net streaming operators.

- partition, keyed partition, direct and broadcast deliver each value as soon as it arrives;
- reduce and gather combine the *i*-th value of every source into one result (first on each
  worker for its own sources, then at the target's worker), allreduce and allgather then send
  that result to every target;
- keyed reduce keeps a running total per key and delivers ``(key, total)`` each time a key is
  updated (values of one key in one batch are combined first); keyed gather delivers
  ``(key, [values])`` groups as batches arrive.

Example
-------
>>> from twister2.net.inproc import InprocChannel
>>> from twister2.net import Dataflow, Plan
>>> (ch,) = InprocChannel.group(1)
>>> with Dataflow(ch) as flow:
...     op = StreamReduce(flow, Plan.spread(sources=2, targets=1, workers=1), "sum")
...     for i in range(3):
...         _ = op.send(0, i); _ = op.send(1, 10 * i)
...     op.finish(0); op.finish(1)
...     [op.receive(0, timeout=10) for _ in range(4)]
[0, 11, 22, END]
"""

from __future__ import annotations

import operator
import sys
from collections import deque
from collections.abc import Iterable
from itertools import compress
from typing import Any

from twister2.net.batch.tree import _own
from twister2.net.dataflow import Dataflow
from twister2.net.partitioners import HashPartitioner, Partitioner, check_target, stable_hash
from twister2.net.plan import Plan
from twister2.net.reductions import ReduceFunction, _Builtin, combine, resolve
from twister2.net.stream.base import END, Run, StreamOperation, pump_of

__all__ = [
    "END",
    "StreamAllGather",
    "StreamAllReduce",
    "StreamBroadcast",
    "StreamDirect",
    "StreamGather",
    "StreamKeyedGather",
    "StreamKeyedPartition",
    "StreamKeyedReduce",
    "StreamPartition",
    "StreamReduce",
]


class StreamPartition(StreamOperation):
    """Each value to the target ``partitioner(value, targets)`` picks (default: round robin,
    each source dealing its values to the targets in turn from target ``source``)."""

    name = "stream partition"

    def __init__(self, flow: Dataflow, plan: Plan, partitioner: Partitioner | None = None) -> None:
        self._partitioner = partitioner
        self._next = {s: s for s in plan.local_sources(flow.rank)}
        super().__init__(flow, plan)

    def _call_partitioner(self, partitioner: Partitioner, value: Any, of: Any) -> int:
        n = len(self.plan.targets)
        try:
            chosen = partitioner(value, n)
        except Exception as exc:
            raise self._wrap(exc, f"the partitioner raised {type(exc).__name__}: {exc}") from exc
        try:
            return check_target(chosen, n, of)
        except (TypeError, ValueError) as exc:
            raise self._wrap(exc, str(exc)) from exc

    def _choose(self, source: int, value: Any) -> int:
        """The target of one value (called only with the value taken: round robin advances)."""
        if self._partitioner is None:
            k = self._next[source]
            self._next[source] = k + 1
            return k % len(self.plan.targets)
        return self._call_partitioner(self._partitioner, value, value)

    def send(self, source: int, value: Any) -> bool:
        """Stream ``value`` from ``source``; ``False``: the send buffer is full, send it again."""
        self._check_source(source)
        if self._partitioner is not None:
            target = self._choose(source, value)
            return self._enqueue(self.plan.targets[target], target, value)
        with self._cond:  # round robin: the turn passes only when the value is taken
            if self._error is not None:
                self._raise_error()
            if self._pending >= self._limit:
                self._pump_ref.wake()
                return False
            target = self._choose(source, value)
            wake = self._put_one(self.plan.targets[target], target, value)
        if wake:
            self._pump_ref.wake()
        return True

    def send_many(self, source: int, values: Iterable[Any]) -> int:
        """Stream the first values of ``values`` from ``source``, as many as the send buffer
        takes, routed in one step: the number taken (``0``: full, send them again later)."""
        self._check_source(source)
        items = values if isinstance(values, list) else list(values)
        with self._cond:
            self._raise_error()
            count = self._room(len(items))
            if count == 0:
                self._pump_ref.wake()
                return 0
            runs = self._route(source, items[:count])
            wake = False
            where = self.plan.targets
            for target, part in runs:
                wake = self._put(where[target], target, part) or wake
        if wake:
            self._pump_ref.wake()
        return count

    def _route(self, source: int, values: list[Any]) -> list[tuple[int, list[Any]]]:
        """``values`` split by target, each part in the order sent (lock held)."""
        n = len(self.plan.targets)
        if self._partitioner is None:
            start = self._next[source]
            self._next[source] = start + len(values)
            parts = [(t, values[(t - start) % n :: n]) for t in range(n)]
            return [(t, part) for t, part in parts if part]
        return _group(values, [self._choose(source, v) for v in values])


_first, _second = operator.itemgetter(0), operator.itemgetter(1)


def _group(values: list[Any], targets: list[int]) -> list[tuple[int, list[Any]]]:
    """``values`` split by their targets, each part in order."""
    distinct = set(targets)
    if len(distinct) <= 8:  # a few passes in C beat one in Python
        return [(t, list(compress(values, map(t.__eq__, targets)))) for t in sorted(distinct)]
    runs: dict[int, list[Any]] = {}
    for value, target in zip(values, targets, strict=True):
        run = runs.get(target)
        if run is None:
            runs[target] = [value]
        else:
            run.append(value)
    return list(runs.items())


def _scalar_form(fn: ReduceFunction) -> ReduceFunction | None:
    """The plain two-value function of a built-in reduction (SUM: ``a + b``), None for others."""
    return fn.scalar if isinstance(fn, _Builtin) else None


_CACHED_KEYS = (str, int, bytes, float, bool)
"""Key types whose target the default hash partitioner caches (keys equal under ``==`` have one
stable hash, so a cache hit on an equal key of another type is still the key's own target)."""
_CACHE_LIMIT = 1 << 16


class StreamKeyedPartition(StreamPartition):
    """``(key, value)`` pairs routed by key (default: the stable hash of the key)."""

    name = "stream keyed partition"

    def __init__(self, flow: Dataflow, plan: Plan, partitioner: Partitioner | None = None) -> None:
        self._cache: dict[Any, int] | None = {} if partitioner is None else None
        super().__init__(flow, plan, partitioner or HashPartitioner())

    def _choose(self, source: int, value: Any) -> int:
        if not isinstance(value, tuple) or len(value) != 2:
            msg = f"{self.name} sends (key, value) pairs, got a {type(value).__qualname__}"
            raise self._wrap(TypeError(msg), msg)
        key = value[0]
        cache = self._cache
        if cache is not None and type(key) in _CACHED_KEYS:
            target = cache.get(key)
            if target is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                target = cache[key] = stable_hash(key) % len(self.plan.targets)
            return target
        assert self._partitioner is not None
        return self._call_partitioner(self._partitioner, key, value)

    def _route(self, source: int, values: list[Any]) -> list[tuple[int, list[Any]]]:
        cache = self._cache
        kinds = set(map(type, values))
        pairs = all(issubclass(k, tuple) for k in kinds) and set(map(len, values)) == {2}
        if cache is None or not pairs:
            return super()._route(source, values)  # (which names a value that is no pair)
        # the targets of cached keys looked up in one pass, the others chosen one by one
        keys = list(map(_first, values))
        try:
            found = list(map(cache.get, keys))
        except TypeError:  # an unhashable key
            return super()._route(source, values)
        targets = [
            self._choose(source, v) if t is None or type(k) not in _CACHED_KEYS else t
            for v, k, t in zip(values, keys, found, strict=True)
        ]
        return _group(values, targets)


class StreamDirect(StreamOperation):
    """Source ``i``'s values to target ``i``."""

    name = "stream direct"

    def __init__(self, flow: Dataflow, plan: Plan) -> None:
        if len(plan.sources) != len(plan.targets):
            msg = "stream direct needs as many targets as sources"
            raise ValueError(msg)
        super().__init__(flow, plan)

    def send(self, source: int, value: Any) -> bool:
        self._check_source(source)
        return self._enqueue(self.plan.targets[source], source, value)

    def send_many(self, source: int, values: Iterable[Any]) -> int:
        self._check_source(source)
        items = values if isinstance(values, list) else list(values)
        with self._cond:
            self._raise_error()
            count = self._room(len(items))
            wake = count > 0 and self._put(self.plan.targets[source], source, items[:count])
        if wake or count == 0:
            self._pump_ref.wake()
        return count


class StreamBroadcast(StreamOperation):
    """One source's values to every target."""

    name = "stream broadcast"

    def __init__(self, flow: Dataflow, plan: Plan, source: int = 0) -> None:
        self.source = source
        super().__init__(flow, plan)

    def _init_state(self) -> None:
        super()._init_state()
        self._open_sources &= {self.source}
        self._all_sources &= {self.source}
        self._senders = [self.plan.sources[self.source]]

    def send(self, source: int, value: Any) -> bool:
        self._check_source(source)
        return self._enqueue_all(self.plan.target_workers, -1, value)

    def send_many(self, source: int, values: Iterable[Any]) -> int:
        self._check_source(source)
        items = values if isinstance(values, list) else list(values)
        dests = self.plan.target_workers
        with self._cond:
            self._raise_error()
            count = self._room(len(items), len(dests))
            wake = False
            for dest in dests if count else []:
                wake = self._put(dest, -1, items[:count]) or wake
        if wake or count == 0:
            self._pump_ref.wake()
        return count

    def _absorb(self, sender: int, batch: list[Run]) -> None:
        for _, values in batch:
            for target in self._outputs:
                self._emit_many(target, values)


class StreamKeyedReduce(StreamKeyedPartition):
    """A running total per key; ``(key, total)`` is delivered each time the key is updated
    (values of one key in one received batch are combined first)."""

    name = "stream keyed reduce"

    def __init__(
        self,
        flow: Dataflow,
        plan: Plan,
        fn: str | ReduceFunction = "sum",
        partitioner: Partitioner | None = None,
    ) -> None:
        self.fn = resolve(fn)
        super().__init__(flow, plan, partitioner)

    def _init_state(self) -> None:
        super()._init_state()
        self._totals: dict[int, dict[Any, Any]] = {t: {} for t in self._outputs}
        self._scalar: ReduceFunction | None = _scalar_form(self.fn)
        self._arrays: set[int] = set()  # targets that have seen NumPy arrays

    def _absorb(self, sender: int, batch: list[Run]) -> None:
        if self._scalar is not None:
            np = sys.modules.get("numpy")
            ndarray: Any = np.ndarray if np is not None else ()
            for target, pairs in batch:
                if target not in self._arrays:
                    kinds = set(map(type, map(_second, pairs)))
                    if not any(issubclass(kind, ndarray) for kind in kinds):
                        self._absorb_scalars(target, pairs, self._scalar)
                        continue
                    self._arrays.add(target)
                self._absorb_any(target, pairs)
        else:
            for target, pairs in batch:
                self._absorb_any(target, pairs)

    def _absorb_scalars(self, target: int, pairs: list[Any], fn: ReduceFunction) -> None:
        """A built-in reduction of plain values (no arrays: nothing to copy or update in place)."""
        combined: dict[Any, Any] = {}
        for key, value in pairs:
            combined[key] = fn(combined[key], value) if key in combined else value
        totals = self._totals[target]
        updates = []
        for key, value in combined.items():
            total = fn(totals[key], value) if key in totals else value
            totals[key] = total
            updates.append((key, total))
        self._emit_many(target, updates)

    def _absorb_any(self, target: int, pairs: list[Any]) -> None:
        fn = self.fn
        combined: dict[Any, Any] = {}
        for key, value in pairs:
            if key in combined:
                combined[key] = combine(fn, combined[key], value)
            else:
                combined[key] = _own(value)
        totals = self._totals[target]
        updates = []
        for key, value in combined.items():
            total = combine(fn, totals[key], value) if key in totals else value
            totals[key] = total
            updates.append((key, _own(total)))  # the running total may change in place
        self._emit_many(target, updates)


class StreamKeyedGather(StreamKeyedPartition):
    """``(key, [values])`` groups, one per key in each received batch, in arrival order."""

    name = "stream keyed gather"

    def _absorb(self, sender: int, batch: list[Run]) -> None:
        for target, pairs in batch:
            groups: dict[Any, list[Any]] = {}
            for key, value in pairs:
                group = groups.get(key)
                if group is None:
                    groups[key] = [value]
                else:
                    group.append(value)
            self._emit_many(target, list(groups.items()))


class StreamReduce(StreamOperation):
    """The *i*-th values of every source combined into the *i*-th result at one target."""

    name = "stream reduce"

    def __init__(
        self, flow: Dataflow, plan: Plan, fn: str | ReduceFunction = "sum", target: int = 0
    ) -> None:
        self.fn = resolve(fn)
        self.target = target
        super().__init__(flow, plan)

    def _init_state(self) -> None:
        super()._init_state()
        self._receivers = [self.plan.targets[self.target]]
        self._local_queues: dict[int, deque[Any]] = {
            s: deque() for s in self.plan.local_sources(self.rank)
        }
        self._partials: dict[int, deque[Any]] = {w: deque() for w in set(self.plan.sources)}

    def _combine_all(self, values: list[Any]) -> Any:
        acc = _own(values[0])
        for value in values[1:]:
            acc = combine(self.fn, acc, value)
        return acc

    def send(self, source: int, value: Any) -> bool:
        self._check_source(source)
        with self._cond:
            queues = self._local_queues.values()
            # a source far ahead of another local one waits; the one behind never does
            if self._pending >= self._limit or len(self._local_queues[source]) >= self._limit:
                self._pump_ref.wake()
                return False
            self._local_queues[source].append(value)
            if not all(queues):
                return True
            try:
                partial = self._combine_all([q.popleft() for q in self._local_queues.values()])
            except Exception as exc:
                raise self._wrap(
                    exc, f"{type(exc).__name__}: {exc} (value of type {type(value).__qualname__})"
                ) from exc
        self._enqueue_all([self.plan.targets[self.target]], self.target, partial, force=True)
        return True

    def _can_absorb(self, sender: int) -> bool:
        # a worker ahead of the others waits (for credit) rather than pile up partial results
        return len(self._partials[sender]) < self._out_limit

    def _absorb(self, sender: int, batch: list[Run]) -> None:
        partials = self._partials[sender]
        for _, values in batch:
            partials.extend(values)
        queues = list(self._partials.values())
        while all(queues):
            self._emit(self.target, self._combine_all([q.popleft() for q in queues]))


class StreamGather(StreamReduce):
    """The *i*-th values of every source collected as ``[(source, value), ...]`` at one target."""

    name = "stream gather"

    def __init__(self, flow: Dataflow, plan: Plan, target: int = 0) -> None:
        super().__init__(flow, plan, _concat, target)

    def send(self, source: int, value: Any) -> bool:
        return super().send(source, [(source, value)])

    def _combine_all(self, values: list[Any]) -> Any:
        return sorted((pair for part in values for pair in part), key=lambda p: p[0])


def _concat(a: list[Any], b: list[Any]) -> list[Any]:
    return a + b


class _All:
    """Reduce (or gather) to target 0's worker, then broadcast each result to every target."""

    name = "stream all"

    def __init__(self, up: StreamReduce, flow: Dataflow, plan: Plan) -> None:
        root = plan.targets[0]
        self._up = up
        self._down = StreamBroadcast(flow, Plan((root,), plan.targets, plan.workers), source=0)
        up.name = self._down.name = self.name  # errors name the operator the user made
        self._root = root
        self._backlog: deque[Any] = deque()
        self._relay_failed = False
        self.rank = flow.rank
        self.plan = plan
        if self.rank == root:
            pump_of(flow).relays.append(self._relay)

    def _relay(self) -> bool:
        """At the root (in the pump thread): results of the way up go down, in order.
        ``True`` while there is more it could move right away."""
        if self._relay_failed:
            return False
        try:
            if len(self._backlog) < self._down._limit:
                self._backlog.extend(self._up.poll(0))
            moved = False
            if self._backlog:
                taken = self._down.send_many(0, list(self._backlog))
                for _ in range(taken):
                    self._backlog.popleft()
                moved = taken > 0
            if not self._backlog and self._up.ended(0) and 0 in self._down._open_sources:
                self._down.finish(0)
                moved = True
        except Exception as exc:  # the way up failed: the targets hear of it from the way down
            self._relay_failed = True
            self._down._set_error(exc)
            return False
        return moved

    def _check(self) -> None:
        """Raise the way up's error on this worker (a failing reduce function...)."""
        self._up._raise_error()

    def send(self, source: int, value: Any) -> bool:
        return self._up.send(source, value)

    def send_many(self, source: int, values: Iterable[Any]) -> int:
        return self._up.send_many(source, values)

    def finish(self, source: int) -> None:
        self._up.finish(source)

    def receive(self, target: int, timeout: float | None = None) -> Any:
        self._check()
        return self._down.receive(target, timeout)

    def poll(self, target: int) -> list[Any]:
        self._check()
        return self._down.poll(target)

    def ended(self, target: int) -> bool:
        self._check()
        return self._down.ended(target)

    def wait(self, timeout: float | None = None) -> _All:
        self._up.wait(timeout)
        self._down.wait(timeout)
        return self

    def close(self) -> None:
        self._up.close()
        self._down.close()


class StreamAllReduce(_All):
    """The *i*-th values of every source combined, delivered to every target."""

    name = "stream allreduce"

    def __init__(self, flow: Dataflow, plan: Plan, fn: str | ReduceFunction = "sum") -> None:
        super().__init__(StreamReduce(flow, plan, fn, target=0), flow, plan)


class StreamAllGather(_All):
    """The *i*-th values of every source gathered, delivered to every target."""

    name = "stream allgather"

    def __init__(self, flow: Dataflow, plan: Plan) -> None:
        super().__init__(StreamGather(flow, plan, target=0), flow, plan)

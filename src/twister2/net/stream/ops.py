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

from collections import deque
from typing import Any

from twister2.net.batch.tree import _own
from twister2.net.dataflow import Dataflow
from twister2.net.partitioners import HashPartitioner, Partitioner, RoundRobin
from twister2.net.plan import Plan
from twister2.net.reductions import ReduceFunction, combine, resolve
from twister2.net.stream.base import END, StreamOperation, pump_of

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
    """Each value to the target ``partitioner(value, targets)`` picks (default: round robin)."""

    name = "stream partition"

    def __init__(self, flow: Dataflow, plan: Plan, partitioner: Partitioner | None = None) -> None:
        self._partitioner = partitioner
        self._round_robin = {s: RoundRobin(s) for s in plan.local_sources(flow.rank)}
        super().__init__(flow, plan)

    def _choose(self, source: int, value: Any) -> int:
        n = len(self.plan.targets)
        if self._partitioner is None:
            return self._round_robin[source](value, n)
        try:
            chosen = self._partitioner(value, n)
        except Exception as exc:
            raise self._wrap(exc, f"the partitioner raised {type(exc).__name__}: {exc}") from exc
        if isinstance(chosen, bool) or not isinstance(chosen, int) or not 0 <= chosen < n:
            msg = (
                f"the partitioner returned {chosen!r} for a value of type "
                f"{type(value).__qualname__}, but the targets are 0..{n - 1}"
            )
            raise self._wrap(ValueError(msg), msg)
        return chosen

    def send(self, source: int, value: Any) -> bool:
        """Stream ``value`` from ``source``; ``False``: the send buffer is full, send it again."""
        self._check_source(source)
        target = self._choose(source, value)
        return self._enqueue(self.plan.targets[target], (target, value))


class StreamKeyedPartition(StreamPartition):
    """``(key, value)`` pairs routed by key."""

    name = "stream keyed partition"

    def __init__(self, flow: Dataflow, plan: Plan, partitioner: Partitioner | None = None) -> None:
        super().__init__(flow, plan, partitioner or HashPartitioner())

    def _choose(self, source: int, value: Any) -> int:
        if not isinstance(value, tuple) or len(value) != 2:
            msg = f"{self.name} sends (key, value) pairs, got a {type(value).__qualname__}"
            raise self._wrap(TypeError(msg), msg)
        return super()._choose(source, value[0])


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
        return self._enqueue(self.plan.targets[source], (source, value))


class StreamBroadcast(StreamOperation):
    """One source's values to every target."""

    name = "stream broadcast"

    def __init__(self, flow: Dataflow, plan: Plan, source: int = 0) -> None:
        self.source = source
        super().__init__(flow, plan)
        self._open_sources &= {source}
        self._all_sources &= {source}
        self._senders = [plan.sources[source]]

    def send(self, source: int, value: Any) -> bool:
        self._check_source(source)
        return self._enqueue_all(self.plan.target_workers, (-1, value))

    def _absorb(self, sender: int, batch: list[Any]) -> None:
        for _, value in batch:
            for target in self._outputs:
                self._emit(target, value)


class StreamKeyedReduce(StreamPartition):
    """A running total per key; ``(key, total)`` is delivered each time the key is updated."""

    name = "stream keyed reduce"

    def __init__(
        self,
        flow: Dataflow,
        plan: Plan,
        fn: str | ReduceFunction = "sum",
        partitioner: Partitioner | None = None,
    ) -> None:
        self.fn = resolve(fn)
        super().__init__(flow, plan, partitioner or HashPartitioner())
        self._totals: dict[int, dict[Any, Any]] = {t: {} for t in self._outputs}

    def _choose(self, source: int, value: Any) -> int:
        if not isinstance(value, tuple) or len(value) != 2:
            msg = f"{self.name} sends (key, value) pairs, got a {type(value).__qualname__}"
            raise self._wrap(TypeError(msg), msg)
        return super()._choose(source, value[0])

    def _absorb(self, sender: int, batch: list[Any]) -> None:
        combined: dict[tuple[int, Any], Any] = {}
        for target, (key, value) in batch:
            slot = (target, key)
            combined[slot] = (
                combine(self.fn, combined[slot], value) if slot in combined else (_own(value))
            )
        for (target, key), value in combined.items():
            totals = self._totals[target]
            totals[key] = combine(self.fn, totals[key], value) if key in totals else value
            self._emit(target, (key, totals[key]))


class StreamKeyedGather(StreamKeyedPartition):
    """``(key, [values])`` groups, one per key in each received batch, in arrival order."""

    name = "stream keyed gather"

    def _absorb(self, sender: int, batch: list[Any]) -> None:
        groups: dict[tuple[int, Any], list[Any]] = {}
        for target, (key, value) in batch:
            groups.setdefault((target, key), []).append(value)
        for (target, key), values in groups.items():
            self._emit(target, (key, values))


class StreamReduce(StreamOperation):
    """The *i*-th values of every source combined into the *i*-th result at one target."""

    name = "stream reduce"

    def __init__(
        self, flow: Dataflow, plan: Plan, fn: str | ReduceFunction = "sum", target: int = 0
    ) -> None:
        self.fn = resolve(fn)
        self.target = target
        super().__init__(flow, plan)
        self._receivers = [plan.targets[target]]

    def _init_state(self) -> None:
        super()._init_state()
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
            if self._pending >= self._limit or sum(len(q) for q in queues) >= self._limit:
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
        self._enqueue_all([self.plan.targets[self.target]], (self.target, partial), force=True)
        return True

    def _absorb(self, sender: int, batch: list[Any]) -> None:
        self._partials[sender].extend(value for _, value in batch)
        while all(self._partials.values()):
            self._emit(
                self.target, self._combine_all([q.popleft() for q in self._partials.values()])
            )


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

    def __init__(self, up: StreamReduce, flow: Dataflow, plan: Plan) -> None:
        root = plan.targets[0]
        self._up = up
        self._down = StreamBroadcast(flow, Plan((root,), plan.targets, plan.workers), source=0)
        self._root = root
        self._backlog: deque[Any] = deque()
        self.rank = flow.rank
        self.plan = plan
        if self.rank == root:
            pump_of(flow).relays.append(self._relay)

    def _relay(self) -> bool:
        """At the root (in the pump thread): results of the way up go down, in order.
        ``True`` while there is more it could move right away."""
        if len(self._backlog) < self._down._limit:
            self._backlog.extend(self._up.poll(0))
        moved = False
        while self._backlog and self._down.send(0, self._backlog[0]):
            self._backlog.popleft()
            moved = True
        if not self._backlog and self._up.ended(0) and 0 in self._down._open_sources:
            self._down.finish(0)
            moved = True
        return moved

    def send(self, source: int, value: Any) -> bool:
        return self._up.send(source, value)

    def finish(self, source: int) -> None:
        self._up.finish(source)

    def receive(self, target: int, timeout: float | None = None) -> Any:
        return self._down.receive(target, timeout)

    def poll(self, target: int) -> list[Any]:
        return self._down.poll(target)

    def ended(self, target: int) -> bool:
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

    def __init__(self, flow: Dataflow, plan: Plan, fn: str | ReduceFunction = "sum") -> None:
        super().__init__(StreamReduce(flow, plan, fn, target=0), flow, plan)


class StreamAllGather(_All):
    """The *i*-th values of every source gathered, delivered to every target."""

    def __init__(self, flow: Dataflow, plan: Plan) -> None:
        super().__init__(StreamGather(flow, plan, target=0), flow, plan)

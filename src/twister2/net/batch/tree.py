"""Tree-routed batch operators: reduce, gather, broadcast, allreduce and allgather.

Reduce and gather flow up an inverted tree of workers (degree ``net.tree_degree``, default 2)
rooted at the target's worker, combining (reduce) or concatenating (gather) at every hop;
broadcast flows down the same kind of tree from the source's worker. Allreduce and allgather go
up to a root and back down.

Example
-------
>>> from twister2.net.inproc import InprocChannel
>>> from twister2.net import Dataflow, Plan
>>> (ch,) = InprocChannel.group(1)
>>> with Dataflow(ch) as flow:
...     op = Gather(flow, Plan.spread(sources=2, targets=1, workers=1))
...     _ = op.send(1, "b"); _ = op.send(0, "a"); op.finish(0); op.finish(1)
...     op.wait().result()
[(0, 'a'), (1, 'b')]
"""

from __future__ import annotations

from typing import Any

from twister2.net.dataflow import Dataflow, Operation
from twister2.net.plan import Plan
from twister2.net.reductions import (
    MAX,
    MIN,
    PRODUCT,
    SUM,
    ReduceFunction,
    _is_array,
    combine,
    resolve,
)

_BUILTINS = (SUM, MIN, MAX, PRODUCT)

__all__ = ["AllGather", "AllReduce", "Broadcast", "Gather", "Reduce", "tree_links"]


def tree_links(rank: int, root: int, workers: int, degree: int) -> tuple[int | None, list[int]]:
    """``(parent, children)`` of ``rank`` in a ``degree``-ary tree of workers rooted at ``root``.

    >>> tree_links(0, 0, 5, 2), tree_links(1, 0, 5, 2), tree_links(4, 0, 5, 2)
    ((None, [1, 2]), (0, [3, 4]), (1, []))
    >>> tree_links(2, 2, 3, 2)
    (None, [0, 1])
    """
    v = (rank - root) % workers
    parent = None if v == 0 else ((v - 1) // degree + root) % workers
    first = degree * v + 1
    children = [(c + root) % workers for c in range(first, min(first + degree, workers))]
    return parent, children


def _own(value: Any) -> Any:
    """A copy of a NumPy array the caller owns, so in-place combining never touches user data."""
    return value.copy() if _is_array(value) else value


class _Up(Operation):
    """Up a tree toward ``root``: local sources and children first, then the parent."""

    def __init__(self, flow: Dataflow, plan: Plan, root: int) -> None:
        degree = int(flow.setting("net.tree_degree"))
        if degree < 1:
            msg = f"net.tree_degree must be at least 1, got {degree}"
            raise ValueError(msg)
        self.root = root
        self.parent, self.children = tree_links(flow.rank, root, flow.size, degree)
        super().__init__(flow, plan)

    def _init_state(self) -> None:
        self._waiting_children = set(self.children)
        self._sent_up = False

    def _ready_to_send_up(self) -> bool:
        return self.sources_finished and not self._waiting_children and not self._sent_up


class Reduce(_Up):
    """All sources' values combined into one value at one target.

    ``fn`` is ``"sum"``, ``"min"``, ``"max"``, ``"product"`` (element-wise on NumPy arrays) or
    a function of two values. With no values at all, the result is ``None``.
    """

    name = "reduce"

    def __init__(
        self, flow: Dataflow, plan: Plan, fn: str | ReduceFunction = "sum", target: int = 0
    ) -> None:
        self.fn = resolve(fn)
        self.target = target
        super().__init__(flow, plan, plan.targets[target])

    def _init_state(self) -> None:
        super()._init_state()
        self._has = False
        self._acc: Any = None
        self._acc_owned = False
        self._result: Any = None
        self._complete = False

    def _fold(self, value: Any, owned: bool) -> None:
        if not self._has:
            # a built-in function keeps the first value as it is, and its first combine makes
            # a new value (one pass instead of a copy and an in-place add); a user's function
            # may change its first argument, so it gets a copy
            if not owned and self.fn not in _BUILTINS:
                value, owned = _own(value), True
            self._acc, self._has, self._acc_owned = value, True, owned
        elif self._acc_owned:
            self._acc = combine(self.fn, self._acc, value)
        else:
            self._acc, self._acc_owned = self.fn(self._acc, value), True

    def send(self, source: int, value: Any) -> bool:
        """Contribute ``value`` from ``source``; reduce keeps one value, so it never pushes back."""
        self._check_source(source)
        self._raise_error()
        with self._cond:
            try:
                self._fold(value, owned=False)
            except Exception as exc:
                raise self._fold_error(exc, value, f"source {source}") from exc
        return True

    def _fold_error(self, exc: Exception, value: Any, origin: str) -> Exception:
        kind = type(value).__qualname__
        return self._wrap(exc, f"{type(exc).__name__}: {exc} (value of type {kind} from {origin})")

    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        has, value = payload
        if has:
            try:
                self._fold(value, owned=True)
            except Exception as exc:
                raise self._fold_error(exc, value, f"worker {source}") from exc
        self._waiting_children.discard(source)

    def _step(self) -> None:
        with self._cond:
            if not self._ready_to_send_up():
                return
            self._sent_up = True
            payload = (self._has, self._acc)
        if self.parent is None:
            with self._cond:
                self._result, self._complete = self._acc, True
                self._delivered()
        else:
            self._transmit(self.parent, "up", payload)

    def _delivered(self) -> None:
        """Hook: the root has the reduced value (allreduce sends it down)."""

    def done(self) -> bool:
        return self._sent_up

    def result(self) -> Any:
        """The reduced value, on the target's worker (``None`` if nothing was sent)."""
        if self.rank != self.root:
            msg = f"reduce: the result is on worker {self.root} (target {self.target}), not here"
            raise ValueError(msg)
        return self._result


class Gather(_Up):
    """Every source's values collected at one target as ``(source, value)`` pairs, in source order.

    Values stream up the tree in batches, so no worker holds more than its subtree's share plus
    a batch.
    """

    name = "gather"

    def __init__(self, flow: Dataflow, plan: Plan, target: int = 0) -> None:
        self.target = target
        super().__init__(flow, plan, plan.targets[target])

    def _init_state(self) -> None:
        super()._init_state()
        self._collected: list[tuple[int, Any]] = []
        self._forward: list[list[tuple[int, Any]]] = []

    def send(self, source: int, value: Any) -> bool:
        self._check_source(source)
        self._raise_error()
        if self.parent is None:
            with self._cond:
                self._collected.append((source, value))
            return True
        return self._queue(self.parent, (source, value))

    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        if kind == "up":
            if self.parent is None:
                self._collected.extend(payload)
            else:
                self._forward.append(payload)
        elif kind == "end":
            self._waiting_children.discard(source)

    def _step(self) -> None:
        if self.parent is not None:
            with self._cond:
                forward, self._forward = self._forward, []
            for batch in forward:
                self._transmit(self.parent, "up", batch)
            self._flush(self.parent, "up")
        with self._cond:
            if not self._ready_to_send_up() or self._forward:
                return
            self._sent_up = True
            if self.parent is None:
                self._collected.sort(key=lambda pair: pair[0])
                self._delivered()
                return
        self._transmit(self.parent, "end", None)

    def _delivered(self) -> None:
        """Hook: the root has every value (allgather sends them down)."""

    def done(self) -> bool:
        return self._sent_up

    def result(self) -> list[tuple[int, Any]]:
        """``[(source, value), ...]`` in source order, on the target's worker."""
        if self.rank != self.root:
            msg = f"gather: the result is on worker {self.root} (target {self.target}), not here"
            raise ValueError(msg)
        return self._collected


class Broadcast(Operation):
    """One source's values delivered to every target, down a tree of workers."""

    name = "broadcast"

    def __init__(self, flow: Dataflow, plan: Plan, source: int = 0) -> None:
        if not 0 <= source < len(plan.sources):
            msg = f"broadcast: source {source} is not in the plan's {len(plan.sources)} sources"
            raise ValueError(msg)
        degree = int(flow.setting("net.tree_degree"))
        self.source = source
        self.root = plan.sources[source]
        self.parent, self.children = tree_links(flow.rank, self.root, flow.size, degree)
        super().__init__(flow, plan)
        self._open_sources &= {source}
        self._all_sources &= {source}

    def _init_state(self) -> None:
        self._values: list[Any] = []
        self._forward: list[tuple[str, Any]] = []
        self._ended = False
        self._end_sent = False

    def send(self, source: int, value: Any) -> bool:
        self._check_source(source)
        self._raise_error()
        if self.children and self._pending >= self._limit:
            return False
        with self._cond:
            self._values.append(value)
        if not self.children:
            return True
        return self._queue(-1, value)

    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        if kind == "data":
            self._values.extend(payload)
            if self.children:
                self._forward.append(("data", payload))
        elif kind == "end":
            self._ended = True

    def _step(self) -> None:
        with self._cond:
            forward, self._forward = self._forward, []
            if self.rank == self.root:
                self._ended = self.sources_finished
        for kind, payload in forward:
            for child in self.children:
                self._transmit(child, kind, payload)
        if self.rank == self.root and (self.sources_finished or self._pending >= self._limit):
            self._fan_out()  # when full, send() refuses values until this makes room
        with self._cond:
            ready = self._ended and not self._end_sent and not self._forward
        if ready:
            self._fan_out()
            for child in self.children:
                self._transmit(child, "end", None)
            with self._cond:
                self._end_sent = True

    def _fan_out(self) -> None:
        batch = self._outbox.pop(-1, None)
        if batch:
            self._pending -= len(batch)
            for child in self.children:
                self._transmit(child, "data", batch)

    def _queue(self, dest: int, record: Any) -> bool:
        box = self._outbox.setdefault(dest, [])
        box.append(record)
        self._pending += 1
        if len(box) >= self._batch:
            self._fan_out()
        return True

    def done(self) -> bool:
        return self._end_sent

    def result(self, target: int | None = None) -> list[Any]:
        """The broadcast values, on any worker that hosts a target (shared: do not modify)."""
        if target is not None and self.plan.targets[target] != self.rank:
            msg = f"broadcast: target {target} is on worker {self.plan.targets[target]}, not here"
            raise ValueError(msg)
        return self._values


class AllReduce(Reduce):
    """The reduced value delivered to every target (reduce up a tree, then down)."""

    name = "allreduce"

    def __init__(self, flow: Dataflow, plan: Plan, fn: str | ReduceFunction = "sum") -> None:
        super().__init__(flow, plan, fn, target=0)

    def _init_state(self) -> None:
        super()._init_state()
        self._final: Any = None
        self._have_final = False
        self._down_sent = False

    def _delivered(self) -> None:
        self._final, self._have_final = self._result, True

    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        if kind == "down":
            self._final, self._have_final = payload, True
        else:
            super()._on_message(source, kind, payload)

    def _step(self) -> None:
        super()._step()
        with self._cond:
            if not self._have_final or self._down_sent:
                return
            self._down_sent = True
            final = self._final
        for child in self.children:
            self._transmit(child, "down", final)

    def done(self) -> bool:
        return self._down_sent

    def result(self) -> Any:
        """The reduced value (on every worker)."""
        return self._final


class AllGather(Gather):
    """The gathered ``(source, value)`` pairs delivered to every target."""

    name = "allgather"

    def __init__(self, flow: Dataflow, plan: Plan) -> None:
        super().__init__(flow, plan, target=0)

    def _init_state(self) -> None:
        super()._init_state()
        self._final: list[tuple[int, Any]] | None = None
        self._down_sent = False

    def _delivered(self) -> None:
        self._final = self._collected

    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        if kind == "down":
            self._final = payload
        else:
            super()._on_message(source, kind, payload)

    def _step(self) -> None:
        super()._step()
        with self._cond:
            if self._final is None or self._down_sent:
                return
            self._down_sent = True
            final = self._final
        for child in self.children:
            self._transmit(child, "down", final)

    def done(self) -> bool:
        return self._down_sent

    def result(self) -> list[tuple[int, Any]]:
        """``[(source, value), ...]`` in source order (on every worker)."""
        return self._final if self._final is not None else []

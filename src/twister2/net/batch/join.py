"""Join: two inputs of ``(key, value)`` pairs joined on key at each target.

Both sides are routed by key (the same partitioner), so equal keys meet at one target. There
the join runs as a hash join (the right side in a dictionary, the left streamed past it) or as
a sort-merge join; either way, once the data passes ``net.spill.memory_bytes`` it spills in sorted
runs and is merge-joined from disk. Output rows are ``(key, left_value, right_value)``, with
``None`` for the missing side of an outer join.

Example
-------
>>> from twister2.net.inproc import InprocChannel
>>> from twister2.net import Dataflow, Plan
>>> (ch,) = InprocChannel.group(1)
>>> with Dataflow(ch) as flow:
...     join = Join(flow, Plan.per_worker(1), how="left")
...     _ = join.send_left(0, (1, "a")); _ = join.send_left(0, (2, "b"))
...     _ = join.send_right(0, (1, "x"))
...     join.finish_left(0); join.finish_right(0)
...     sorted(join.wait().result(0))
[(1, 'a', 'x'), (2, 'b', None)]
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from typing import Any

from twister2.net.batch.keyed import Routed, _pair
from twister2.net.dataflow import Dataflow
from twister2.net.partitioners import HashPartitioner, Partitioner
from twister2.net.plan import Plan

__all__ = ["Join"]

_HOWS = ("inner", "left", "right", "outer")
_ALGORITHMS = ("hash", "sort")


class Join(Routed):
    """Join left and right ``(key, value)`` pairs on key: inner, left, right or (full) outer.

    ``plan`` gives the left sources and the targets; ``right_sources`` the workers of the right
    sources (default: the same as the left's). Send with :meth:`send_left` / :meth:`send_right`
    and end each side's sources with :meth:`finish_left` / :meth:`finish_right`.
    """

    name = "join"

    def __init__(
        self,
        flow: Dataflow,
        plan: Plan,
        how: str = "inner",
        algorithm: str = "hash",
        *,
        right_sources: tuple[int, ...] | None = None,
        partitioner: Partitioner | None = None,
    ) -> None:
        if how == "full":
            how = "outer"
        if how not in _HOWS:
            msg = f"join: unknown how={how!r} (known: {', '.join(_HOWS)})"
            raise ValueError(msg)
        if algorithm not in _ALGORITHMS:
            msg = f"join: unknown algorithm={algorithm!r} (known: {', '.join(_ALGORITHMS)})"
            raise ValueError(msg)
        self.how = how
        self.algorithm = algorithm
        self._partitioner = partitioner or HashPartitioner()
        right = right_sources if right_sources is not None else plan.sources
        self._right_open = {i for i, w in enumerate(right) if w == flow.rank}
        self._right_all = set(self._right_open)
        super().__init__(flow, plan)

    def _new_stores(self) -> None:
        key = (lambda r: r[0]) if self.algorithm == "sort" else None
        self._left = {t: self._spill_store(t, key) for t in self._local_targets}
        self._right = {t: self._spill_store(t, key) for t in self._local_targets}

    def _route(self, record: Any) -> tuple[int, int]:
        key, _ = _pair(record, self.name)
        try:
            chosen = self._partitioner(key, self._ntargets)
        except Exception as exc:
            raise self._wrap(exc, f"the partitioner raised {type(exc).__name__}: {exc}") from exc
        target = self._target_of(chosen, record)
        return target, self.plan.targets[target]

    def send_left(self, source: int, record: tuple[Any, Any]) -> bool:
        self._check_source(source)
        self._raise_error()
        target, worker = self._route(record)
        return self._queue(worker, (target, (0, record)))

    def send_right(self, source: int, record: tuple[Any, Any]) -> bool:
        if source not in self._right_open:
            msg = f"join on worker {self.rank}: right source {source} is not open here"
            raise ValueError(msg)
        self._raise_error()
        target, worker = self._route(record)
        return self._queue(worker, (target, (1, record)))

    def send(self, source: int, value: Any) -> bool:
        return self.send_left(source, value)

    def finish_left(self, source: int) -> None:
        self.finish(source)

    def finish_right(self, source: int) -> None:
        if source not in self._right_open:
            msg = f"join on worker {self.rank}: right source {source} is not open here"
            raise ValueError(msg)
        self._right_open.discard(source)

    @property
    def sources_finished(self) -> bool:
        return not self._open_sources and not self._right_open

    def _waiting_for(self) -> str:
        if self._right_open and not self._open_sources:
            return f"right sources {sorted(self._right_open)} have not finished"
        return super()._waiting_for()

    def _accept(self, target: int, record: Any) -> None:
        side, pair = record
        (self._left if side == 0 else self._right)[target].extend((pair,))

    def result(self, target: int) -> Iterator[tuple[Any, Any, Any]]:
        """``(key, left_value, right_value)`` rows at ``target``."""
        self._check_target(target)
        left, right = self._left[target], self._right[target]
        spilled = left.spilled_runs or right.spilled_runs
        if self.algorithm == "sort" or spilled:
            try:
                if left.key is None:  # a hash join that spilled: fall back to sorted runs
                    return self._merge_join(_sorted(left), _sorted(right))
                return self._merge_join(iter(left), iter(right))
            except TypeError as exc:  # from sorting one side's keys
                what = f"the keys at target {target} cannot be sorted: {exc}"
                raise self._wrap(exc, what) from exc
        return self._hash_join(left, right)

    def _hash_join(self, left: Any, right: Any) -> Iterator[tuple[Any, Any, Any]]:
        table: dict[Any, list[Any]] = {}
        for key, value in right:
            table.setdefault(key, []).append(value)
        matched: set[Any] = set()
        for key, lvalue in left:
            rvalues = table.get(key)
            if rvalues is None:
                if self.how in ("left", "outer"):
                    yield key, lvalue, None
                continue
            matched.add(key)
            for rvalue in rvalues:
                yield key, lvalue, rvalue
        if self.how in ("right", "outer"):
            for key, rvalues in table.items():
                if key not in matched:
                    for rvalue in rvalues:
                        yield key, None, rvalue

    def _merge_join(
        self, left: Iterator[Any], right: Iterator[Any]
    ) -> Iterator[tuple[Any, Any, Any]]:
        lgroups = groupby(left, key=lambda r: r[0])
        rgroups = groupby(right, key=lambda r: r[0])
        try:
            lnext = next(lgroups, None)
            rnext = next(rgroups, None)
        except TypeError as exc:  # from merging one side's sorted runs
            raise self._wrap(exc, f"keys cannot be compared: {exc}") from exc
        keep_left = self.how in ("left", "outer")
        keep_right = self.how in ("right", "outer")
        while lnext is not None or rnext is not None:
            try:
                if rnext is None or (lnext is not None and lnext[0] < rnext[0]):
                    assert lnext is not None
                    if keep_left:
                        for _, v in lnext[1]:
                            yield lnext[0], v, None
                    lnext = next(lgroups, None)
                elif lnext is None or rnext[0] < lnext[0]:
                    if keep_right:
                        for _, v in rnext[1]:
                            yield rnext[0], None, v
                    rnext = next(rgroups, None)
                else:
                    rvalues = [v for _, v in rnext[1]]
                    for _, lv in lnext[1]:
                        for rv in rvalues:
                            yield lnext[0], lv, rv
                    lnext, rnext = next(lgroups, None), next(rgroups, None)
            except TypeError as exc:
                lk = type(lnext[0]).__qualname__ if lnext else "-"
                rk = type(rnext[0]).__qualname__ if rnext else "-"
                msg = f"keys of types {lk} and {rk} cannot be compared ({exc})"
                raise self._wrap(exc, msg) from exc

    def close(self) -> None:
        for store in (*self._left.values(), *self._right.values()):
            store.close()


def _sorted(store: Any) -> Iterator[Any]:
    return iter(sorted(store, key=lambda r: r[0]))

"""Harp's collectives: every worker calls the same collective on its own :class:`Table`.

Each collective is named, as in Harp, by a *context* and an *operation* name (by default the
:class:`Harp` object's context and the collective's kind with a call counter). The names are the
collective's identity: in a job, every worker first meets the others at a barrier of the job
master named after them, so a collective called by only some workers (or under other names)
ends in a :class:`HarpError` naming the workers that did not arrive, not in a hang.

Nothing here talks to a channel: the collectives are built on the Twister2:Net batch operators,
so they run unchanged over tcp, mpi and the in-process channel.

- ``allgather``: every partition to every worker (a keyed exchange), combined there;
- ``regroup``: every partition to the worker a partitioner picks (``pid % workers`` by default),
  combined there; ``aggregate`` is regroup then allgather, and ``allreduce`` is aggregate with
  the default partitioner (a reduce-scatter, then an all-gather of the reduced partitions);
- ``reduce``: regroup, then the reduced partitions to the root;
- ``broadcast``: the root's table down a tree of workers (the ``Broadcast`` operator);
- ``push`` / ``pull``: local partitions combined into / refreshed from a distributed global
  table whose partitions live on their owners;
- ``rotate``: each worker's partitions to the next worker in a ring (the ``Direct`` operator
  over a plan that maps worker ``i``'s source to worker ``i + 1``'s target).

Partitions with the same id are combined in worker order (worker 0's first), with the table's
combiner, on the worker that receives them; every worker gets the same result. Results may share
data with the input tables where nothing had to be combined (as the dataflow operators deliver
local values without a copy): copy a partition before changing it in place if the input must
stay as it was.

Example
-------
>>> import numpy as np
>>> from twister2.net import Dataflow
>>> from twister2.net.inproc import InprocChannel
>>> (ch,) = InprocChannel.group(1)
>>> with Dataflow(ch) as flow:
...     harp = Harp(flow)
...     table = Table("sum", {0: np.array([1.0, 2.0]), 1: np.array([3.0])})
...     total = harp.allreduce(table, context="kmeans", operation="iteration-0")
...     moved = harp.rotate(table)
>>> total[0].tolist(), total.ids(), moved.ids()
([1.0, 2.0], [0, 1], [0, 1])
"""

from __future__ import annotations

import contextlib
import numbers
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twister2.harp.table import CombineError, Combiner, Table
from twister2.master.client import BarrierError
from twister2.net.batch import Broadcast, Direct, KeyedReduce
from twister2.net.batch.keyed import Routed
from twister2.net.dataflow import Dataflow, OperationError
from twister2.net.partitioners import check_target
from twister2.net.plan import Plan

if TYPE_CHECKING:
    from twister2.worker.env import WorkerEnv

__all__ = ["Harp", "HarpError", "Partitioner", "modulo"]

Partitioner = Callable[[int, int], int]
"""``partitioner(partition_id, workers) -> worker``: where a partition goes or lives."""

Barrier = Callable[[str, float], None]
"""``barrier(name, timeout)``: the job master's barrier (:meth:`WorkerEnv.barrier`)."""


class HarpError(OperationError):
    """A collective failed: the message names the collective, its context and operation, the
    worker, and the cause (the workers that did not arrive, a partition that is missing...)."""


def modulo(pid: int, workers: int) -> int:
    """The default owner of a partition: ``pid % workers``.

    >>> modulo(7, 4), modulo(2, 4)
    (3, 2)
    """
    return pid % workers


@dataclass
class _Call:
    """One collective call: what it is, where, and its deadline."""

    kind: str
    context: str
    operation: str
    worker: int
    limit: float = field(default=0.0)
    deadline: float = field(default=0.0)

    def __str__(self) -> str:
        return (
            f"harp {self.kind} (context {self.context!r}, operation {self.operation!r}) "
            f"on worker {self.worker}"
        )

    @property
    def barrier_name(self) -> str:
        return f"harp/{self.context}/{self.operation}/{self.kind}"


# -- the operators, with waits that name the workers they are waiting for --------------------------
class _Arrivals(Routed):
    """A routed operator that remembers which workers have finished sending to this one."""

    def _init_state(self) -> None:
        super()._init_state()
        self._finished_workers: set[int] = set()

    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        if kind == "end":
            self._finished_workers.add(source)
        super()._on_message(source, kind, payload)

    def _waiting_for(self) -> str:
        if self._open_sources:
            return super()._waiting_for()
        missing = sorted(set(range(self.flow.size)) - self._finished_workers)
        return f"workers {missing} have not sent their partitions"

    def waiting_for(self) -> str:
        """What this worker is waiting for."""
        with self._cond:
            return self._waiting_for()


def _concat(a: list[Any], b: list[Any]) -> list[Any]:
    return a + b


def _to_worker(key: tuple[int, int], targets: int) -> int:
    return key[0]


class _Exchange(_Arrivals, KeyedReduce):
    """``((dest, pid), [(origin, data)])`` records to worker ``dest``; lists with equal keys are
    concatenated, so each worker ends with every contribution to its partitions."""

    name = "harp exchange"

    def __init__(self, flow: Dataflow) -> None:
        super().__init__(flow, Plan.per_worker(flow.size), _concat, partitioner=_to_worker)


class _Rotation(_Arrivals, Direct):
    """Worker ``i``'s partitions to worker ``(i + shift) % workers``."""

    name = "harp rotation"

    def __init__(self, flow: Dataflow, shift: int) -> None:
        n = flow.size
        plan = Plan(tuple(range(n)), tuple((i + shift) % n for i in range(n)), n)
        super().__init__(flow, plan)


class _Broadcast(Broadcast):
    name = "harp broadcast"

    def _waiting_for(self) -> str:
        if self.parent is None:
            return super()._waiting_for()
        via = "" if self.parent == self.root else f" (through worker {self.parent})"
        return f"the partitions from worker {self.root} have not arrived{via}"

    def waiting_for(self) -> str:
        """What this worker is waiting for."""
        with self._cond:
            return self._waiting_for()



def _origin(part: tuple[int, Any]) -> int:
    return part[0]


class _Missing:
    """Stands for a partition that a pull asked for but its owner does not have."""


class Harp:
    """Harp's collectives for one worker, over a :class:`~twister2.net.Dataflow`.

    In a job, make it with :meth:`from_env` (or subclass :class:`~twister2.harp.HarpWorker`):
    it then meets the other workers at a job-master barrier before every collective, so a
    collective that not every worker calls fails with the names of the missing workers.
    ``timeout`` (seconds; default the config's ``master.barrier_timeout``) bounds both that
    wait and the collective itself.

    Parameters
    ----------
    flow:
        This worker's dataflow engine (``env.dataflow``).
    barrier:
        ``barrier(name, timeout)``, raising :class:`twister2.master.BarrierError` naming the
        missing workers (``env.barrier``); without one, a missing worker is found only when the
        collective's operator times out.
    context:
        The default context name of the collectives.
    timeout:
        The default deadline of a collective, in seconds.

    Every collective also takes, by keyword, ``context`` and ``operation`` (its names: the
    defaults are this object's context and ``"<kind>-<call number>"``) and ``timeout``; each
    returns a new :class:`Table` with the input table's combiner and leaves its inputs as they
    were. Every worker must call the same collectives in the same order (SPMD).

    Examples
    --------
    One worker, over the in-process channel:

    >>> from twister2.net.inproc import InprocChannel
    >>> (ch,) = InprocChannel.group(1)
    >>> with Dataflow(ch) as flow:
    ...     harp = Harp(flow, context="demo")
    ...     table = Table("sum", {0: 1.0, 5: 2.0})
    ...     shared = harp.broadcast(table, root=0, operation="model")
    ...     owned = harp.regroup(table, lambda pid, workers: 0)
    ...     model = harp.push(table, Table("sum", {0: 10.0}))
    ...     fresh = harp.pull(model, Table("sum", {5: 0.0}))
    ...     harp.barrier()
    >>> shared.to_dict(), owned.ids(), model.to_dict(), fresh.to_dict()
    ({0: 1.0, 5: 2.0}, [0, 5], {0: 11.0, 5: 2.0}, {5: 2.0})
    """

    def __init__(
        self,
        flow: Dataflow,
        *,
        barrier: Barrier | None = None,
        context: str = "main",
        timeout: float | None = None,
    ) -> None:
        self.flow = flow
        self.worker_id = flow.rank
        self.num_workers = flow.size
        self.context = context
        if timeout is None:
            timeout = float(flow.setting("master.barrier_timeout"))
        self.timeout = timeout
        self._barrier = barrier
        self._calls = 0
        self._plan = Plan.per_worker(flow.size)

    @classmethod
    def from_env(
        cls, env: WorkerEnv, *, context: str = "main", timeout: float | None = None
    ) -> Harp:
        """The collectives of a job's worker (barriers through the job master)."""
        return cls(env.dataflow, barrier=env.barrier, context=context, timeout=timeout)

    @property
    def is_master(self) -> bool:
        """Whether this is worker 0 (Harp's master)."""
        return self.worker_id == 0

    # -- the collectives -----------------------------------------------------------------------
    def broadcast(
        self,
        table: Table,
        root: int = 0,
        *,
        context: str | None = None,
        operation: str | None = None,
        timeout: float | None = None,
    ) -> Table:
        """Worker ``root``'s table, on every worker (down a tree of workers).

        The other workers' tables are not sent: pass an empty one.
        """
        with self._collective("broadcast", context, operation, timeout, table) as call:
            self._check_root(call, root)
            op = _Broadcast(self.flow, self._plan, source=root)
            if self.worker_id == root:
                op.send_all(root, ((p.id, p.data) for p in table), finish=True)
            self._wait(call, op)
            return Table(table.combiner, op.result())

    def reduce(
        self,
        table: Table,
        root: int = 0,
        *,
        context: str | None = None,
        operation: str | None = None,
        timeout: float | None = None,
    ) -> Table:
        """Every worker's partitions combined by id, on worker ``root`` (an empty table on the
        others)."""
        with self._collective("reduce", context, operation, timeout, table) as call:
            self._check_root(call, root)
            owned = self._regroup(call, table, modulo)
            reduced = self._route(call, owned, lambda pid: (root,))
            return reduced if self.worker_id == root else table.empty()

    def allreduce(
        self,
        table: Table,
        *,
        context: str | None = None,
        operation: str | None = None,
        timeout: float | None = None,
    ) -> Table:
        """Every worker's partitions combined by id, on every worker.

        A reduce-scatter (partition ``pid`` combined on worker ``pid % workers``) followed by
        an all-gather of the combined partitions.
        """
        with self._collective("allreduce", context, operation, timeout, table) as call:
            owned = self._regroup(call, table, modulo)
            return self._route(call, owned, self._everyone)

    def allgather(
        self,
        table: Table,
        *,
        context: str | None = None,
        operation: str | None = None,
        timeout: float | None = None,
    ) -> Table:
        """Every worker's partitions, on every worker; equal ids combined (in worker order)."""
        with self._collective("allgather", context, operation, timeout, table) as call:
            return self._route(call, table, self._everyone)

    def regroup(
        self,
        table: Table,
        partitioner: Partitioner | None = None,
        *,
        context: str | None = None,
        operation: str | None = None,
        timeout: float | None = None,
    ) -> Table:
        """Every partition moved to worker ``partitioner(pid, workers)`` (default
        :func:`modulo`) and combined there with the others of its id."""
        with self._collective("regroup", context, operation, timeout, table) as call:
            return self._regroup(call, table, partitioner or modulo)

    def aggregate(
        self,
        table: Table,
        partitioner: Partitioner | None = None,
        *,
        context: str | None = None,
        operation: str | None = None,
        timeout: float | None = None,
    ) -> Table:
        """:meth:`regroup` then :meth:`allgather`: the combined table on every worker."""
        with self._collective("aggregate", context, operation, timeout, table) as call:
            owned = self._regroup(call, table, partitioner or modulo)
            return self._route(call, owned, self._everyone)

    def push(
        self,
        local: Table,
        global_table: Table,
        partitioner: Partitioner | None = None,
        *,
        context: str | None = None,
        operation: str | None = None,
        timeout: float | None = None,
    ) -> Table:
        """Combine every worker's ``local`` partitions into the distributed global table.

        Partition ``pid`` of the global table lives on worker ``partitioner(pid, workers)``
        (default :func:`modulo`); each worker passes its own part of it as ``global_table`` and
        gets that part back updated: its partitions combined (with the global table's combiner)
        with the pushed ones of the same id, in worker order; ids it did not have are added.
        """
        with self._collective("push", context, operation, timeout, local) as call:
            _check_table(call, global_table, "global_table")
            owner = partitioner or modulo
            got = self._exchange(
                call, ((self._owner(call, owner, p.id), p.id, p.data) for p in local)
            )
            updated = global_table.copy()
            for pid in sorted(got):
                parts = [(f"from worker {o}", data) for o, data in got[pid]]
                received = [o != self.worker_id for o, _ in got[pid]]
                if pid in updated:
                    parts.insert(0, (f"in worker {self.worker_id}'s global table", updated[pid]))
                    received.insert(0, False)
                updated[pid] = _merge(global_table.combiner, pid, parts, received)
            return updated

    def pull(
        self,
        global_table: Table,
        local: Table,
        partitioner: Partitioner | None = None,
        *,
        context: str | None = None,
        operation: str | None = None,
        timeout: float | None = None,
    ) -> Table:
        """``local``'s partitions refreshed from the distributed global table.

        Each worker asks the owner of every partition id in ``local`` (worker
        ``partitioner(pid, workers)``, default :func:`modulo`) for that partition of its
        ``global_table`` part; the result has ``local``'s ids with the global data. An id that
        its owner does not have is a :class:`HarpError` naming the id and the owner.
        """
        with self._collective("pull", context, operation, timeout, local) as call:
            _check_table(call, global_table, "global_table")
            owner = partitioner or modulo
            wanted = self._exchange(
                call, ((self._owner(call, owner, pid), pid, None) for pid in local.ids())
            )
            replies = [
                (requester, pid, global_table[pid] if pid in global_table else _Missing())
                for pid in sorted(wanted)
                for requester, _ in wanted[pid]
            ]
            got = self._exchange(call, replies)
            pulled = local.empty()
            missing = []
            for pid in local.ids():
                ((came_from, data),) = got[pid]
                if isinstance(data, _Missing):
                    missing.append(f"partition {pid} (owner: worker {came_from})")
                else:
                    pulled[pid] = data
            if missing:
                msg = f"{call}: not in their owners' global tables: {', '.join(missing)}"
                raise HarpError(msg)
            return pulled

    def rotate(
        self,
        table: Table,
        shift: int = 1,
        *,
        context: str | None = None,
        operation: str | None = None,
        timeout: float | None = None,
    ) -> Table:
        """Each worker's partitions passed to the next worker in a ring: worker ``i``'s table
        goes to worker ``(i + shift) % workers``, and this worker gets worker
        ``(i - shift) % workers``'s (Harp's model rotation)."""
        with self._collective("rotate", context, operation, timeout, table) as call:
            if isinstance(shift, bool) or not isinstance(shift, numbers.Integral):
                msg = f"{call}: shift must be an int, got {type(shift).__qualname__}"
                raise TypeError(msg)
            n, me = self.num_workers, self.worker_id
            op = _Rotation(self.flow, int(shift) % n)
            try:
                op.send_all(me, ((p.id, p.data) for p in table), finish=True)
                self._wait(call, op)
                return Table(table.combiner, op.result((me - int(shift)) % n))
            finally:
                op.close()

    def barrier(
        self,
        *,
        context: str | None = None,
        operation: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Wait until every worker has called the same barrier (Harp's ``barrier``)."""
        with self._collective("barrier", context, operation, timeout, Table()) as call:
            if self._barrier is None:  # no job master: an empty all-to-all does the same
                self._exchange(call, ())

    # -- the machinery ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _collective(
        self,
        kind: str,
        context: str | None,
        operation: str | None,
        timeout: float | None,
        table: Table,
    ) -> Iterator[_Call]:
        """Name the call, check its input, meet the other workers, and put the collective's
        name on the errors that come out of it."""
        call = _Call(
            kind, context or self.context, operation or f"{kind}-{self._calls}", self.worker_id
        )
        self._calls += 1
        _check_table(call, table, "the table")
        call.limit = self.timeout if timeout is None else timeout
        call.deadline = time.monotonic() + call.limit
        if self._barrier is not None and self.num_workers > 1:
            try:
                self._barrier(call.barrier_name, call.limit)
            except BarrierError as exc:
                msg = f"{call}: not every worker called it: {exc}"
                raise HarpError(msg) from exc
        try:
            yield call
        except CombineError as exc:
            raise CombineError(f"{call}: {exc}") from exc
        except (HarpError, ValueError, TypeError):
            raise
        except OperationError as exc:
            msg = f"{call}: {exc}"
            raise HarpError(msg) from exc

    def _wait(self, call: _Call, op: _Exchange | _Rotation | _Broadcast) -> None:
        try:
            op.wait(timeout=max(call.deadline - time.monotonic(), 0.001))
        except OperationError as exc:
            if time.monotonic() < call.deadline:
                raise
            msg = f"{call}: did not complete within {call.limit:g} s: {op.waiting_for()}"
            raise HarpError(msg) from exc

    def _everyone(self, pid: int) -> range:
        return range(self.num_workers)

    def _check_root(self, call: _Call, root: int) -> None:
        if isinstance(root, bool) or not isinstance(root, numbers.Integral):
            msg = f"{call}: the root must be a worker id, got {type(root).__qualname__}"
            raise TypeError(msg)
        if not 0 <= root < self.num_workers:
            msg = f"{call}: root {root} is not a worker (the workers are 0..{self.num_workers - 1})"
            raise ValueError(msg)

    def _owner(self, call: _Call, partitioner: Partitioner, pid: int) -> int:
        n = self.num_workers
        try:
            worker = partitioner(pid, n)
        except Exception as exc:
            msg = f"{call}: the partitioner raised {type(exc).__name__} for partition {pid}: {exc}"
            raise HarpError(msg) from exc
        try:
            return check_target(worker, n, pid, subject=f"partition {pid}", noun="worker")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{call}: {exc}") from None

    def _exchange(
        self, call: _Call, sends: Iterable[tuple[int, int, Any]]
    ) -> dict[int, list[tuple[int, Any]]]:
        """Deliver ``(worker, pid, data)`` items; what reached this worker, as
        ``{pid: [(origin worker, data), ...]}`` in worker order."""
        me, n = self.worker_id, self.num_workers
        records = [((dest, pid), [(me, data)]) for dest, pid, data in sends]
        # Batches leave in this order: ring order from the right neighbour, this worker last,
        # so that the workers do not all send to the same peer at once.
        records.sort(key=lambda record: (record[0][0] - me - 1) % n)
        op = _Exchange(self.flow)
        op.send_all(me, records, finish=True)
        self._wait(call, op)
        return {pid: sorted(parts, key=_origin) for (_, pid), parts in op.result(me).items()}

    def _route(self, call: _Call, table: Table, dests: Callable[[int], Iterable[int]]) -> Table:
        """``table``'s partitions sent to ``dests(pid)``; what arrived here, combined by id."""
        got = self._exchange(call, ((d, p.id, p.data) for p in table for d in dests(p.id)))
        out = table.empty()
        for pid in sorted(got):
            parts = [(f"from worker {o}", data) for o, data in got[pid]]
            received = [o != self.worker_id for o, _ in got[pid]]  # copies: ours to overwrite
            out[pid] = _merge(table.combiner, pid, parts, received)
        return out

    def _regroup(self, call: _Call, table: Table, partitioner: Partitioner) -> Table:
        owners = {p.id: self._owner(call, partitioner, p.id) for p in table}
        return self._route(call, table, lambda pid: (owners[pid],))


def _check_table(call: _Call, value: Any, what: str) -> None:
    if not isinstance(value, Table):
        msg = f"{call}: {what} must be a twister2.harp.Table, got {type(value).__qualname__}"
        raise TypeError(msg)


def _merge(
    combiner: Combiner, pid: int, parts: list[tuple[str, Any]], owned: list[bool] | None = None
) -> Any:
    return parts[0][1] if len(parts) == 1 else combiner.merge(pid, parts, owned=owned)

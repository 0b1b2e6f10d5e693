"""The dataflow engine under every Twister2:Net operator.

A :class:`Dataflow` wraps one worker's channel. Every operation created on it gets an id (the
same on every worker, since all workers create the same operations in the same order: SPMD),
and a dispatcher thread receives the operations' messages and hands them to their operation, so
receiving never waits on the user's thread: sends cannot deadlock on a peer that is busy sending.
All sends happen in the user's thread, in :meth:`Operation.progress`.

The protocol every operation follows, as in Twister2: sources call ``send(source, value)`` (which
returns ``False``, without taking the value, when the operation's send buffer is full: call
``progress()`` and send it again)
and finally ``finish(source)``; every worker calls ``progress()`` until ``done()``
(:meth:`Operation.wait` does both); targets then read their results.

Values handed to ``send`` must not be modified until the operation is done (as with MPI's
non-blocking sends): they are batched, and delivered to local targets without a copy.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twister2.net.channel import ANY_SOURCE, Channel, ChannelError, ChannelTimeout
from twister2.net.plan import Plan
from twister2.net.serialization import SerializationError

__all__ = ["DATAFLOW_TAG", "Dataflow", "Operation", "OperationError"]

log = logging.getLogger(__name__)

DATAFLOW_TAG = 1 << 40
"""The channel tag of every dataflow message (user code uses small tags)."""

_STOP = "__stop__"
_IDLE_WAIT = 0.05


class OperationError(RuntimeError):
    """An operation failed; the message names the operator, the worker and the cause."""


class Dataflow:
    """The operations of one worker over one channel, and their receiving thread.

    Example
    -------
    >>> from twister2.net.inproc import InprocChannel
    >>> from twister2.net.batch import Reduce
    >>> (ch,) = InprocChannel.group(1)
    >>> with Dataflow(ch) as flow:
    ...     op = Reduce(flow, Plan.per_worker(1), "sum")
    ...     op.send(0, 40); op.send(0, 2); op.finish(0)
    ...     op.wait().result()
    True
    True
    42
    """

    def __init__(
        self,
        channel: Channel,
        *,
        config: Mapping[str, Any] | None = None,
        scratch_dir: Path | None = None,
    ) -> None:
        self.channel = channel
        self.rank = channel.rank
        self.size = channel.size
        self.config = dict(config or {})
        self.scratch_dir = scratch_dir
        self._ops: dict[int, Operation] = {}
        self._early: dict[int, list[tuple[int, str, Any]]] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._closed = False
        self._closers: list[Callable[[], None]] = []
        self._thread = threading.Thread(
            target=self._dispatch, name=f"twister2-dataflow-{self.rank}", daemon=True
        )
        self._thread.start()

    def setting(self, key: str, default: Any) -> Any:
        """A config value, falling back to ``default`` when the key is absent or null."""
        value = self.config.get(key)
        return default if value is None else value

    # -- registry --------------------------------------------------------------------------------
    def _register(self, op: Operation) -> int:
        with self._lock:
            if self._closed:
                msg = "this dataflow is closed"
                raise OperationError(msg)
            op_id = self._next_id
            self._next_id += 1
            self._ops[op_id] = op
            early = self._early.pop(op_id, [])
        for source, kind, payload in early:
            op._receive(source, kind, payload)
        return op_id

    def _forget(self, op_id: int) -> None:
        with self._lock:
            self._ops.pop(op_id, None)

    # -- the dispatcher thread -------------------------------------------------------------------
    def _dispatch(self) -> None:
        while True:
            try:
                source, message = self.channel.recv_from(ANY_SOURCE, DATAFLOW_TAG, timeout=3600.0)
            except ChannelTimeout:
                continue
            except ChannelError as exc:
                if not self._closed:
                    self._fail_all(exc)
                return
            if message == _STOP:
                return
            op_id, kind, payload = message
            with self._lock:
                op = self._ops.get(op_id)
                if op is None:
                    self._early.setdefault(op_id, []).append((source, kind, payload))
                    continue
            op._receive(source, kind, payload)

    def _fail_all(self, exc: BaseException) -> None:
        self._failure = exc
        with self._lock:
            ops = list(self._ops.values())
        for op in ops:
            op._set_error(exc)

    def send(self, op: Operation, dest: int, kind: str, payload: Any) -> None:
        if dest == self.rank:
            op._receive(self.rank, kind, payload)
        else:
            self.channel.send((op.id, kind, payload), dest, DATAFLOW_TAG)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the dataflow closes (before its dispatcher stops)."""
        self._closers.append(callback)

    def close(self) -> None:
        """Stop the dispatcher thread (the channel stays open)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for callback in self._closers:
            callback()
        with contextlib.suppress(ChannelError):
            self.channel.send(_STOP, self.rank, DATAFLOW_TAG)
        self._thread.join(timeout=10.0)

    def __enter__(self) -> Dataflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Operation:
    """The part every operator shares: sources, batching, flow control, errors and waiting."""

    name = "operation"

    def __init__(self, flow: Dataflow, plan: Plan) -> None:
        if plan.workers != flow.size:
            msg = f"{self.name}: the plan is for {plan.workers} workers but the job has {flow.size}"
            raise ValueError(msg)
        self.flow = flow
        self.plan = plan
        self.rank = flow.rank
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._open_sources = set(plan.local_sources(self.rank))
        self._all_sources = set(self._open_sources)
        self._batch = int(flow.setting("net.batch_records", 1024))
        self._limit = int(flow.setting("net.send_buffer_records", 65536))
        self._outbox: dict[int, list[Any]] = {}
        self._pending = 0
        self._started = time.monotonic()
        self.id = -1
        self._init_state()
        self.id = flow._register(self)

    # -- for subclasses --------------------------------------------------------------------------
    def _init_state(self) -> None:
        """Set up per-operation state before messages can arrive."""

    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        """Handle a message (called with ``self._cond`` held, in the dispatcher thread)."""
        raise NotImplementedError

    def _step(self) -> None:
        """Do the sending this worker can do now (called in ``progress``, lock not held)."""

    def done(self) -> bool:
        """Whether this worker's part of the operation is over."""
        raise NotImplementedError

    # -- sources ---------------------------------------------------------------------------------
    def _check_source(self, source: int) -> None:
        if source not in self._all_sources:
            mine = sorted(self._all_sources)
            msg = (
                f"{self.name} on worker {self.rank}: source {source} is not hosted here "
                f"(this worker hosts sources {mine})"
            )
            raise ValueError(msg)
        if source not in self._open_sources:
            msg = f"{self.name} on worker {self.rank}: source {source} already finished"
            raise ValueError(msg)

    def finish(self, source: int) -> None:
        """Source ``source`` has sent everything."""
        self._check_source(source)
        self._open_sources.discard(source)

    @property
    def sources_finished(self) -> bool:
        return not self._open_sources

    # -- outgoing batches --------------------------------------------------------------------------
    def _queue(self, dest: int, record: Any) -> bool:
        """Buffer ``record`` for worker ``dest``; ``False`` (record not taken) when the send
        buffer is full: call ``progress()`` and send it again."""
        if self._pending >= self._limit:
            return False
        box = self._outbox.setdefault(dest, [])
        box.append(record)
        self._pending += 1
        if len(box) >= self._batch:
            self._flush(dest)
        return True

    def _flush(self, dest: int | None = None, kind: str = "data") -> None:
        dests = [dest] if dest is not None else self._flush_order()
        for d in dests:
            records = self._outbox.pop(d, None)
            if records:
                self._pending -= len(records)
                self._transmit(d, kind, records)

    def _flush_order(self) -> list[int]:
        """The workers to flush to: by id, or in ring order from this worker's right neighbour
        (``net.partition_routing: ring``), so that no two workers send to the same peer at once."""
        if self.flow.setting("net.partition_routing", "direct") == "ring":
            size = self.flow.size
            ring = [(self.rank + k) % size for k in range(1, size + 1)]
            return [d for d in ring if d in self._outbox]
        return sorted(self._outbox)

    def _transmit(self, dest: int, kind: str, payload: Any) -> None:
        try:
            self.flow.send(self, dest, kind, payload)
        except (pickle.PicklingError, TypeError) as exc:
            pickling = isinstance(exc, pickle.PicklingError | SerializationError)
            if not pickling and "pickle" not in str(exc):
                raise
            culprit = type(_unpicklable_part(payload)).__qualname__
            what = f"cannot send a value of type {culprit} to worker {dest}: {exc.__cause__ or exc}"
            raise self._wrap(exc, what) from exc

    # -- errors ------------------------------------------------------------------------------------
    def _wrap(self, exc: BaseException, what: str) -> OperationError:
        return OperationError(f"{self.name} (operation {self.id}) on worker {self.rank}: {what}")

    def _set_error(self, exc: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = exc
            self._cond.notify_all()

    def _receive(self, source: int, kind: str, payload: Any) -> None:
        with self._cond:
            if self._error is not None:
                return
            try:
                self._on_message(source, kind, payload)
            except OperationError as exc:  # already says which operator, worker and value
                self._error = exc
            except Exception as exc:
                self._error = self._wrap(exc, f"{type(exc).__name__}: {exc}")
                self._error.__cause__ = exc
            self._cond.notify_all()

    def _raise_error(self) -> None:
        if self._error is not None:
            if isinstance(self._error, OperationError):
                raise self._error
            raise self._wrap(self._error, str(self._error)) from self._error

    # -- progress ----------------------------------------------------------------------------------
    def progress(self) -> bool:
        """Send what can be sent now; ``True`` once this worker's part is done."""
        self._raise_error()
        self._step()
        self._raise_error()
        with self._cond:
            finished = self.done()
        if finished:
            self.flow._forget(self.id)
        return finished

    def wait(self, timeout: float | None = None) -> Operation:
        """Call :meth:`progress` until done (all local sources must have finished)."""
        if timeout is None:
            timeout = float(self.flow.setting("network.recv_timeout", 600.0))
        deadline = time.monotonic() + timeout
        while not self.progress():
            with self._cond:
                if self.done() or self._error is not None:
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    msg = (
                        f"{self.name} (operation {self.id}) on worker {self.rank} did not "
                        f"complete within {timeout:g} s ({self._waiting_for()})"
                    )
                    raise OperationError(msg)
                self._cond.wait(min(remaining, _IDLE_WAIT))
        return self

    def _waiting_for(self) -> str:
        if self._open_sources:
            return f"sources {sorted(self._open_sources)} have not finished"
        return "waiting for other workers"


def _unpicklable_part(value: Any) -> Any:
    """The innermost item of ``value`` (through lists, tuples and dict values) that cannot be
    pickled: the offending value in a batch of records."""
    while isinstance(value, list | tuple | dict):
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            try:
                pickle.dumps(item, protocol=5)
            except Exception:
                value = item
                break
        else:
            break  # each part pickles alone: the whole is the culprit
    return value


def approx_size(value: Any) -> int:
    """A cheap estimate of a value's size in bytes (arrays exactly, others shallowly)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, tuple | list):
        return sum(approx_size(v) for v in value[:4]) + 8 * len(value)
    return sys.getsizeof(value)

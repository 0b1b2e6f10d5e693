"""The dataflow engine under every Twister2:Net operator.

A :class:`Dataflow` wraps one worker's channel. Every operation created on it has a name: the
one given with :meth:`Dataflow.named` (an edge of a task graph, say), or by default its place
among the unnamed operations (``"0"``, ``"1"``... the same on every worker, since SPMD code
creates the same operations in the same order). Messages carry the name (and how many operations
of that name came before, so a name reused each iteration never mixes two iterations), and the
first message to each worker carries the operation's signature (operator and plan): an operation
that one worker created with another operator or plan, or did not create at all, is an error
that names both sides, never data fed to the wrong operation. Messages for an operation not yet
created wait, up to ``net.early_message_bytes`` in all.

A dispatcher thread receives the operations' messages and hands them to their operation, so
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
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from twister2.config import lookup as config_lookup
from twister2.net.channel import ANY_SOURCE, Channel, ChannelError, ChannelTimeout
from twister2.net.plan import Plan
from twister2.net.serialization import SerializationError

__all__ = ["DATAFLOW_TAG", "Dataflow", "Operation", "OperationError"]

log = logging.getLogger(__name__)

DATAFLOW_TAG = 1 << 40
"""The channel tag of every dataflow message (user code uses small tags)."""

_STOP = "__stop__"
_IDLE_WAIT = 0.05
_MISMATCH = "mismatch"
_NEVER = "never-created"

Reporter = Callable[[dict[str, Any]], None]
"""Receives one ``operation`` report (docs/dashboard.md) per operation per worker."""


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
        self._ops: dict[str, Operation] = {}
        self._early: dict[str, list[tuple[int, str, Any, Any]]] = {}
        self._early_bytes = 0
        self._pending_replay: dict[str, list[tuple[int, str, Any, Any]]] = {}
        self._early_limit = int(self.setting("net.early_message_bytes"))
        self._unnamed = 0
        self._generations: dict[str, int] = {}
        self._naming: list[str] = []
        self.reporter: Reporter | None = None
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._closed = False
        self._closers: list[Callable[[], None]] = []
        self._thread = threading.Thread(
            target=self._dispatch, name=f"twister2-dataflow-{self.rank}", daemon=True
        )
        self._thread.start()

    def setting(self, key: str) -> Any:
        """The config value of ``key``: the job's, else the schema's one default."""
        return config_lookup(self.config, key)

    @contextlib.contextmanager
    def named(self, name: str) -> Iterator[None]:
        """Operations created inside get the name ``name`` (every worker must name its
        operations alike: the name is how workers find each other's operation).

        >>> from twister2.net.inproc import InprocChannel
        >>> from twister2.net.batch import AllReduce
        >>> (ch,) = InprocChannel.group(1)
        >>> with Dataflow(ch) as flow:
        ...     with flow.named("total"):
        ...         op = AllReduce(flow, Plan.per_worker(1), "sum")
        ...     op.id
        'total'
        """
        if not isinstance(name, str) or not name:
            msg = f"an operation's name is a non-empty str, got {name!r}"
            raise TypeError(msg)
        self._naming.append(name)
        try:
            yield
        finally:
            self._naming.pop()

    # -- registry --------------------------------------------------------------------------------
    def _register(self, op: Operation) -> str:
        with self._lock:
            if self._closed:
                msg = "this dataflow is closed"
                raise OperationError(msg)
            if self._naming:
                base = self._naming[-1]
            else:
                base = str(self._unnamed)
                self._unnamed += 1
            generation = self._generations.get(base, 0)
            self._generations[base] = generation + 1
            op_id = base if generation == 0 else f"{base}#{generation}"
            self._ops[op_id] = op
            early = self._early.pop(op_id, [])
            self._early_bytes -= sum(approx_size(m[2]) for m in early)
            if early:
                self._pending_replay[op_id] = early
        return op_id

    def _replay(self, op: Operation) -> None:
        """Hand ``op`` the messages that came before it existed."""
        with self._lock:
            early = self._pending_replay.pop(op.id, [])
            failure = self._failure
        if failure is not None:  # (the channel broke, or early messages overflowed)
            op._set_error(failure)
        for source, kind, payload, signature in early:
            op._receive(source, kind, payload, signature)

    def _forget(self, op_id: str) -> None:
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
            op_id, kind, payload, signature = message
            with self._lock:
                op = self._ops.get(op_id)
                if op is None:
                    if kind != _NEVER:  # (a notice for an operation that is over: no matter)
                        self._keep_early(source, op_id, kind, payload, signature)
                    continue
            op._receive(source, kind, payload, signature)

    def _keep_early(self, source: int, op_id: str, kind: str, payload: Any, sig: Any) -> None:
        """Hold a message for an operation this worker has not created yet (lock held)."""
        self._early.setdefault(op_id, []).append((source, kind, payload, sig))
        self._early_bytes += approx_size(payload)
        if self._early_bytes > self._early_limit and self._failure is None:
            waiting = ", ".join(
                f"{name!r} (from workers {sorted({m[0] for m in msgs})})"
                for name, msgs in self._early.items()
            )
            msg = (
                f"worker {self.rank} holds {self._early_bytes} bytes of messages for operations "
                f"it has not created (over net.early_message_bytes, {self._early_limit}): "
                f"{waiting}; every worker must create the same operations in the same order "
                "(or name them alike), or raise net.early_message_bytes"
            )
            self._failure = OperationError(msg)
            for live in list(self._ops.values()):
                live._set_error(self._failure)

    def _fail_all(self, exc: BaseException) -> None:
        self._failure = exc
        with self._lock:
            ops = list(self._ops.values())
        for op in ops:
            op._set_error(exc)

    def send(
        self, op: Operation, dest: int, kind: str, payload: Any, signature: Any = None
    ) -> None:
        if dest == self.rank:
            op._receive(self.rank, kind, payload, None)
        else:
            self.channel.send((op.id, kind, payload, signature), dest, DATAFLOW_TAG)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the dataflow closes (before its dispatcher stops)."""
        self._closers.append(callback)

    def close(self) -> None:
        """Stop the dispatcher thread (the channel stays open). Workers that sent messages for
        an operation this worker never created learn so: their operation fails, naming it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            strays = {name: sorted({m[0] for m in msgs}) for name, msgs in self._early.items()}
        for callback in self._closers:
            callback()
        for name, senders in strays.items():
            for sender in senders:
                with contextlib.suppress(ChannelError):
                    self.channel.send((name, _NEVER, self.rank, None), sender, DATAFLOW_TAG)
        if strays:
            log.error(
                "worker %d ended without creating operations that other workers sent to: %s",
                self.rank,
                ", ".join(f"{n!r} (from workers {s})" for n, s in strays.items()),
            )
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
        self._batch = int(flow.setting("net.batch_records"))
        self._limit = int(flow.setting("net.send_buffer_records"))
        self._outbox: dict[int, list[Any]] = {}
        self._pending = 0
        self._started = time.monotonic()
        layout = repr((plan.sources, plan.targets)).encode()
        self.signature = (
            self.name,
            len(plan.sources),
            len(plan.targets),
            zlib.crc32(layout),
        )
        """What every worker's operation of this name must agree on: the operator and plan."""
        self._introduced: set[int] = set()
        self._heard: set[int] = set()
        self._sent_values = 0
        self._sent_bytes = 0
        self._reported = False
        self.id = ""
        self._init_state()
        self.id = flow._register(self)
        flow._replay(self)

    # -- for subclasses --------------------------------------------------------------------------
    def _init_state(self) -> None:
        """Set up per-operation state before messages can arrive."""

    def _describe(self, signature: tuple[Any, ...] | None = None) -> str:
        kind, sources, targets, layout = signature or self.signature
        return f"a {kind} of {sources} sources and {targets} targets (plan {layout:08x})"

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
        if self.flow.setting("net.partition_routing") == "ring":
            size = self.flow.size
            ring = [(self.rank + k) % size for k in range(1, size + 1)]
            return [d for d in ring if d in self._outbox]
        return sorted(self._outbox)

    def _transmit(self, dest: int, kind: str, payload: Any) -> None:
        signature = None
        if dest not in self._introduced:  # the first message to a worker says what this is
            self._introduced.add(dest)
            signature = self.signature
        if isinstance(payload, list):
            self._sent_values += len(payload)
        if payload is not None:
            self._sent_bytes += approx_size(payload)
        try:
            self.flow.send(self, dest, kind, payload, signature)
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

    def _receive(self, source: int, kind: str, payload: Any, signature: Any = None) -> None:
        mismatch = False
        self._heard.add(source)
        with self._cond:
            if self._error is not None:
                return
            if kind == _NEVER:
                self._error = OperationError(
                    f"{self.name} (operation {self.id!r}) on worker {self.rank}: worker {payload} "
                    f"ended without creating an operation {self.id!r}; every worker must create "
                    "the same operations in the same order (or name them alike)"
                )
            elif signature is not None and tuple(signature) != self.signature:
                self._error = OperationError(
                    f"operation {self.id!r} is {self._describe(tuple(signature))} on worker "
                    f"{source} but {self._describe()} on worker {self.rank}: every worker must "
                    "create the same operations, with the same operator and plan, in the same "
                    "order (or name them alike)"
                )
                mismatch = True
            else:
                try:
                    self._on_message(source, kind, payload)
                except OperationError as exc:  # already says which operator, worker and value
                    self._error = exc
                except Exception as exc:
                    self._error = self._wrap(exc, f"{type(exc).__name__}: {exc}")
                    self._error.__cause__ = exc
            self._cond.notify_all()
        if mismatch:  # the workers' operations diverged here: every later one is suspect too
            assert self._error is not None
            self.flow._fail_all(self._error)

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
            self._report()
        return finished

    def _report(self) -> None:
        """Tell the dataflow's reporter (the dashboard) what this worker did, once."""
        reporter = self.flow.reporter
        if self._reported or reporter is None:
            return
        self._reported = True
        report = {
            "op": self.name.replace(" ", "_"),
            "name": self.id,
            "sources": list(self.plan.sources),
            "targets": list(self.plan.targets),
            "values": self._sent_values,
            "bytes": self._sent_bytes,
            "seconds": round(time.monotonic() - self._started, 6),
        }
        try:
            reporter(report)
        except Exception as exc:  # the dashboard is a view: losing a report costs no result
            log.warning("could not report operation %r: %s", self.id, exc)

    def send_all(
        self,
        source: int,
        values: Iterable[Any],
        *,
        finish: bool = False,
        timeout: float | None = None,
    ) -> Operation:
        """Send every value of ``values`` from ``source``, making progress while the send buffer
        is full (a blocking send); with ``finish``, then finish ``source``.

        Raises :class:`OperationError` when the buffer stays full for ``timeout`` seconds
        (default ``network.recv_timeout``).

        >>> from twister2.net.inproc import InprocChannel
        >>> from twister2.net.batch import Reduce
        >>> (ch,) = InprocChannel.group(1)
        >>> with Dataflow(ch) as flow:
        ...     op = Reduce(flow, Plan.per_worker(1), "sum")
        ...     op.send_all(0, range(5), finish=True).wait().result()
        10
        """
        send: Callable[[int, Any], bool] = self.send  # type: ignore[attr-defined]
        limit = self._timeout(timeout)
        for value in values:
            if send(source, value):
                continue
            deadline = time.monotonic() + limit
            while not send(source, value):
                self.progress()
                if time.monotonic() > deadline:
                    msg = f"the send buffer stayed full for {limit:g} s"
                    raise self._wrap(TimeoutError(msg), msg)
                with self._cond:
                    self._cond.wait(0.001)
        if finish:
            self.finish(source)
        return self

    def send_blocking(self, source: int, value: Any, timeout: float | None = None) -> None:
        """Send ``value`` from ``source``, making progress while the send buffer is full."""
        self.send_all(source, (value,), timeout=timeout)

    def _timeout(self, timeout: float | None) -> float:
        if timeout is not None:
            return timeout
        configured = self.flow.setting("network.recv_timeout")
        return float("inf") if configured is None else float(configured)

    def wait(self, timeout: float | None = None) -> Operation:
        """Call :meth:`progress` until done (all local sources must have finished)."""
        timeout = self._timeout(timeout)
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
        heard = sorted(self._heard - {self.rank})
        return (
            f"waiting for other workers; it heard from workers {heard} so far: a worker that "
            f"never creates operation {self.id!r} (or creates it under another name) leaves it "
            "waiting"
        )


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
        sample = value[:4]  # the first few items stand for the rest
        if not sample:
            return 8
        return (sum(approx_size(v) for v in sample) * len(value)) // len(sample) + 8 * len(value)
    return sys.getsizeof(value)

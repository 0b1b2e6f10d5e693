"""The streaming side of the dataflow engine: batching with a linger time, credit-based
backpressure, ordered delivery and drain-and-stop.

A stream has no end of input: values flow as they are sent. Every worker's streaming operations
share one *pump* thread (started on first use) that sends batches when they are full or have
waited ``stream.linger_ms`` and returns credits. A received batch goes into its targets' queues
as it arrives (in the dataflow's dispatcher thread, which never sends), or, when those are full,
once the consumer has made room (in the pump).

Backpressure, end to end: a worker may have at most ``stream.window_batches`` batches of one
operation in flight to each other worker; a receiver returns a credit only when it has moved a
batch into its targets' queues, and it does that only while those hold fewer than
``stream.receive_buffer`` values. So a slow consumer stops its senders' batches, their unsent
values pile up to ``stream.send_buffer`` and ``send`` returns ``False``: memory is bounded
everywhere, however long the stream runs.

Ordering: values from one source to one target arrive in the order sent (one FIFO path: the
sender's batch, the channel, the receiver's queue).

Stopping: ``finish(source)`` ends a source's stream. Once all of a worker's sources have finished
and everything it sent is delivered, it tells the targets' workers; a target's stream ends after
every sending worker has said so and its queue is empty: every value sent before the stop is
delivered exactly once.

A batch travels as a list of *runs*, ``(target, [values...])``: values for one target in the
order they were sent, so that a receiver moves a run into its target's queue in one ``extend``
and :meth:`StreamOperation.send_many` adds a slice of values in one step.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from twister2.net.dataflow import Dataflow, Operation, OperationError
from twister2.net.plan import Plan

__all__ = ["END", "StreamOperation", "StreamPump"]

Run = tuple[int, list[Any]]
"""Values for one target, in the order sent: ``(target, values)``."""


def _unpicklable(batch: list[Run]) -> str | None:
    """The type of the first value in ``batch`` that cannot be pickled, if any."""
    for _, values in batch:
        for value in values:
            culprit = _culprit(value)
            if culprit is not None:
                return culprit
    return None


def _culprit(value: Any) -> str | None:
    try:
        pickle.dumps(value, protocol=5)
    except Exception:
        name = type(value).__qualname__
        module = type(value).__module__
        name = name if module == "builtins" else f"{module}.{name}"
        inner = value.values() if isinstance(value, dict) else value
        if isinstance(value, tuple | list | set | frozenset | dict):
            for item in inner:
                found = _culprit(item)
                if found is not None:
                    return f"{name} holding {found}"
        return name
    return None


class _End:
    def __repr__(self) -> str:
        return "END"


END = _End()
"""What :meth:`StreamOperation.receive` returns once a target's stream has ended."""


class StreamPump:
    """One thread per worker that moves every streaming operation's batches (no busy waiting).

    Lock order: an operation's lock may be held while taking the pump's (``wake`` is called
    under it), never the other way round: the pump looks at its operations with its own lock
    released, and a ``wake`` in the meantime keeps it from going to sleep."""

    def __init__(self, flow: Dataflow) -> None:
        self.flow = flow
        self.cond = threading.Condition()
        self.ops: list[StreamOperation] = []
        self.relays: list[Callable[[], bool]] = []
        self._stop = False
        self._woken = False
        self._thread = threading.Thread(
            target=self._run, name=f"twister2-stream-{flow.rank}", daemon=True
        )
        self._thread.start()

    def add(self, op: StreamOperation) -> None:
        with self.cond:
            self.ops.append(op)
            self._woken = True
            self.cond.notify_all()

    def wake(self) -> None:
        with self.cond:
            self._woken = True
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                if self._stop:
                    return
                self._woken = False
                ops = [op for op in self.ops if not op._retired]
                self.ops = ops
            timeout: float | None = None
            for op in ops:
                try:
                    due = op._pump()
                except OperationError as exc:  # reported to the user's thread
                    op._set_error(exc)
                    continue
                except Exception as exc:
                    error = op._wrap(exc, f"{type(exc).__name__}: {exc}")
                    error.__cause__ = exc
                    op._set_error(error)
                    continue
                if due is not None:
                    timeout = due if timeout is None else min(timeout, due)
            relayed = False
            for relay in list(self.relays):
                relayed = relay() or relayed
            busy = relayed or any(op._has_work() for op in ops)
            with self.cond:
                if self._stop:
                    return
                if not busy and not self._woken:
                    self.cond.wait(timeout)

    def close(self) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        self._thread.join(timeout=10.0)


def pump_of(flow: Dataflow) -> StreamPump:
    pump = getattr(flow, "_stream_pump", None)
    if pump is None:
        pump = StreamPump(flow)
        flow._stream_pump = pump  # type: ignore[attr-defined]
        flow.on_close(pump.close)
    return pump  # type: ignore[no-any-return]


class StreamOperation(Operation):
    """What every streaming operator shares. Subclasses route values (``send``, ``send_many``)
    and turn the runs of received batches into target outputs (``_absorb``)."""

    def __init__(self, flow: Dataflow, plan: Plan) -> None:
        self._pump_ref = pump_of(flow)
        super().__init__(flow, plan)
        self._pump_ref.add(self)

    def _init_state(self) -> None:
        """State that must exist before the operation is registered (messages may arrive from
        then on); subclasses extend it rather than set state after ``__init__``."""
        flow = self.flow
        self._linger = float(flow.setting("stream.linger_ms")) / 1000.0
        self._batch = int(flow.setting("stream.batch_records"))
        self._window = int(flow.setting("stream.window_batches"))
        self._limit = int(flow.setting("stream.send_buffer"))
        self._out_limit = int(flow.setting("stream.receive_buffer"))
        self._boxes: dict[int, dict[int, list[Any]]] = {}  # worker -> target -> values
        self._counts: dict[int, int] = {}  # values waiting in each worker's box
        self._since: dict[int, float] = {}
        self._in_flight: dict[int, int] = {}
        self._inbox: deque[tuple[int, list[Run]]] = deque()
        self._acks_due: dict[int, int] = {}
        self._outputs: dict[int, deque[Any]] = {
            t: deque() for t in self.plan.local_targets(self.rank)
        }
        self._queued = 0
        self._ends: set[int] = set()
        self._end_sent = False
        self._retired = False
        self._senders = sorted(set(self.plan.sources))
        self._receivers = self.plan.target_workers

    # -- sending (user thread) ---------------------------------------------------------------------
    def send_many(self, source: int, values: Iterable[Any]) -> int:
        """Stream the first values of ``values`` from ``source``, as many as the send buffer
        takes: the number taken (``0``: the buffer is full; send the rest again later).

        Values taken are sent as :meth:`send` sends them, in order; operators that can route a
        list at once (partition, direct, broadcast, keyed ones) take it in one step.
        """
        taken = 0
        send: Callable[[int, Any], bool] = self.send  # type: ignore[attr-defined]
        for value in values:
            if not send(source, value):
                break
            taken += 1
        return taken

    def _room(self, wanted: int, copies: int = 1) -> int:
        """How many of ``wanted`` values (each going to ``copies`` workers) the send buffer
        takes now (lock held): at least one while it is not full."""
        free = self._limit - self._pending
        if free <= 0 or wanted <= 0:
            return 0
        return min(wanted, max(1, free // copies))

    def _put(self, dest: int, target: int, values: list[Any]) -> bool:
        """Add ``values`` (a list the operation owns) for ``target`` on worker ``dest`` (lock
        held); ``True`` when the pump must look: a new batch (linger deadline) or a full one."""
        box = self._boxes.get(dest)
        if box is None:
            box = self._boxes[dest] = {}
        count = self._counts.get(dest, 0)
        fresh = count == 0
        if fresh:
            self._since[dest] = time.monotonic()
        run = box.get(target)
        if run is None:
            box[target] = values
        else:
            run.extend(values)
        count += len(values)
        self._counts[dest] = count
        self._pending += len(values)
        return fresh or count >= self._batch

    def _put_one(self, dest: int, target: int, value: Any) -> bool:
        """:meth:`_put` of one value."""
        box = self._boxes.get(dest)
        if box is None:
            box = self._boxes[dest] = {}
        count = self._counts.get(dest, 0)
        fresh = count == 0
        if fresh:
            self._since[dest] = time.monotonic()
        run = box.get(target)
        if run is None:
            box[target] = [value]
        else:
            run.append(value)
        count += 1
        self._counts[dest] = count
        self._pending += 1
        return fresh or count >= self._batch

    def _enqueue(self, dest: int, target: int, value: Any) -> bool:
        """Add ``value`` for ``target`` on worker ``dest``; ``False`` (value not taken) when the
        send buffer is full: send it again later."""
        with self._cond:
            if self._error is not None:
                self._raise_error()
            if self._pending >= self._limit:
                self._pump_ref.wake()
                return False
            wake = self._put_one(dest, target, value)
        if wake:
            self._pump_ref.wake()
        return True

    def _enqueue_all(self, dests: list[int], target: int, value: Any, force: bool = False) -> bool:
        """Add ``value`` for ``target`` on each worker in ``dests``; ``False`` (and nothing
        added) when the send buffer is full, unless ``force``."""
        with self._cond:
            self._raise_error()
            if self._pending >= self._limit and not force:
                self._pump_ref.wake()
                return False
            wake = False
            for dest in dests:
                wake = self._put_one(dest, target, value) or wake
        if wake:
            self._pump_ref.wake()
        return True

    def finish(self, source: int) -> None:
        """End ``source``'s stream: what it sent is still delivered (drain), then it stops."""
        with self._cond:
            super().finish(source)
        self._pump_ref.wake()

    # -- the pump thread ---------------------------------------------------------------------------
    def _has_work(self) -> bool:
        with self._cond:
            if self._error is not None or self._retired:
                return False
            now = time.monotonic()
            finished = self.sources_finished
            sendable = any(
                count
                and self._in_flight.get(d, 0) < self._window
                and (count >= self._batch or now - self._since[d] >= self._linger or finished)
                for d, count in self._counts.items()
            )
            ending = finished and not self._end_sent and self._drained()
            return sendable or self._absorbable() or any(self._acks_due.values()) or ending

    def _drained(self) -> bool:
        return not any(self._counts.values()) and not any(self._in_flight.values())

    def _pump(self) -> float | None:
        """Move what can move; the seconds until the next linger deadline (None: none)."""
        sends: list[tuple[int, str, Any]] = []
        with self._cond:
            if self._error is not None or self._retired:
                return None
            self._absorb_inbox()
            for sender, n in self._acks_due.items():
                if n:
                    sends.append((sender, "ack", n))
            self._acks_due = {}
            now = time.monotonic()
            finished = self.sources_finished
            due: float | None = None
            for dest, count in self._counts.items():
                if not count:
                    continue
                in_flight = self._in_flight.get(dest, 0)
                ripe = now - self._since[dest] >= self._linger or finished
                while count and in_flight < self._window and (count >= self._batch or ripe):
                    runs, taken = self._take_batch(dest, count)
                    count -= taken
                    self._pending -= taken
                    in_flight += 1
                    sends.append((dest, "data", runs))
                self._counts[dest] = count
                self._in_flight[dest] = in_flight
                if count and in_flight < self._window:  # not ripe yet (else: an ack wakes us)
                    left = self._linger - (now - self._since[dest])
                    due = left if due is None else min(due, left)
            if finished and not self._end_sent and self._drained() and not sends:
                self._end_sent = True
                sends += [(w, "end", None) for w in self._receivers]
            self._cond.notify_all()
        for dest, kind, payload in sends:
            self._transmit(dest, kind, payload)
        return due

    def _transmit(self, dest: int, kind: str, payload: Any) -> None:
        try:
            super()._transmit(dest, kind, payload)
        except OperationError as exc:
            culprit = _unpicklable(payload) if kind == "data" else None
            if culprit is None:
                raise
            cause = exc.__cause__ or exc
            msg = f"cannot send a value of type {culprit} to worker {dest}: {cause}"
            raise self._wrap(cause, msg) from cause

    def _take_batch(self, dest: int, count: int) -> tuple[list[Run], int]:
        """Up to ``stream.batch_records`` values of worker ``dest``'s box, as runs (each a
        prefix of a target's values, so order per target is kept); lock held."""
        box = self._boxes[dest]
        if count <= self._batch:
            self._boxes[dest] = {}
            return list(box.items()), count
        room = self._batch
        runs: list[Run] = []
        for target in list(box):
            run = box[target]
            if len(run) <= room:
                runs.append((target, run))
                del box[target]
                room -= len(run)
            else:
                runs.append((target, run[:room]))
                del run[:room]
                room = 0
            if room == 0:
                break
        return runs, self._batch

    def _absorbable(self) -> bool:
        return (
            bool(self._inbox)
            and self._queued < self._out_limit
            and any(self._can_absorb(sender) for sender, _ in self._inbox)
        )

    def _can_absorb(self, sender: int) -> bool:
        """Whether a batch from worker ``sender`` may be absorbed now (lock held)."""
        return True

    def _absorb_inbox(self) -> None:
        """Absorb received batches while the targets' queues have room; a batch that must wait
        (``_can_absorb``) holds back the later ones of its sender, not the others'."""
        held: set[int] = set()
        kept: deque[tuple[int, list[Run]]] = deque()
        inbox = self._inbox
        while inbox and self._queued < self._out_limit:
            sender, batch = inbox.popleft()
            if sender in held or not self._can_absorb(sender):
                held.add(sender)
                kept.append((sender, batch))
                continue
            self._absorb(sender, batch)
            self._acks_due[sender] = self._acks_due.get(sender, 0) + 1
        if kept:
            kept.extend(inbox)
            self._inbox = kept

    def _absorb(self, sender: int, batch: list[Run]) -> None:
        """Turn a received batch into outputs (``self._emit_many``); lock held."""
        for target, values in batch:
            self._emit_many(target, values)

    def _emit(self, target: int, value: Any) -> None:
        self._outputs[target].append(value)
        self._queued += 1

    def _emit_many(self, target: int, values: list[Any]) -> None:
        self._outputs[target].extend(values)
        self._queued += len(values)

    # -- receiving (dispatcher thread) -------------------------------------------------------------
    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        if kind == "data":
            self._inbox.append((source, payload))
            if self.id and not self._retired:  # into the queues now: one hop less
                self._absorb_inbox()  # (not while messages that came early are replayed)
        elif kind == "ack":
            self._in_flight[source] -= payload
        elif kind == "end":
            self._ends.add(source)
        self._pump_ref.wake()

    # -- the targets (user thread) -----------------------------------------------------------------
    def _target_ended(self, target: int) -> bool:
        heard_all = self.rank not in self._receivers or set(self._senders) <= self._ends
        return heard_all and not self._inbox and not self._outputs[target]

    def _check_target(self, target: int) -> None:
        if target not in self._outputs:
            n = len(self.plan.targets)
            where = (
                f"target {target} is on worker {self.plan.targets[target]}, not here"
                if 0 <= target < n
                else f"there is no target {target} (the targets are 0..{n - 1})"
            )
            msg = f"{self.name} on worker {self.rank}: {where}"
            raise ValueError(msg)

    def receive(self, target: int, timeout: float | None = None) -> Any:
        """The next value for ``target``: waits up to ``timeout`` s (``None``: forever);
        :data:`END` once the stream has ended. Raises ``TimeoutError`` at the deadline."""
        self._check_target(target)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._raise_error()
                queue = self._outputs[target]
                if queue:
                    value = queue.popleft()
                    self._queued -= 1
                    if self._inbox:
                        self._pump_ref.wake()
                    return value
                if self._target_ended(target):
                    return END
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    msg = (
                        f"{self.name} on worker {self.rank}: nothing for target {target} "
                        f"within {timeout:g} s"
                    )
                    raise TimeoutError(msg)
                self._cond.wait(remaining if remaining is not None else 0.5)

    def poll(self, target: int) -> list[Any]:
        """Every value ready for ``target`` now (possibly none), without waiting."""
        self._check_target(target)
        with self._cond:
            self._raise_error()
            queue = self._outputs[target]
            if not queue:
                return []
            values = list(queue)
            queue.clear()
            self._queued -= len(values)
            wake = bool(self._inbox)
        if wake:
            self._pump_ref.wake()
        return values

    def ended(self, target: int) -> bool:
        """Whether ``target``'s stream has ended (every value it will get was polled)."""
        self._check_target(target)
        with self._cond:
            self._raise_error()
            return self._target_ended(target)

    # -- the Operation protocol --------------------------------------------------------------------
    def _step(self) -> None:
        self._pump_ref.wake()

    def done(self) -> bool:
        targets_done = all(self._target_ended(t) for t in self._outputs)
        return self._end_sent and targets_done

    def wait(self, timeout: float | None = None) -> Operation:
        """Wait until every local source's stream is drained and every local target has ended
        (it does not consume: call :meth:`receive` or :meth:`poll` from another thread)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self.done():
                self._raise_error()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    msg = (
                        f"{self.name} on worker {self.rank}: stream did not end within {timeout} s"
                    )
                    raise OperationError(msg)
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
        return self

    def close(self) -> None:
        """Stop moving this operation's data (an abrupt stop; :meth:`finish` drains)."""
        with self._cond:
            self._retired = True
        self.flow._forget(self.id)

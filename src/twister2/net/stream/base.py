"""The streaming side of the dataflow engine: batching with a linger time, credit-based
backpressure, ordered delivery and drain-and-stop.

A stream has no end of input: values flow as they are sent. Every worker's streaming operations
share one *pump* thread (started on first use) that sends batches when they are full or have
waited ``stream.linger_ms``, moves received batches to the targets' queues and returns credits.

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
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from twister2.net.dataflow import Dataflow, Operation, OperationError
from twister2.net.plan import Plan

__all__ = ["END", "StreamOperation", "StreamPump"]


class _End:
    def __repr__(self) -> str:
        return "END"


END = _End()
"""What :meth:`StreamOperation.receive` returns once a target's stream has ended."""


class StreamPump:
    """One thread per worker that moves every streaming operation's batches (no busy waiting)."""

    def __init__(self, flow: Dataflow) -> None:
        self.flow = flow
        self.cond = threading.Condition()
        self.ops: list[StreamOperation] = []
        self.relays: list[Callable[[], bool]] = []
        self._stop = False
        self._thread = threading.Thread(
            target=self._run, name=f"twister2-stream-{flow.rank}", daemon=True
        )
        self._thread.start()

    def add(self, op: StreamOperation) -> None:
        with self.cond:
            self.ops.append(op)
            self.cond.notify_all()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                if self._stop:
                    return
                ops = [op for op in self.ops if not op._retired]
                self.ops = ops
            timeout: float | None = None
            for op in ops:
                try:
                    due = op._pump()
                except Exception as exc:  # reported to the user's thread
                    op._set_error(op._wrap(exc, f"{type(exc).__name__}: {exc}"))
                    continue
                if due is not None:
                    timeout = due if timeout is None else min(timeout, due)
            relayed = False
            for relay in list(self.relays):
                relayed = relay() or relayed
            with self.cond:
                if self._stop:
                    return
                if not relayed and not any(op._has_work() for op in self.ops):
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
    """What every streaming operator shares. Subclasses route values (``_route``) and turn the
    records of received batches into target outputs (``_absorb``)."""

    def __init__(self, flow: Dataflow, plan: Plan) -> None:
        self._pump_ref = pump_of(flow)
        super().__init__(flow, plan)
        self._linger = float(flow.setting("stream.linger_ms", 5.0)) / 1000.0
        self._batch = int(flow.setting("stream.batch_records", 256))
        self._window = int(flow.setting("stream.window_batches", 8))
        self._limit = int(flow.setting("stream.send_buffer", 8192))
        self._out_limit = int(flow.setting("stream.receive_buffer", 8192))
        self._pump_ref.add(self)

    def _init_state(self) -> None:
        self._since: dict[int, float] = {}
        self._in_flight: dict[int, int] = {}
        self._inbox: deque[tuple[int, list[Any]]] = deque()
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
    def _enqueue(self, dest: int, record: Any) -> bool:
        """Add a record for worker ``dest``; ``False`` when the send buffer is full."""
        return self._enqueue_all([dest], record)

    def _enqueue_all(self, dests: list[int], record: Any, force: bool = False) -> bool:
        """Add a record for each worker in ``dests``; ``False`` (and nothing added) when the
        send buffer is full: send it again later."""
        with self._cond:
            self._raise_error()
            if self._pending >= self._limit and not force:
                self._pump_ref.wake()
                return False
            full = False
            for dest in dests:
                box = self._outbox.setdefault(dest, [])
                if not box:
                    self._since[dest] = time.monotonic()
                box.append(record)
                self._pending += 1
                full = full or len(box) >= self._batch
        if full:
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
            sendable = any(
                box
                and self._in_flight.get(d, 0) < self._window
                and (
                    len(box) >= self._batch
                    or now - self._since[d] >= self._linger
                    or self.sources_finished
                )
                for d, box in self._outbox.items()
            )
            absorbable = bool(self._inbox) and self._queued < self._out_limit
            ending = self.sources_finished and not self._end_sent and self._drained()
            return sendable or absorbable or any(self._acks_due.values()) or ending

    def _drained(self) -> bool:
        return not any(self._outbox.values()) and not any(self._in_flight.values())

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
            due: float | None = None
            for dest, box in list(self._outbox.items()):
                if not box or self._in_flight.get(dest, 0) >= self._window:
                    continue
                age = now - self._since[dest]
                if len(box) >= self._batch or age >= self._linger or self.sources_finished:
                    batch = box[: self._batch]
                    del box[: self._batch]
                    self._pending -= len(batch)
                    self._since[dest] = now
                    self._in_flight[dest] = self._in_flight.get(dest, 0) + 1
                    sends.append((dest, "data", batch))
                else:
                    left = self._linger - age
                    due = left if due is None else min(due, left)
            if self.sources_finished and not self._end_sent and self._drained() and not sends:
                self._end_sent = True
                sends += [(w, "end", None) for w in self._receivers]
            self._cond.notify_all()
        for dest, kind, payload in sends:
            self._transmit(dest, kind, payload)
        return due

    def _absorb_inbox(self) -> None:
        while self._inbox and self._queued < self._out_limit:
            sender, batch = self._inbox.popleft()
            self._absorb(sender, batch)
            self._acks_due[sender] = self._acks_due.get(sender, 0) + 1

    def _absorb(self, sender: int, batch: list[Any]) -> None:
        """Turn a received batch into outputs (``self._emit``); lock held."""
        for target, value in batch:
            self._emit(target, value)

    def _emit(self, target: int, value: Any) -> None:
        self._outputs[target].append(value)
        self._queued += 1

    # -- receiving (dispatcher thread) -------------------------------------------------------------
    def _on_message(self, source: int, kind: str, payload: Any) -> None:
        if kind == "data":
            self._inbox.append((source, payload))
        elif kind == "ack":
            self._in_flight[source] -= payload
        elif kind == "end":
            self._ends.add(source)
        self._pump_ref.wake()

    # -- the targets (user thread) -----------------------------------------------------------------
    def _target_ended(self, target: int) -> bool:
        heard_all = self.rank not in self._receivers or set(self._senders) <= self._ends
        return heard_all and not self._inbox and not self._outputs[target]

    def receive(self, target: int, timeout: float | None = None) -> Any:
        """The next value for ``target``: waits up to ``timeout`` s (``None``: forever);
        :data:`END` once the stream has ended. Raises ``TimeoutError`` at the deadline."""
        if target not in self._outputs:
            msg = f"{self.name}: target {target} is on worker {self.plan.targets[target]}, not here"
            raise ValueError(msg)
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
                    msg = f"{self.name}: nothing for target {target} within {timeout:g} s"
                    raise TimeoutError(msg)
                self._cond.wait(remaining if remaining is not None else 0.5)

    def poll(self, target: int) -> list[Any]:
        """Every value ready for ``target`` now (possibly none), without waiting."""
        with self._cond:
            self._raise_error()
            queue = self._outputs[target]
            values = list(queue)
            queue.clear()
            self._queued -= len(values)
        if values:
            self._pump_ref.wake()
        return values

    def ended(self, target: int) -> bool:
        with self._cond:
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

"""The channel interface under every communication operator, and its registry by scheme.

A channel connects the ``size`` workers of a job; each worker holds one with its ``rank``.
``send`` moves any picklable value (NumPy and Arrow buffers out of band, uncopied) to another
worker; ``recv`` takes the next value with a tag from one source or from any. Values from one
source with one tag arrive in the order they were sent.

Example
-------
>>> from twister2.net.inproc import InprocChannel
>>> a, b = InprocChannel.group(2)
>>> a.send({"hello": 1}, dest=1, tag=7)
>>> b.recv(source=0, tag=7)
{'hello': 1}
>>> b.recv_from(tag=7, timeout=0.01)
Traceback (most recent call last):
...
twister2.net.channel.ChannelTimeout: worker 1: no message with tag 7 from any worker within 0.01 s
"""

from __future__ import annotations

import abc
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ANY_SOURCE",
    "Channel",
    "ChannelError",
    "ChannelTimeout",
    "Endpoint",
    "Mailbox",
    "available_channels",
    "create_endpoint",
    "register_channel",
]

ANY_SOURCE = -1


class ChannelError(ConnectionError):
    """A channel failed: a peer went away, or a message could not be delivered."""


class ChannelTimeout(ChannelError, TimeoutError):
    """No matching message arrived before the deadline."""


class Channel(abc.ABC):
    """Point-to-point messaging between the workers of one job."""

    scheme: str = ""

    def __init__(self, rank: int, size: int, default_timeout: float | None = None) -> None:
        self.rank = rank
        self.size = size
        self.default_timeout = default_timeout

    @abc.abstractmethod
    def send(self, obj: Any, dest: int, tag: int = 0) -> None:
        """Send ``obj`` to worker ``dest``; returns once the value may be modified again."""

    @abc.abstractmethod
    def recv_from(
        self, source: int = ANY_SOURCE, tag: int = 0, timeout: float | None = None
    ) -> tuple[int, Any]:
        """Receive the next value with ``tag``: ``(source, value)``.

        Raises :class:`ChannelTimeout` when nothing arrives within ``timeout`` seconds
        (default: the channel's ``default_timeout``, from ``network.recv_timeout``).
        """

    def recv(self, source: int = ANY_SOURCE, tag: int = 0, timeout: float | None = None) -> Any:
        """Receive the next value with ``tag`` from ``source`` (or any worker)."""
        return self.recv_from(source, tag, timeout)[1]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sockets, threads and buffers."""

    def _check_peer(self, peer: int, what: str) -> None:
        if not 0 <= peer < self.size:
            msg = f"{what} {peer} is out of range: this job has workers 0..{self.size - 1}"
            raise ValueError(msg)

    def _timeout(self, timeout: float | None) -> float | None:
        return self.default_timeout if timeout is None else timeout

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Endpoint(abc.ABC):
    """A worker's side of a channel before the job's workers know each other.

    A worker makes its endpoint first (a tcp endpoint binds its listening socket), publishes
    ``address`` through the job master, and once every worker's address is known, calls
    ``open`` to get the channel.
    """

    address: str = ""

    @abc.abstractmethod
    def open(self, rank: int, size: int, addresses: list[str], secret: bytes) -> Channel:
        """Connect to the job's other workers and return the channel."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the endpoint holds if ``open`` is never called."""


EndpointFactory = Callable[[Mapping[str, Any]], Endpoint]
_REGISTRY: dict[str, EndpointFactory] = {}


def register_channel(scheme: str, factory: EndpointFactory) -> None:
    """Register an endpoint factory (called with the job's config) under ``scheme``."""
    _REGISTRY[scheme] = factory


def available_channels() -> list[str]:
    """The registered channel schemes."""
    return sorted(_REGISTRY)


def create_endpoint(scheme: str, config: Mapping[str, Any]) -> Endpoint:
    """The endpoint of the channel named ``scheme``, configured by ``config``."""
    try:
        factory = _REGISTRY[scheme]
    except KeyError:
        msg = f"unknown channel {scheme!r} (known: {', '.join(available_channels())})"
        raise ValueError(msg) from None
    return factory(config)


@dataclass
class _Entry:
    seq: int
    value: Any
    nbytes: int


class Mailbox:
    """Received values waiting for ``recv``, by tag and source, in arrival order.

    ``put`` blocks while more than ``max_bytes`` from one source wait unread, which stalls the
    reader of that source's connection and so pushes back on the sender.

    A source ends in one of two ways. :meth:`fail` (the connection broke) makes receives from
    that source, and receives from any source, raise :class:`ChannelError` once nothing matching
    is left. :meth:`close_source` (the peer closed its channel and said goodbye) makes receives
    from that source raise once its queue is empty, but leaves receives from any source waiting
    for the others. Values that arrived before either are always delivered first.

    Example
    -------
    >>> from twister2.net.channel import ANY_SOURCE, Mailbox
    >>> box = Mailbox(rank=0)
    >>> box.put(source=1, tag=5, value="last words")
    >>> box.close_source(1)
    >>> box.get(1, 5, timeout=1.0)
    (1, 'last words')
    >>> box.get(1, 5, timeout=1.0)
    Traceback (most recent call last):
    ...
    twister2.net.channel.ChannelError: worker 0: worker 1 closed its channel
    >>> box.get(ANY_SOURCE, 5, timeout=0.01)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    twister2.net.channel.ChannelTimeout: worker 0: no message with tag 5 from any ... within 0.01 s
    """

    def __init__(self, rank: int, max_bytes: int | None = None) -> None:
        self.rank = rank
        self.max_bytes = max_bytes
        self._cond = threading.Condition()
        self._queues: dict[int, dict[int, deque[_Entry]]] = {}
        self._pending_bytes: dict[int, int] = {}
        self._failed: dict[int, str] = {}
        self._finished: set[int] = set()
        self._closed = False
        self._seq = 0

    def put(self, source: int, tag: int, value: Any, nbytes: int = 0, *, wait: bool = True) -> None:
        """Queue ``value``; with ``wait``, first wait until ``source`` is under ``max_bytes``.

        ``wait=False`` counts the bytes without waiting: for a worker's sends to itself, where
        waiting for its own receive would never end.
        """
        with self._cond:
            if wait and self.max_bytes is not None:
                while (
                    not self._closed
                    and self._pending_bytes.get(source, 0) > 0
                    and self._pending_bytes.get(source, 0) + nbytes > self.max_bytes
                ):
                    self._cond.wait()
            self._seq += 1
            self._queues.setdefault(tag, {}).setdefault(source, deque()).append(
                _Entry(self._seq, value, nbytes)
            )
            self._pending_bytes[source] = self._pending_bytes.get(source, 0) + nbytes
            self._cond.notify_all()

    def fail(self, source: int, reason: str) -> None:
        """Mark ``source`` as gone: receives that wait on it raise :class:`ChannelError`."""
        with self._cond:
            self._failed[source] = reason
            self._cond.notify_all()

    def close_source(self, source: int) -> None:
        """Mark ``source`` as closed normally: it sends nothing more, the others still may."""
        with self._cond:
            self._finished.add(source)
            self._cond.notify_all()

    def close(self) -> None:
        """Close this side: waiting and later receives raise, waiting calls to ``put`` return."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _take(self, source: int, tag: int) -> tuple[int, Any] | None:
        by_source = self._queues.get(tag)
        if not by_source:
            return None
        if source == ANY_SOURCE:
            heads = [(q[0].seq, s) for s, q in by_source.items() if q]
            if not heads:
                return None
            source = min(heads)[1]
        queue = by_source.get(source)
        if not queue:
            return None
        entry = queue.popleft()
        self._pending_bytes[source] -= entry.nbytes
        self._cond.notify_all()
        return source, entry.value

    def _ended(self, source: int) -> str | None:
        """Why nothing more can match a receive from ``source``, or None while something may."""
        if self._closed:
            return "channel closed"
        if source == ANY_SOURCE:
            return next(iter(self._failed.values()), None)
        if source in self._failed:
            return self._failed[source]
        if source in self._finished:
            return f"worker {source} closed its channel"
        return None

    def get(self, source: int, tag: int, timeout: float | None) -> tuple[int, Any]:
        """The next value with ``tag`` from ``source`` (or ``ANY_SOURCE``): ``(source, value)``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                got = self._take(source, tag)
                if got is not None:
                    return got
                why = self._ended(source)
                if why is not None:
                    msg = f"worker {self.rank}: {why}"
                    raise ChannelError(msg)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    who = "any worker" if source == ANY_SOURCE else f"worker {source}"
                    msg = (
                        f"worker {self.rank}: no message with tag {tag} from {who} within "
                        f"{timeout:g} s"
                    )
                    raise ChannelTimeout(msg)
                self._cond.wait(remaining)

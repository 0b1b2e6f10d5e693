"""The tcp channel: one authenticated TCP connection per ordered pair of workers.

A worker's :class:`TcpEndpoint` binds a listening socket; its ``address`` is published through
the job master, and ``open`` returns the :class:`TcpChannel`. Connections are made lazily, on the
first send to a peer, and every connection proves it knows the job's secret
(:func:`twister2.wire.server_handshake`) before a byte of it is parsed, let alone unpickled.

Frames
------
After the handshake the connecting worker sends its rank (``>I``), then frames::

    header   >qQI   tag (int64), pickle length (uint64), number of buffers (uint32)
    lengths  >Q     one per out-of-band buffer
    pickle          the protocol-5 pickle stream
    buffers         each out-of-band buffer (NumPy, Arrow), as it is in the sender's memory

The header, lengths and pickle go out in one ``sendall``; each large buffer goes out in its own
``sendall`` of a memoryview, never copied. The receiver reads every part into a fresh buffer
(NumPy ``empty``, not zero-filled, when large), and the rebuilt arrays live, writable, on
those. A frame with the reserved tag ``GOODBYE_TAG`` and nothing else says the sender closed
its channel normally.

Threads
-------
An accept thread waits for connections; each accepted connection gets a receiver thread that
runs the handshake, reads the peer's rank and then moves frames into the :class:`Mailbox`, where
``put`` waits while too many bytes from that peer are unread (``network.recv_buffer_bytes``):
the reader stops, TCP's window closes, and the sender's ``sendall`` waits. Sends run in the
caller's thread, under one lock per destination. ``close`` ends and joins every thread.

Example
-------
>>> import numpy as np
>>> from twister2.net.tcp import TcpEndpoint
>>> from twister2.wire import new_secret
>>> secret = new_secret()
>>> ends = [TcpEndpoint({}), TcpEndpoint({})]
>>> addresses = [end.address for end in ends]
>>> a, b = [end.open(rank, 2, addresses, secret) for rank, end in enumerate(ends)]
>>> a.send({"x": np.arange(3)}, dest=1, tag=5)
>>> b.recv(source=0, tag=5)
{'x': array([0, 1, 2])}
>>> a.close(); b.close()
"""

from __future__ import annotations

import contextlib
import logging
import operator
import selectors
import socket
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any

from twister2.config import default, lookup
from twister2.net.channel import (
    ANY_SOURCE,
    Channel,
    ChannelError,
    Endpoint,
    Mailbox,
    register_channel,
)
from twister2.net.serialization import dumps, loads, receive_buffer
from twister2.wire import (
    AuthenticationError,
    connect,
    recv_exact,
    recv_into_exact,
    server_handshake,
)

__all__ = ["GOODBYE_TAG", "TcpChannel", "TcpEndpoint"]

log = logging.getLogger(__name__)

GOODBYE_TAG = -(2**63)
"""The tag of the frame a worker sends before it closes its channel; not for user messages."""

_HEADER = struct.Struct(">qQI")
_LENGTH = struct.Struct(">Q")  # one per out-of-band buffer
_RANK = struct.Struct(">I")
_JOIN_LIMIT = 64 * 1024
"""Out-of-band buffers smaller than this are joined with the header in one ``sendall``."""
_CONNECT_ATTEMPT_TIMEOUT = 10.0
_RETRY_FIRST = 0.05
_RETRY_MAX = 1.0


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets.

    >>> format_address("::1", 80)
    '[::1]:80'
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(address: str) -> tuple[str, int]:
    """The ``(host, port)`` of a ``host:port`` address.

    >>> parse_address("[::1]:80"), parse_address("10.0.0.7:4000")
    (('::1', 80), ('10.0.0.7', 4000))
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        msg = f"bad tcp channel address {address!r} (expected host:port)"
        raise ValueError(msg)
    return host.strip("[]"), int(port)


class TcpEndpoint(Endpoint):
    """A worker's listening socket, bound before the workers know each other's addresses.

    Parameters
    ----------
    config
        The job's configuration; reads ``network.interface`` (``"127.0.0.1"``),
        ``network.connect_timeout`` (30 s), ``network.recv_timeout`` (600 s, None for no limit)
        and ``network.recv_buffer_bytes`` (256 MiB of unread data per peer).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        interface = str(lookup(config, "network.interface"))
        self._connect_timeout = float(lookup(config, "network.connect_timeout"))
        recv_timeout = lookup(config, "network.recv_timeout")
        self._recv_timeout = None if recv_timeout is None else float(recv_timeout)
        self._close_timeout = float(lookup(config, "network.close_timeout"))
        max_bytes = lookup(config, "network.recv_buffer_bytes")
        self._recv_buffer_bytes = None if max_bytes is None else int(max_bytes)
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        self._listener: socket.socket | None = socket.create_server(
            (interface, 0), family=family, backlog=socket.SOMAXCONN
        )
        host, port = self._listener.getsockname()[:2]
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        self.address = format_address(host, port)

    def open(self, rank: int, size: int, addresses: list[str], secret: bytes) -> TcpChannel:
        """The channel of worker ``rank``; ``addresses[r]`` is worker ``r``'s endpoint address."""
        if len(addresses) != size:
            msg = f"{len(addresses)} addresses for a job of {size} workers"
            raise ValueError(msg)
        if self._listener is None:
            msg = f"tcp endpoint {self.address} is already opened or closed"
            raise ChannelError(msg)
        listener, self._listener = self._listener, None
        return TcpChannel(
            rank,
            size,
            addresses,
            secret,
            listener,
            connect_timeout=self._connect_timeout,
            recv_timeout=self._recv_timeout,
            recv_buffer_bytes=self._recv_buffer_bytes,
            close_timeout=self._close_timeout,
        )

    def close(self) -> None:
        """Close the listening socket unless ``open`` handed it to a channel."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None


class TcpChannel(Channel):
    """Point-to-point messages over TCP between the workers of one job.

    Made by :meth:`TcpEndpoint.open`, which hands over its bound ``listener``.
    """

    scheme = "tcp"

    def __init__(
        self,
        rank: int,
        size: int,
        addresses: list[str],
        secret: bytes,
        listener: socket.socket,
        *,
        connect_timeout: float = 30.0,
        recv_timeout: float | None = 600.0,
        recv_buffer_bytes: int | None = 268435456,
        close_timeout: float | None = None,
    ) -> None:
        super().__init__(rank, size, recv_timeout)
        self.addresses = list(addresses)
        self._secret = secret
        self._connect_timeout = connect_timeout
        self._close_timeout = float(
            default("network.close_timeout") if close_timeout is None else close_timeout
        )
        self._mailbox = Mailbox(rank, recv_buffer_bytes)
        self._listener = listener
        self._lock = threading.Lock()  # guards _closed, _incoming, _threads
        self._closed = False
        self._closing = threading.Event()
        self._incoming: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._out: dict[int, socket.socket] = {}
        self._out_broken: dict[int, str] = {}
        self._out_locks = [threading.Lock() for _ in range(size)]
        self._wake_r, self._wake_w = socket.socketpair()
        listener.setblocking(False)
        self._accepter = threading.Thread(
            target=self._accept_loop, name=f"twister2-tcp-{rank}-accept", daemon=True
        )
        self._accepter.start()

    # sending ------------------------------------------------------------------------------

    def send(self, obj: Any, dest: int, tag: int = 0) -> None:
        """Send ``obj`` to worker ``dest``; returns once ``obj`` may be modified again.

        Raises
        ------
        ValueError
            ``dest`` is not a worker of this job, or ``tag`` is not an int64 other than
            ``GOODBYE_TAG``.
        SerializationError
            ``obj`` cannot be pickled (nothing was sent).
        ChannelError
            The channel is closed, or the connection to ``dest`` failed.
        """
        self._check_peer(dest, "destination")
        tag = operator.index(tag)
        if not GOODBYE_TAG < tag < 2**63:
            msg = f"tag {tag} is out of range: tags are int64 above {GOODBYE_TAG} (reserved)"
            raise ValueError(msg)
        if self._closed:
            msg = f"worker {self.rank}: send on a closed channel"
            raise ChannelError(msg)
        head, buffers = dumps(obj)  # before any write: a failing pickle leaves no half frame
        if dest == self.rank:
            copies = [bytearray(b) for b in buffers]
            nbytes = len(head) + sum(len(c) for c in copies)
            self._mailbox.put(self.rank, tag, loads(head, copies), nbytes, wait=False)
            return
        lengths = [b.nbytes for b in buffers]
        parts = [
            _HEADER.pack(tag, len(head), len(buffers)),
            struct.pack(f">{len(lengths)}Q", *lengths),
            head,
        ]
        with self._out_locks[dest]:
            sock = self._connection(dest)
            try:
                _send_parts(sock, parts, buffers)
            except OSError as exc:
                self._drop_connection(dest, f"send failed: {exc}")
                if self._closed:
                    msg = f"worker {self.rank}: channel closed during a send to worker {dest}"
                    raise ChannelError(msg) from exc
                msg = (
                    f"worker {self.rank}: send to worker {dest} at {self.addresses[dest]} "
                    f"failed: {exc}"
                )
                raise ChannelError(msg) from exc

    def _connection(self, dest: int) -> socket.socket:
        """The connection to ``dest``, made on first use; the caller holds its lock."""
        sock = self._out.get(dest)
        if sock is not None:
            return sock
        where = f"worker {dest} at {self.addresses[dest]}"
        if dest in self._out_broken:
            msg = f"worker {self.rank}: connection to {where} is broken: {self._out_broken[dest]}"
            raise ChannelError(msg)
        address = parse_address(self.addresses[dest])
        deadline = time.monotonic() + self._connect_timeout
        pause = _RETRY_FIRST
        while True:
            if self._closed:
                msg = f"worker {self.rank}: send on a closed channel"
                raise ChannelError(msg)
            attempt = min(_CONNECT_ATTEMPT_TIMEOUT, max(deadline - time.monotonic(), _RETRY_FIRST))
            try:
                sock = connect(address, self._secret, attempt)
            except AuthenticationError as exc:
                if not isinstance(exc.__cause__, TimeoutError):  # a wrong secret, not a slow peer
                    msg = f"worker {self.rank}: cannot connect to {where}: {exc}"
                    raise ChannelError(msg) from exc
                error: OSError = exc
            except OSError as exc:
                error = exc
            else:
                try:
                    sock.sendall(_RANK.pack(self.rank))
                except OSError as exc:
                    sock.close()
                    msg = f"worker {self.rank}: cannot connect to {where}: {exc}"
                    raise ChannelError(msg) from exc
                self._out[dest] = sock
                return sock
            if time.monotonic() + pause >= deadline:
                msg = (
                    f"worker {self.rank}: cannot connect to {where} within "
                    f"{self._connect_timeout:g} s: {error}"
                )
                raise ChannelError(msg) from error
            self._closing.wait(pause)
            pause = min(2 * pause, _RETRY_MAX)

    def _drop_connection(self, dest: int, why: str) -> None:
        """Close the connection to ``dest`` after a failure; the caller holds its lock."""
        sock = self._out.pop(dest, None)
        if sock is not None:
            sock.close()
        self._out_broken[dest] = why

    # receiving ----------------------------------------------------------------------------

    def recv_from(
        self, source: int = ANY_SOURCE, tag: int = 0, timeout: float | None = None
    ) -> tuple[int, Any]:
        """Receive the next value with ``tag`` from ``source`` (or any worker).

        Raises
        ------
        ChannelTimeout
            Nothing arrived within ``timeout`` (default ``network.recv_timeout``).
        ChannelError
            This channel is closed, or ``source`` (or, for any source, some worker) failed or,
            for a given ``source``, closed its channel.
        """
        if source != ANY_SOURCE:
            self._check_peer(source, "source")
        return self._mailbox.get(source, tag, self._timeout(timeout))

    def _accept_loop(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    self._accept_one()
        except OSError:
            if not self._closing.is_set():
                log.exception("worker %d: the tcp channel stopped accepting connections", self.rank)
        finally:
            selector.close()

    def _accept_one(self) -> None:
        try:
            sock, peer = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        sock.setblocking(True)
        with self._lock:
            if self._closed:
                sock.close()
                return
            self._threads = [t for t in self._threads if t.is_alive()]
            self._incoming.add(sock)
            thread = threading.Thread(
                target=self._serve,
                args=(sock, format_address(*peer[:2])),
                name=f"twister2-tcp-{self.rank}-recv-{peer[1]}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        """Authenticate one incoming connection, then move its frames into the mailbox."""
        try:
            server_handshake(sock, self._secret)
        except AuthenticationError as exc:
            if not self._closed:
                log.warning("worker %d: refused connection from %s: %s", self.rank, peer, exc)
            self._forget(sock)
            return
        source = None
        try:
            (source,) = _RANK.unpack(recv_exact(sock, _RANK.size))
            if not 0 <= source < self.size or source == self.rank:
                log.warning(
                    "worker %d: refused connection from %s claiming to be worker %d",
                    self.rank,
                    peer,
                    source,
                )
                return
            self._receive_frames(sock, source, peer)
        except OSError as exc:
            if source is not None and not self._closed:
                why = f"connection from worker {source} ({peer}) closed unexpectedly: {exc}"
                self._mailbox.fail(source, why)
        except Exception as exc:
            who = peer if source is None else f"worker {source} ({peer})"
            why = f"connection from {who} failed: {exc!r}"
            log.exception("worker %d: %s", self.rank, why)
            if source is not None:
                self._mailbox.fail(source, why)
        finally:
            self._forget(sock)

    def _receive_frames(self, sock: socket.socket, source: int, peer: str) -> None:
        while True:
            tag, n_head, n_buffers = _HEADER.unpack(recv_exact(sock, _HEADER.size))
            if tag == GOODBYE_TAG:
                self._mailbox.close_source(source)
                return
            lengths: tuple[int, ...] = ()
            if n_buffers:
                raw = recv_exact(sock, n_buffers * _LENGTH.size)
                lengths = struct.unpack(f">{n_buffers}Q", raw)
            head = recv_exact(sock, n_head)
            buffers = [receive_buffer(n) for n in lengths]
            for buf in buffers:
                recv_into_exact(sock, memoryview(buf))
            try:
                value = loads(head, buffers)
            except Exception as exc:
                why = f"cannot unpickle a message from worker {source} ({peer}): {exc!r}"
                log.error("worker %d: %s", self.rank, why)
                self._mailbox.fail(source, why)
                return  # the frame was read whole, yet the value is lost: stop here
            self._mailbox.put(source, tag, value, n_head + sum(lengths))

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._incoming.discard(sock)
            sock.close()

    # closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Say goodbye to the peers this worker sent to, close every socket, join every thread.

        Idempotent. Receives waiting on this channel raise :class:`ChannelError`. A peer this
        worker never sent to learns nothing: its receives from this worker wait for their
        deadline.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._closing.set()
        for dest in range(self.size):
            self._close_outgoing(dest)
        self._wake_w.send(b"x")
        self._join(self._accepter)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self._mailbox.close()  # wakes receivers waiting in put
        with self._lock:
            for sock in self._incoming:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            self._join(thread)

    def _close_outgoing(self, dest: int) -> None:
        lock = self._out_locks[dest]
        if not lock.acquire(timeout=self._close_timeout):
            # A send is stuck (the peer reads nothing): break its connection to free the lock.
            stuck = self._out.get(dest)
            if stuck is not None:
                with contextlib.suppress(OSError):
                    stuck.shutdown(socket.SHUT_RDWR)
            if not lock.acquire(timeout=self._close_timeout):
                log.warning("worker %d: a send to worker %d did not end", self.rank, dest)
                return
        try:
            sock = self._out.pop(dest, None)
            if sock is None:
                return
            try:
                sock.settimeout(self._close_timeout)
                sock.sendall(_HEADER.pack(GOODBYE_TAG, 0, 0))
            except OSError as exc:
                log.debug("worker %d: no goodbye to worker %d: %s", self.rank, dest, exc)
            finally:
                sock.close()
        finally:
            lock.release()

    def _join(self, thread: threading.Thread) -> None:
        thread.join(self._close_timeout)
        if thread.is_alive():
            log.warning("worker %d: thread %s did not end", self.rank, thread.name)


def _send_parts(sock: socket.socket, parts: list[bytes], buffers: list[memoryview]) -> None:
    """Send ``parts`` joined, then ``buffers`` in order: small ones joined, large ones as-is."""
    pending = bytearray().join(parts)
    for buf in buffers:
        if buf.nbytes < _JOIN_LIMIT:
            pending += buf
            continue
        if pending:
            sock.sendall(pending)
            pending = bytearray()
        sock.sendall(buf)
    if pending:
        sock.sendall(pending)


register_channel("tcp", TcpEndpoint)

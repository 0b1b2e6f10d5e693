"""The mpi channel: point-to-point messaging over MPI, the fast path on HPC clusters.

Workers are the ranks of ``MPI.COMM_WORLD`` (the job is started with ``twister2 submit mpi``,
which runs the workers under ``mpiexec``); the channel works on a duplicate of it, so its traffic
never meets the user's own mpi4py calls.

Wire format. A value travels as one *header* message on a reserved MPI tag (the user's tag, the
lengths of the out-of-band buffers, then the pickle stream from
:func:`~twister2.net.serialization.dumps`), then each out-of-band buffer as its own message on a
second reserved tag, sent straight from the NumPy/Arrow memory without a copy. A lock per
destination keeps the parts of one value together; MPI's non-overtaking rule keeps them in order.

Progress. A background thread receives every message into the worker's
:class:`~twister2.net.channel.Mailbox`, so a ``send`` never waits on the receiver calling
``recv`` (a ring of large sends before any receive does not deadlock), and ``recv`` is a
condition wait. The thread polls with ``Improbe``: it spins briefly after traffic (low latency)
and backs off to sleeps of about a millisecond when idle (no burnt core).

Shut-down. ``close`` sends a goodbye to every other worker and waits, bounded by
``network.close_timeout`` seconds, for theirs: MPI delivers in order, so once every goodbye is in
no message is left in flight, and the communicator is freed.

Example
-------
Importing the module registers the channel; opening it needs the job's ranks, under ``mpiexec``:

>>> from twister2.net.channel import available_channels, create_endpoint
>>> "mpi" in available_channels()
True
>>> endpoint = create_endpoint("mpi", {})  # doctest: +SKIP
>>> ch = endpoint.open(rank, size, [], b"")  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import logging
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from twister2.config import lookup
from twister2.net.channel import (
    ANY_SOURCE,
    Channel,
    ChannelError,
    Endpoint,
    Mailbox,
    register_channel,
)
from twister2.net.serialization import dumps, loads, receive_buffer

__all__ = ["MpiChannel", "MpiEndpoint"]

logger = logging.getLogger(__name__)

_HEADER_TAG = 1
"""MPI tag of header messages (values and goodbyes); the user's tag travels inside."""
_PART_TAG = 2
"""MPI tag of the out-of-band buffers that follow a header."""

_DATA = 0
_GOODBYE = 1
_PREFIX = struct.Struct("<BqI")
"""Header prefix: kind, user tag, number of out-of-band buffers; their lengths follow (``<Q``)."""
_LENGTH = struct.Struct("<Q")

_SPIN_S = 200e-6
"""After traffic the progress thread polls without sleeping for this long (ping-pong latency)."""
_BACKOFF = 0.1
"""Then it sleeps this fraction of the time it has been idle, so waking late costs <= 10 %..."""
_MAX_SLEEP_S = 1e-3
"""...but at most this long: the latency an idle worker adds to the next message..."""
_LONG_IDLE_S = 1.0
_LONG_SLEEP_S = 4e-3
"""...and after ``_LONG_IDLE_S`` of idleness at most this (each wake-up costs CPU)."""
_INT64 = range(-(2**63), 2**63)

_INSTALL_HINT = (
    "the mpi channel needs mpi4py and an MPI library: install the mpi extra "
    "(pip install 'twister2[mpi]') and run the job with 'twister2 submit mpi ...'"
)


def _import_mpi() -> Any:
    """``mpi4py.MPI``, initialised with full thread support (imported on first use only)."""
    try:
        import mpi4py
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    mpi4py.rc.thread_level = "multiple"
    try:
        from mpi4py import MPI
    except ImportError as exc:  # mpi4py without a loadable MPI library
        msg = f"{_INSTALL_HINT} (importing mpi4py.MPI failed: {exc})"
        raise ImportError(msg) from exc
    if MPI.Is_finalized():
        msg = "the mpi channel cannot start: MPI has already been finalised in this process"
        raise ChannelError(msg)
    if not MPI.Is_initialized():  # the user turned off mpi4py.rc.initialize
        MPI.Init_thread(MPI.THREAD_MULTIPLE)
    provided = MPI.Query_thread()
    if provided != MPI.THREAD_MULTIPLE:
        levels = {
            MPI.THREAD_SINGLE: "single",
            MPI.THREAD_FUNNELED: "funneled",
            MPI.THREAD_SERIALIZED: "serialized",
        }
        msg = (
            f"the mpi channel needs MPI_THREAD_MULTIPLE (it receives in a background thread), "
            f"but this MPI library provides only thread level {levels.get(provided, provided)!r}: "
            f"use an MPI built with thread support (the mpi extra's MPICH is), and if the "
            f"program imports mpi4py.MPI itself, leave mpi4py.rc.thread_level at 'multiple'"
        )
        raise ChannelError(msg)
    return MPI


class MpiEndpoint(Endpoint):
    """The mpi channel before it is opened; MPI finds the peers itself, so ``address`` is empty.

    Parameters
    ----------
    config : Mapping[str, Any]
        The job's configuration. ``network.recv_timeout`` (seconds, default 600, ``None`` waits
        forever) is the default receive deadline; ``network.close_timeout`` (default 10 s) bounds
        the wait for the other workers' goodbyes in :meth:`MpiChannel.close`.

    Raises
    ------
    ImportError
        When mpi4py (the ``mpi`` extra) is missing.
    ChannelError
        When MPI does not provide ``MPI_THREAD_MULTIPLE``.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.address = ""
        self._mpi = _import_mpi()

    def open(self, rank: int, size: int, addresses: list[str], secret: bytes) -> MpiChannel:
        """The channel of worker ``rank`` of ``size``, which must be this process's MPI rank.

        ``addresses`` and ``secret`` are not used: the MPI runtime connects and trusts the ranks.

        Raises
        ------
        ChannelError
            When the process is not rank ``rank`` of an MPI job of ``size`` ranks.
        """
        world = self._mpi.COMM_WORLD
        world_rank, world_size = world.Get_rank(), world.Get_size()
        if world_size == 1 and size > 1:
            msg = (
                f"the mpi channel needs the mpi cluster: worker {rank} of {size} was not started "
                f"by mpiexec (MPI sees a single process); run the job with "
                f"'twister2 submit mpi ...' or choose the tcp channel"
            )
            raise ChannelError(msg)
        if (world_rank, world_size) != (rank, size):
            msg = (
                f"the mpi channel needs the mpi cluster: this process is MPI rank {world_rank} of "
                f"{world_size}, but was asked to be worker {rank} of {size}; run the job with "
                f"'twister2 submit mpi ...' so that MPI ranks are the worker ids"
            )
            raise ChannelError(msg)
        recv_timeout = lookup(self.config, "network.recv_timeout")
        return MpiChannel(
            self._mpi,
            world.Dup(),
            default_timeout=None if recv_timeout is None else float(recv_timeout),
            close_timeout=float(lookup(self.config, "network.close_timeout")),
        )


class MpiChannel(Channel):
    """A worker's channel over an MPI communicator (see the module's description).

    Parameters
    ----------
    mpi : module
        ``mpi4py.MPI``, initialised with ``MPI_THREAD_MULTIPLE``.
    comm : mpi4py.MPI.Intracomm
        The communicator to own: a duplicate of ``COMM_WORLD``, freed by :meth:`close`.
    default_timeout : float or None
        Default receive deadline in seconds.
    close_timeout : float
        How long :meth:`close` waits for the other workers' goodbyes.
    """

    scheme = "mpi"

    def __init__(
        self, mpi: Any, comm: Any, default_timeout: float | None, close_timeout: float = 10.0
    ) -> None:
        super().__init__(comm.Get_rank(), comm.Get_size(), default_timeout)
        self._mpi = mpi
        self._comm = comm
        self._close_timeout = close_timeout
        self._mailbox = Mailbox(self.rank)
        self._send_locks = [threading.Lock() for _ in range(self.size)]
        self._closed = False
        self._close_lock = threading.Lock()
        self._stop = threading.Event()
        self._state = threading.Condition()
        self._goodbyes: set[int] = set()
        self._progress_error: str | None = None
        self._thread = threading.Thread(
            target=self._progress, name=f"twister2-mpi-progress-{self.rank}", daemon=True
        )
        self._thread.start()
        _open_channels.add(self)

    # -- sending --------------------------------------------------------------------------

    def send(self, obj: Any, dest: int, tag: int = 0) -> None:
        """Send ``obj`` to worker ``dest`` with ``tag``; buffers go out of band, uncopied.

        Raises
        ------
        ValueError
            When ``dest`` is not a worker of this job.
        SerializationError
            When ``obj`` cannot be pickled (nothing is sent).
        ChannelError
            When this channel, or ``dest``'s, is closed, or MPI fails.
        """
        self._check_peer(dest, "destination")
        if tag not in _INT64:
            msg = f"tag {tag!r} is out of range: tags are signed 64-bit integers"
            raise ValueError(msg)
        head, buffers = dumps(obj)
        if self._closed:
            self._raise_closed()
        if dest == self.rank:
            copies = [bytearray(b) for b in buffers]
            nbytes = len(head) + sum(len(c) for c in copies)
            self._mailbox.put(self.rank, tag, loads(head, copies), nbytes)
            return
        if dest in self._goodbyes:
            msg = f"worker {self.rank}: cannot send to worker {dest}, it has closed its channel"
            raise ChannelError(msg)
        header = self._header(_DATA, tag, buffers) + head
        byte = self._mpi.BYTE
        with self._send_locks[dest]:  # the parts of one value stay together, in order
            if self._closed:
                self._raise_closed()
            try:
                self._comm.Send([header, byte], dest, _HEADER_TAG)
                for buf in buffers:
                    self._comm.Send([buf, byte], dest, _PART_TAG)
            except self._mpi.Exception as exc:
                msg = f"worker {self.rank}: sending to worker {dest} failed: {exc}"
                raise ChannelError(msg) from exc

    @staticmethod
    def _header(kind: int, tag: int, buffers: Sequence[memoryview]) -> bytes:
        lengths = (_LENGTH.pack(b.nbytes) for b in buffers)
        return _PREFIX.pack(kind, tag, len(buffers)) + b"".join(lengths)

    def _raise_closed(self) -> None:
        msg = f"worker {self.rank}: cannot send, the channel is closed"
        raise ChannelError(msg)

    # -- receiving ------------------------------------------------------------------------

    def recv_from(
        self, source: int = ANY_SOURCE, tag: int = 0, timeout: float | None = None
    ) -> tuple[int, Any]:
        """Receive the next value with ``tag`` from ``source`` (or any worker): ``(source, value)``.

        Raises
        ------
        ChannelTimeout
            When nothing arrives within ``timeout`` (default: ``network.recv_timeout``).
        ChannelError
            When the channel is closed or its progress thread failed.
        """
        if source != ANY_SOURCE:
            self._check_peer(source, "source")
        return self._mailbox.get(source, tag, self._timeout(timeout))

    def _progress(self) -> None:
        """The progress thread: receive every message into the mailbox until stopped."""
        mpi = self._mpi
        status = mpi.Status()
        last_traffic = time.monotonic()
        try:
            while not self._stop.is_set():
                message = self._comm.Improbe(mpi.ANY_SOURCE, _HEADER_TAG, status)
                if message is not None:
                    self._receive(message, status)
                    last_traffic = time.monotonic()
                    continue
                idle = time.monotonic() - last_traffic
                if idle >= _SPIN_S:
                    cap = _MAX_SLEEP_S if idle < _LONG_IDLE_S else _LONG_SLEEP_S
                    time.sleep(min(cap, idle * _BACKOFF))
        except Exception as exc:  # MPI failed under us: wake every receive with the reason
            reason = f"the mpi channel's progress thread failed: {exc!r}"
            logger.exception("worker %d: %s", self.rank, reason)
            with self._state:
                self._progress_error = reason
                self._state.notify_all()
            for source in range(self.size):
                if source != self.rank:
                    self._mailbox.fail(source, reason)

    def _receive(self, message: Any, status: Any) -> None:
        """Receive one header and the parts that follow it from the same source."""
        mpi = self._mpi
        source = status.Get_source()
        header = bytearray(status.Get_count(mpi.BYTE))
        message.Recv([header, mpi.BYTE])
        kind, tag, nparts = _PREFIX.unpack_from(header)
        offset = _PREFIX.size
        parts = []
        for _ in range(nparts):
            (length,) = _LENGTH.unpack_from(header, offset)
            offset += _LENGTH.size
            part = receive_buffer(length)
            self._comm.Recv([part, mpi.BYTE], source, _PART_TAG)
            parts.append(part)
        if kind == _GOODBYE:
            self._mailbox.close_source(source)
            with self._state:
                self._goodbyes.add(source)
                self._state.notify_all()
            return
        try:
            value = loads(memoryview(header)[offset:], parts)
        except Exception as exc:
            reason = f"a value from worker {source} with tag {tag} could not be unpickled: {exc!r}"
            logger.error("worker %d: %s", self.rank, reason)
            self._mailbox.fail(source, reason)
            return
        self._mailbox.put(source, tag, value, len(header) + sum(len(p) for p in parts))

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Say goodbye to every worker, wait (bounded) for theirs, stop receiving, free MPI state.

        Idempotent. If some worker does not say goodbye within ``network.close_timeout``
        seconds, the channel closes anyway with a warning and leaves the communicator unfreed.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        _open_channels.discard(self)
        clean = self._say_goodbye() and self._await_goodbyes()
        self._stop.set()
        self._thread.join(self._close_timeout)
        if self._thread.is_alive():
            logger.warning("worker %d: the mpi progress thread did not stop", self.rank)
            clean = False
        if clean:
            self._comm.Free()
        self._mailbox.close()

    def _say_goodbye(self) -> bool:
        header = self._header(_GOODBYE, 0, ())
        for dest in range(self.size):
            if dest == self.rank:
                continue
            with self._send_locks[dest]:  # after any value being sent to dest
                try:
                    self._comm.Send([header, self._mpi.BYTE], dest, _HEADER_TAG)
                except self._mpi.Exception as exc:
                    logger.warning(
                        "worker %d: goodbye to worker %d failed: %s", self.rank, dest, exc
                    )
                    return False
        return True

    def _await_goodbyes(self) -> bool:
        others = self.size - 1
        with self._state:
            done = self._state.wait_for(
                lambda: len(self._goodbyes) == others or self._progress_error is not None,
                self._close_timeout,
            )
            missing = sorted(set(range(self.size)) - self._goodbyes - {self.rank})
        if not done or missing:
            logger.warning(
                "worker %d: closing the mpi channel without goodbyes from workers %s within "
                "%g s; messages to or from them may be lost",
                self.rank,
                missing,
                self._close_timeout,
            )
            return False
        return True


_open_channels: set[MpiChannel] = set()


@atexit.register
def _close_open_channels() -> None:
    """Close channels left open, so the progress threads stop before mpi4py finalises MPI."""
    for channel in list(_open_channels):
        channel.close()


register_channel("mpi", MpiEndpoint)

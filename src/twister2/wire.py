"""Authenticated socket connections shared by the job master and the tcp channel.

Every connection starts with a mutual HMAC challenge (as ``multiprocessing``'s authkey): each
side proves it knows the job's secret before the other reads anything else from it. Only fixed-size
fields are read before the proof, so a stranger cannot make a process parse, let alone unpickle,
anything. After the handshake, messages travel as length-prefixed frames.

Example
-------
>>> import socket, threading
>>> secret = new_secret()
>>> a, b = socket.socketpair()
>>> t = threading.Thread(target=server_handshake, args=(a, secret))
>>> t.start(); client_handshake(b, secret); t.join()
>>> send_frame(b, {"op": "ping"}); recv_frame(a)
({'op': 'ping'}, b'')
>>> a.close(); b.close()
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import socket
import struct
from typing import Any

__all__ = [
    "AuthenticationError",
    "ConnectionClosed",
    "MessageTooLargeError",
    "client_handshake",
    "connect",
    "new_secret",
    "recv_exact",
    "recv_frame",
    "send_frame",
    "server_handshake",
]

log = logging.getLogger(__name__)

_MAGIC = b"T2WIRE01"
_NONCE = 32
_DIGEST = "sha256"
_MAC = 32
_HANDSHAKE_TIMEOUT = 10.0
_FRAME = struct.Struct(">II")
_MAX_HEADER = 16 * 1024 * 1024


class AuthenticationError(ConnectionError):
    """The peer did not prove that it knows the job's secret."""


class ConnectionClosed(ConnectionError):
    """The peer closed the connection."""


class MessageTooLargeError(ValueError):
    """A message's JSON header is over the limit a receiver accepts; nothing was sent."""

    def __init__(self, size: int, limit: int = _MAX_HEADER, message: str = "") -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            message
            or f"a message of {size / 2**20:.1f} MiB as JSON is over the {limit // 2**20} MiB "
            "limit of one message on a twister2 connection"
        )


def new_secret() -> bytes:
    """A fresh 32-byte job secret.

    >>> len(new_secret())
    32
    """
    return secrets.token_bytes(32)


def recv_exact(sock: socket.socket, n: int) -> bytearray:
    """Read exactly ``n`` bytes or raise :class:`ConnectionClosed`."""
    buf = bytearray(n)
    recv_into_exact(sock, memoryview(buf))
    return buf


def recv_into_exact(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view`` completely from ``sock`` (no intermediate copies)."""
    got = 0
    total = view.nbytes
    while got < total:
        n = sock.recv_into(view[got:], total - got)
        if n == 0:
            msg = f"connection closed by peer after {got} of {total} bytes"
            raise ConnectionClosed(msg)
        got += n


def _mac(secret: bytes, role: bytes, nonce: bytes) -> bytes:
    return hmac.new(secret, role + nonce, _DIGEST).digest()


def server_handshake(sock: socket.socket, secret: bytes) -> None:
    """Accepting side of the mutual challenge; raises :class:`AuthenticationError` on failure."""
    old = sock.gettimeout()
    sock.settimeout(_HANDSHAKE_TIMEOUT)
    try:
        nonce = os.urandom(_NONCE)
        sock.sendall(_MAGIC + nonce)
        reply = recv_exact(sock, len(_MAGIC) + _NONCE + _MAC)
        if bytes(reply[: len(_MAGIC)]) != _MAGIC:
            msg = "peer does not speak the twister2 wire protocol"
            raise AuthenticationError(msg)
        peer_nonce = bytes(reply[len(_MAGIC) : len(_MAGIC) + _NONCE])
        proof = bytes(reply[len(_MAGIC) + _NONCE :])
        if not hmac.compare_digest(proof, _mac(secret, b"client", nonce)):
            msg = "peer failed the job-secret challenge"
            raise AuthenticationError(msg)
        sock.sendall(_mac(secret, b"server", peer_nonce))
    except (OSError, TimeoutError) as exc:
        if isinstance(exc, AuthenticationError):
            raise
        msg = f"handshake failed: {exc}"
        raise AuthenticationError(msg) from exc
    finally:
        sock.settimeout(old)


def client_handshake(sock: socket.socket, secret: bytes) -> None:
    """Connecting side of the mutual challenge; raises :class:`AuthenticationError` on failure."""
    old = sock.gettimeout()
    sock.settimeout(_HANDSHAKE_TIMEOUT)
    try:
        hello = recv_exact(sock, len(_MAGIC) + _NONCE)
        if bytes(hello[: len(_MAGIC)]) != _MAGIC:
            msg = "server does not speak the twister2 wire protocol"
            raise AuthenticationError(msg)
        nonce = bytes(hello[len(_MAGIC) :])
        my_nonce = os.urandom(_NONCE)
        sock.sendall(_MAGIC + my_nonce + _mac(secret, b"client", nonce))
        proof = bytes(recv_exact(sock, _MAC))
        if not hmac.compare_digest(proof, _mac(secret, b"server", my_nonce)):
            msg = "server failed the job-secret challenge"
            raise AuthenticationError(msg)
    except ConnectionClosed as exc:
        msg = "server closed the connection during the handshake (wrong job secret?)"
        raise AuthenticationError(msg) from exc
    except (OSError, TimeoutError) as exc:
        if isinstance(exc, AuthenticationError):
            raise
        msg = f"handshake failed: {exc}"
        raise AuthenticationError(msg) from exc
    finally:
        sock.settimeout(old)


def connect(address: tuple[str, int], secret: bytes, timeout: float = 10.0) -> socket.socket:
    """Open an authenticated TCP connection to ``address`` (host, port)."""
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client_handshake(sock, secret)
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return sock


def send_frame(sock: socket.socket, header: dict[str, Any], blob: bytes = b"") -> None:
    """Send a JSON header and an optional binary blob as one frame."""
    data = json.dumps(header, separators=(",", ":")).encode()
    if len(data) > _MAX_HEADER:  # the receiver would drop the connection: refuse it here
        raise MessageTooLargeError(len(data))
    sock.sendall(_FRAME.pack(len(data), len(blob)) + data + blob)


def recv_frame(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """Receive one frame sent by :func:`send_frame`: ``(header, blob)``."""
    n_header, n_blob = _FRAME.unpack(recv_exact(sock, _FRAME.size))
    if n_header > _MAX_HEADER:
        msg = f"frame header of {n_header} bytes is larger than the {_MAX_HEADER} allowed"
        raise ConnectionError(msg)
    header = json.loads(recv_exact(sock, n_header))
    blob = bytes(recv_exact(sock, n_blob)) if n_blob else b""
    if not isinstance(header, dict):
        msg = "frame header is not a JSON object"
        raise ConnectionError(msg)
    return header, blob

"""The authenticated handshake and frames, over real socket pairs."""

from __future__ import annotations

import socket
import threading

import pytest

from twister2 import wire


def handshake(
    server_secret: bytes, client_secret: bytes
) -> tuple[BaseException | None, BaseException | None]:
    a, b = socket.socketpair()
    errors: list[BaseException | None] = [None, None]

    def serve() -> None:
        try:
            wire.server_handshake(a, server_secret)
        except BaseException as exc:
            errors[0] = exc
            a.close()  # what a server does with a refused peer

    t = threading.Thread(target=serve)
    t.start()
    try:
        wire.client_handshake(b, client_secret)
    except BaseException as exc:
        errors[1] = exc
    t.join(10)
    a.close()
    b.close()
    return errors[0], errors[1]


def test_same_secret_passes() -> None:
    s = wire.new_secret()
    assert handshake(s, s) == (None, None)


def test_wrong_secret_fails_on_both_sides() -> None:
    server_err, client_err = handshake(wire.new_secret(), wire.new_secret())
    assert isinstance(server_err, wire.AuthenticationError)
    assert "job-secret challenge" in str(server_err)
    assert isinstance(client_err, wire.AuthenticationError)


def test_garbage_instead_of_handshake_is_refused() -> None:
    a, b = socket.socketpair()
    result: list[BaseException] = []

    def serve() -> None:
        try:
            wire.server_handshake(a, wire.new_secret())
        except wire.AuthenticationError as exc:
            result.append(exc)

    t = threading.Thread(target=serve)
    t.start()
    b.recv(100)
    b.sendall(b"GET / HTTP/1.1\r\n" + b"x" * 100)
    t.join(10)
    a.close()
    b.close()
    assert result and "does not speak the twister2 wire protocol" in str(result[0])


def test_frames_round_trip_and_reject_oversized_headers() -> None:
    a, b = socket.socketpair()
    try:
        wire.send_frame(a, {"op": "x", "n": [1, 2]}, b"\x00blob")
        assert wire.recv_frame(b) == ({"op": "x", "n": [1, 2]}, b"\x00blob")
        a.sendall((2**31).to_bytes(4, "big") + (0).to_bytes(4, "big"))
        with pytest.raises(ConnectionError, match="larger than"):
            wire.recv_frame(b)
        a.close()
        with pytest.raises(wire.ConnectionClosed):
            wire.recv_frame(b)
    finally:
        a.close()
        b.close()

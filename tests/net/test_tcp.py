"""The tcp channel over real loopback sockets: the shared checks, security, failures, cleanup."""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import pickle
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from tests.net.channel_checks import ALL_CHECKS
from tests.net.spmd_threads import run_spmd
from twister2.net.channel import (
    ANY_SOURCE,
    Channel,
    ChannelError,
    ChannelTimeout,
    available_channels,
    create_endpoint,
)
from twister2.net.serialization import SerializationError
from twister2.net.tcp import GOODBYE_TAG, TcpChannel, TcpEndpoint, parse_address
from twister2.wire import AuthenticationError, client_handshake, new_secret, recv_exact

CONFIG = {"network.recv_timeout": 30.0, "network.connect_timeout": 10.0}
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test ends with the threads and file descriptors it started with."""
    threads = set(threading.enumerate())
    fds = psutil.Process().num_fds()
    yield
    extra = set(threading.enumerate()) - threads
    assert not extra, f"threads left running: {sorted(t.name for t in extra)}"
    assert psutil.Process().num_fds() == fds, "file descriptors left open"


@contextlib.contextmanager
def tcp_group(size: int, config: Mapping[str, Any] = CONFIG) -> Iterator[list[TcpChannel]]:
    """``size`` connected tcp channels of one job, in this thread; all closed at the end."""
    endpoints = [TcpEndpoint(config) for _ in range(size)]
    addresses = [end.address for end in endpoints]
    secret = new_secret()
    channels: list[TcpChannel] = []
    try:
        for rank, end in enumerate(endpoints):
            channels.append(end.open(rank, size, addresses, secret))
        yield channels
    finally:
        for ch in channels:
            ch.close()
        for end in endpoints:
            end.close()


def wait_closed(sock: socket.socket, timeout: float = 10.0) -> None:
    """Read until the peer closes ``sock`` (end of stream or reset); fail after ``timeout``."""
    sock.settimeout(timeout)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(4096):
            pass


# the shared behaviour checks --------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_check(check: Callable[[Channel], None], size: int) -> None:
    endpoints = [TcpEndpoint(CONFIG) for _ in range(size)]
    addresses = [end.address for end in endpoints]
    secret = new_secret()
    channels: dict[int, TcpChannel] = {}

    def worker(rank: int) -> None:
        channels[rank] = endpoints[rank].open(rank, size, addresses, secret)
        check(channels[rank])

    def close_all() -> None:
        for ch in list(channels.values()):
            ch.close()

    try:
        run_spmd(worker, size, timeout=50.0, on_error=close_all)
    finally:
        close_all()
        for end in endpoints:
            end.close()


def test_registered() -> None:
    assert "tcp" in available_channels()
    end = create_endpoint("tcp", {"network.interface": "127.0.0.1"})
    try:
        assert end.address.startswith("127.0.0.1:")
    finally:
        end.close()


# security ---------------------------------------------------------------------------------


class _Touch:
    """Unpickling this creates a file: the stand-in for an attacker's code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def evil_frame(path: Path) -> bytes:
    """A rank announcement and a well-formed frame whose value would create ``path``."""
    head = pickle.dumps(_Touch(path), protocol=5)
    return struct.pack(">I", 1) + struct.pack(">qQI", 0, len(head), 0) + head


def test_evil_frame_is_live(tmp_path: Path) -> None:
    """The next test's payload really runs code when unpickled: its check means something."""
    marker = tmp_path / "ran"
    frame = evil_frame(marker)
    pickle.loads(frame[4 + 20 :])
    assert marker.exists()


@pytest.mark.timeout(60)
def test_wrong_secret_is_refused_before_anything_is_unpickled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="twister2.net.tcp")
    marker = tmp_path / "pwned"
    with tcp_group(2) as (ch0, ch1):
        address = parse_address(ch0.addresses[0])
        ports = []
        # An honest client with the wrong secret: the server refuses it, then it writes anyway.
        with socket.create_connection(address, timeout=10.0) as raw:
            ports.append(raw.getsockname()[1])
            with pytest.raises(AuthenticationError):
                client_handshake(raw, new_secret())
            with contextlib.suppress(OSError):
                raw.sendall(evil_frame(marker))
            wait_closed(raw)
        # A client that sends a bad proof and, at once, the frame: the bytes wait unread.
        with socket.create_connection(address, timeout=10.0) as raw:
            ports.append(raw.getsockname()[1])
            hello = recv_exact(raw, 40)
            assert hello.startswith(b"T2WIRE01")
            raw.sendall(b"T2WIRE01" + os.urandom(64) + evil_frame(marker))
            wait_closed(raw)

        assert not marker.exists()
        refusals = [
            r.getMessage()
            for r in caplog.records
            if r.name == "twister2.net.tcp" and r.levelno == logging.WARNING
        ]
        assert len(refusals) == 2, refusals
        for port, message in zip(ports, refusals, strict=True):
            assert f"refused connection from 127.0.0.1:{port}" in message
        # Good peers are not disturbed.
        ch1.send("still fine", 0, tag=3)
        assert ch0.recv(1, tag=3) == "still fine"
    assert not marker.exists()


@pytest.mark.timeout(60)
def test_garbage_instead_of_handshake_is_closed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="twister2.net.tcp")
    with tcp_group(2) as (ch0, ch1):
        with socket.create_connection(parse_address(ch0.addresses[0]), timeout=10.0) as raw:
            recv_exact(raw, 40)
            raw.sendall(b"GET / HTTP/1.1\r\n" + b"x" * 56)  # exactly a handshake's length
            wait_closed(raw)
        assert "does not speak the twister2 wire protocol" in caplog.text
        ch0.send([1, 2], 1)
        assert ch1.recv(0) == [1, 2]


@pytest.mark.timeout(60)
def test_a_channel_with_another_secret_cannot_send() -> None:
    ends = [TcpEndpoint(CONFIG), TcpEndpoint(CONFIG)]
    addresses = [end.address for end in ends]
    good = ends[0].open(0, 2, addresses, new_secret())
    bad = ends[1].open(1, 2, addresses, new_secret())
    try:
        with pytest.raises(ChannelError, match=f"cannot connect to worker 0 at {addresses[0]}"):
            bad.send("let me in", 0)
    finally:
        good.close()
        bad.close()


# failures ---------------------------------------------------------------------------------


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from twister2.net.tcp import TcpEndpoint

    parent, secret = sys.stdin.readline().split()
    end = TcpEndpoint({})
    print(end.address, flush=True)
    ch = end.open(1, 2, [parent, end.address], bytes.fromhex(secret))
    ch.send("alive", 0, tag=3)
    ch.send(list(range(10)), 0, tag=4)
    sys.stdin.readline()
    os.kill(os.getpid(), signal.SIGKILL)  # no goodbye
    """
)


@pytest.mark.timeout(60)
def test_abrupt_peer_death_fails_waiting_receives_quickly() -> None:
    secret = new_secret()
    end = TcpEndpoint(CONFIG)
    with subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(f"{end.address} {secret.hex()}\n")
        child.stdin.flush()
        child_address = child.stdout.readline().strip()
        assert child_address, child.communicate()[1]
        ch = end.open(0, 2, [end.address, child_address], secret)
        try:
            assert ch.recv(1, tag=3) == "alive"
            failures: list[BaseException] = []

            def wait_on_dead_peer() -> None:
                try:
                    ch.recv(1, tag=5, timeout=30.0)
                except BaseException as exc:
                    failures.append(exc)

            waiter = threading.Thread(target=wait_on_dead_peer)
            waiter.start()
            start = time.monotonic()
            child.stdin.write("die\n")
            child.stdin.flush()
            child.wait(10.0)
            waiter.join(20.0)
            assert not waiter.is_alive()
            assert time.monotonic() - start < 10.0
            (failure,) = failures
            assert isinstance(failure, ChannelError) and not isinstance(failure, ChannelTimeout)
            assert "connection from worker 1" in str(failure)
            assert "closed unexpectedly" in str(failure)
            # What arrived before the death is still delivered, then the failure shows.
            assert ch.recv(1, tag=4) == list(range(10))
            with pytest.raises(ChannelError, match="worker 1"):
                ch.recv(1, tag=4, timeout=30.0)
            with pytest.raises(ChannelError, match="worker 1") as any_source:
                ch.recv(ANY_SOURCE, tag=6, timeout=30.0)
            assert not isinstance(any_source.value, ChannelTimeout)
        finally:
            ch.close()
            end.close()


@pytest.mark.timeout(60)
def test_graceful_close() -> None:
    with tcp_group(3) as (ch0, ch1, ch2):
        ch1.send("a", 0, tag=1)
        ch1.send("b", 0, tag=1)
        ch1.send("other tag", 0, tag=2)
        ch1.close()
        ch1.close()  # idempotent
        assert ch0.recv(1, tag=1) == "a"
        assert ch0.recv(1, tag=1) == "b"
        with pytest.raises(ChannelError, match="worker 1 closed its channel") as closed:
            ch0.recv(1, tag=1, timeout=30.0)
        assert not isinstance(closed.value, ChannelTimeout)
        assert ch0.recv(1, tag=2) == "other tag"  # received before the close: delivered
        # Other workers may still send: a receive from any worker waits for them.
        with pytest.raises(ChannelTimeout):
            ch0.recv(ANY_SOURCE, tag=1, timeout=0.2)
        ch2.send("c", 0, tag=1)
        assert ch0.recv_from(ANY_SOURCE, tag=1) == (2, "c")
        with pytest.raises(ChannelError, match="closed channel"):
            ch1.send("too late", 0)
        with pytest.raises(ChannelError, match="channel closed"):
            ch1.recv(0, timeout=30.0)


@pytest.mark.timeout(60)
def test_close_wakes_a_waiting_receive() -> None:
    with tcp_group(2) as (ch0, _):
        failures: list[BaseException] = []

        def wait() -> None:
            try:
                ch0.recv(1, timeout=30.0)
            except BaseException as exc:
                failures.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        ch0.close()
        waiter.join(10.0)
        assert not waiter.is_alive()
        assert "channel closed" in str(failures[0])


@pytest.mark.timeout(60)
def test_connection_failure_names_the_destination() -> None:
    config = {**CONFIG, "network.connect_timeout": 0.3}
    ends = [TcpEndpoint(config), TcpEndpoint(config)]
    addresses = [end.address for end in ends]
    ends[1].close()  # worker 1 never comes up: nothing listens at its address
    ch = ends[0].open(0, 2, addresses, new_secret())
    try:
        with pytest.raises(ChannelError, match=f"worker 1 at {addresses[1]}"):
            ch.send("anyone?", 1)
    finally:
        ch.close()


@pytest.mark.timeout(60)
def test_bad_values_and_tags_leave_the_stream_intact() -> None:
    with tcp_group(2) as (ch0, ch1):
        ch0.send("first", 1)
        with pytest.raises(SerializationError, match="function"):
            ch0.send(lambda: None, 1)
        with pytest.raises(SerializationError, match="lock"):
            ch0.send({"ok": np.arange(5000), "bad": threading.Lock()}, 1)
        with pytest.raises(ValueError, match="reserved"):
            ch0.send("x", 1, tag=GOODBYE_TAG)
        with pytest.raises(ValueError, match="out of range"):
            ch0.send("x", 1, tag=2**63)
        ch0.send("second", 1)
        assert ch1.recv(0) == "first"
        assert ch1.recv(0) == "second"
        with pytest.raises(ValueError, match=r"0\.\.1"):
            ch1.recv(2)


@pytest.mark.timeout(60)
def test_received_arrays_are_writable_and_mixed_buffers_arrive_whole() -> None:
    with tcp_group(2) as (ch0, ch1):
        value: dict[str, Any] = {
            "small": np.arange(200, dtype=np.int64),  # 1.6 kB: out of band, joined
            "big": np.arange(100_000, dtype=np.float64),  # 800 kB: its own sendall
            "tiny": np.arange(3),  # in band
            "bytes": b"\x00" * 5000,
        }
        ch0.send(value, 1, tag=9)
        got = ch1.recv(0, tag=9)
        for key in ("small", "big", "tiny"):
            assert np.array_equal(got[key], value[key])
            got[key][0] = 7
        assert got["bytes"] == value["bytes"]


# back pressure and cleanup ----------------------------------------------------------------


def kernel_buffer_bytes() -> int:
    """The most bytes the kernel may hold in one loopback connection's two socket buffers."""
    total = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        try:
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
        except (OSError, IndexError, ValueError):
            total += 32 * MIB
    return total


@pytest.mark.timeout(60)
def test_recv_buffer_limit_blocks_the_sender() -> None:
    limit = 1 * MIB
    count = (2 * kernel_buffer_bytes() + 8 * limit) // MIB
    config = {**CONFIG, "network.recv_buffer_bytes": limit}
    with tcp_group(2, config) as (ch0, ch1):
        failures: list[BaseException] = []

        def send_all() -> None:
            try:
                for i in range(count):
                    ch0.send(np.full(MIB // 8, i, dtype=np.int64), 1, tag=4)
            except BaseException as exc:
                failures.append(exc)

        sender = threading.Thread(target=send_all)
        sender.start()
        sender.join(1.0)
        assert sender.is_alive(), "the sender finished although the receiver read nothing"
        for i in range(count):
            got = ch1.recv(0, tag=4)
            assert got.shape == (MIB // 8,) and got[0] == i and got[-1] == i
        sender.join(10.0)
        assert not sender.is_alive() and not failures


@pytest.mark.timeout(60)
def test_close_releases_threads_sockets_and_ports() -> None:
    threads = set(threading.enumerate())
    with tcp_group(3) as channels:
        for ch in channels:
            for dest in range(3):
                ch.send(np.arange(10_000) + ch.rank, dest)
        for ch in channels:
            for source in range(3):
                assert ch.recv(source)[0] == source
        ports = [parse_address(address)[1] for address in channels[0].addresses]
        assert len(set(threading.enumerate()) - threads) == 3 + 3 * 2  # accept + receivers
    assert set(threading.enumerate()) <= threads
    ours = [
        c
        for c in psutil.Process().net_connections("tcp")
        if c.laddr.port in ports or (c.raddr and c.raddr.port in ports)
    ]
    assert ours == []
    for port in ports:
        with socket.create_server(("127.0.0.1", port)):
            pass


@pytest.mark.timeout(60)
def test_endpoint_close_without_open_releases_the_port() -> None:
    end = TcpEndpoint({})
    port = parse_address(end.address)[1]
    end.close()
    end.close()
    with socket.create_server(("127.0.0.1", port)):
        pass
    with pytest.raises(ChannelError, match="already opened or closed"):
        end.open(0, 1, [end.address], new_secret())

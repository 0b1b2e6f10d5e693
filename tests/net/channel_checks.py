"""Channel behaviour checks written once and run against every channel.

Each check is SPMD: it is called on every rank with that rank's channel, in threads of one
process (inproc, and tcp over real loopback sockets) or in real worker processes (tcp and mpi
jobs). A check raises ``AssertionError`` on the first wrong value.
"""

from __future__ import annotations

import numpy as np

from twister2.net.channel import ANY_SOURCE, Channel, ChannelTimeout

TAG_OBJ = 11
TAG_ARR = 12
TAG_ORDER = 13
TAG_ANY = 14


def check_objects(ch: Channel) -> None:
    """Every rank sends a dict, a tuple with None and a string to every rank (itself included)."""
    for dest in range(ch.size):
        ch.send({"from": ch.rank, "to": dest, "v": (None, "ü" * dest, [1.5] * 3)}, dest, TAG_OBJ)
    got = {}
    for source in range(ch.size):
        got[source] = ch.recv(source, TAG_OBJ)
    for source, value in got.items():
        assert value == {"from": source, "to": ch.rank, "v": (None, "ü" * ch.rank, [1.5] * 3)}, (
            value
        )


def big_array(rank: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + rank)
    return rng.integers(0, 2**63 - 1, size=n, dtype=np.int64)


def check_large_arrays(ch: Channel, nbytes: int = 16 * 1024 * 1024) -> None:
    """A ring exchange of large random arrays, compared byte for byte (and a 2-D float view)."""
    n = nbytes // 8
    dest = (ch.rank + 1) % ch.size
    source = (ch.rank - 1) % ch.size
    ch.send(
        {"a": big_array(ch.rank, n), "m": big_array(ch.rank, 600).view(np.float64).reshape(20, 30)},
        dest,
        TAG_ARR,
    )
    got = ch.recv(source, TAG_ARR)
    expect = big_array(source, n)
    assert got["a"].dtype == np.int64 and got["a"].shape == expect.shape
    assert got["a"].tobytes() == expect.tobytes()
    assert got["m"].shape == (20, 30)
    assert got["m"].tobytes() == big_array(source, 600).tobytes()
    got["a"][0] = 1  # received arrays are writable


def check_order(ch: Channel, count: int = 500) -> None:
    """Values from one source with one tag arrive in the order sent, mixed sizes."""
    for dest in range(ch.size):
        for i in range(count):
            payload = np.full(i % 7 * 300, i, dtype=np.int32) if i % 5 == 0 else i
            ch.send((ch.rank, i, payload), dest, TAG_ORDER)
    for source in range(ch.size):
        for i in range(count):
            s, j, payload = ch.recv(source, TAG_ORDER)
            assert (s, j) == (source, i), (s, j, source, i)
            if i % 5 == 0:
                assert payload.shape == (i % 7 * 300,) and (payload == i).all()
            else:
                assert payload == i


def check_any_source(ch: Channel) -> None:
    """Rank 0 receives one value from every rank with ANY_SOURCE and learns who sent it."""
    ch.send(ch.rank * 10, 0, TAG_ANY)
    if ch.rank == 0:
        seen = {}
        for _ in range(ch.size):
            source, value = ch.recv_from(ANY_SOURCE, TAG_ANY)
            seen[source] = value
        assert seen == {r: r * 10 for r in range(ch.size)}, seen


def check_timeout(ch: Channel) -> None:
    """A receive that nothing matches ends with ChannelTimeout, not a hang."""
    try:
        ch.recv(ANY_SOURCE, tag=999, timeout=0.2)
    except ChannelTimeout as exc:
        assert "tag 999" in str(exc)
    else:
        raise AssertionError("recv with nothing to receive returned")


def check_bad_peer(ch: Channel) -> None:
    """A destination out of range is a ValueError naming the valid range."""
    try:
        ch.send(1, ch.size, 0)
    except ValueError as exc:
        assert f"0..{ch.size - 1}" in str(exc)
    else:
        raise AssertionError("send to a missing worker did not fail")


ALL_CHECKS = [
    check_objects,
    check_large_arrays,
    check_order,
    check_any_source,
    check_timeout,
    check_bad_peer,
]


def run_all(ch: Channel) -> str:
    for check in ALL_CHECKS:
        check(ch)
    return "ok"

"""The channel checks over the in-process channel, at 1 to 4 workers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.net.channel_checks import ALL_CHECKS
from tests.net.spmd_threads import run_spmd
from twister2.net.channel import Channel
from twister2.net.inproc import InprocChannel


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_check(check: Callable[[Channel], None], size: int) -> None:
    channels = InprocChannel.group(size, default_timeout=30.0)

    def close_all() -> None:
        for ch in channels:
            ch.close()

    try:
        run_spmd(lambda rank: check(channels[rank]), size, timeout=50.0, on_error=close_all)
    finally:
        close_all()


def test_spmd_reraises_first_error_and_unblocks_the_others() -> None:
    channels = InprocChannel.group(2, default_timeout=30.0)

    def close_all() -> None:
        for ch in channels:
            ch.close()

    def body(rank: int) -> None:
        if rank == 0:
            raise KeyError("rank 0 broke")
        channels[1].recv(source=0)  # would wait 30 s, unless on_error closes the channel

    with pytest.raises(KeyError, match="rank 0 broke"):
        run_spmd(body, 2, timeout=20.0, on_error=close_all)

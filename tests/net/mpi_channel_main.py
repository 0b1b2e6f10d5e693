"""A worker program for the mpi channel tests, run on every rank under ``mpiexec``.

Modes:

- default: run every check of :mod:`tests.net.channel_checks` and print ``rank R ok``;
- ``--idle``: rank 0 sleeps, then sends; rank 1 waits in ``recv`` meanwhile and prints the CPU
  seconds its process used during the wait (``rank 1 idle-cpu S``);
- ``--size N``: ask for a job of N workers whatever MPI says (to test the error).

Exits non-zero, after printing the traceback, when anything fails.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from tests.net.channel_checks import ALL_CHECKS
from twister2.net.channel import Channel
from twister2.net.mpi import MpiEndpoint

IDLE_WAIT_S = 2.0
TAG_IDLE = 21


def idle(ch: Channel) -> None:
    """Rank 1 waits ~2 s in recv for rank 0; prints the CPU time that waiting cost."""
    if ch.rank == 0:
        time.sleep(IDLE_WAIT_S)
        ch.send("wake up", 1, TAG_IDLE)
    elif ch.rank == 1:
        started, cpu = time.monotonic(), time.process_time()
        assert ch.recv(0, TAG_IDLE, timeout=60.0) == "wake up"
        cpu = time.process_time() - cpu
        print(f"rank 1 idle-cpu {cpu:.3f} wall {time.monotonic() - started:.3f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", action="store_true", help="measure the CPU cost of waiting")
    parser.add_argument("--size", type=int, help="the job size to ask for (default: MPI's)")
    args = parser.parse_args(argv)

    endpoint = MpiEndpoint({"network.recv_timeout": 60.0})
    world = endpoint._mpi.COMM_WORLD
    rank = world.Get_rank()
    size = args.size if args.size is not None else world.Get_size()
    try:
        with endpoint.open(rank, size, [endpoint.address] * size, b"") as ch:
            if args.idle:
                idle(ch)
            else:
                for check in ALL_CHECKS:
                    check(ch)
    except Exception:
        traceback.print_exc()
        print(f"rank {rank} failed", flush=True)
        return 1
    print(f"rank {rank} ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

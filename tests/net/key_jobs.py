"""Entry function of the equal-keys tests: every worker sends the same keys as values of other
types (``2`` as ``int``, ``numpy.int64``, ``float``, ``Decimal``...), through the batch keyed
reduce and the streaming keyed partition (workers import it from here)."""

from __future__ import annotations

import time
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from twister2 import WorkerEnv
from twister2.net.batch import KeyedReduce
from twister2.net.plan import Plan
from twister2.net.stream import StreamKeyedPartition


def _spellings(worker: int) -> list[Any]:
    """The keys worker ``worker`` sends: each equal class spelled differently by each worker."""
    # (NumPy scalars and Decimals cannot be compared: np.int64(2) == Decimal(2) raises, so a
    # dict holding one cannot look up the other; they spell different keys here)
    twos = [2, Decimal(2), 2.0, Fraction(4, 2), 2 + 0j]
    threes = [np.int64(3), 3, np.float32(3), np.uint8(3), 3.0, Fraction(3)]
    halves = [0.5, Fraction(1, 2), Decimal("0.5"), np.float16(0.5)]
    ones = [True, 1, np.True_, 1.0, np.int32(1)]
    letters = ["a", "b", "c", "d", "e"]
    order = letters[worker % 5 :] + letters[: worker % 5]  # frozensets built in another order
    return [
        twos[worker % len(twos)],
        threes[worker % len(threes)],
        halves[worker % len(halves)],
        ones[worker % len(ones)],
        frozenset(order),
        (twos[(worker + 1) % len(twos)], "x", frozenset(order[:2] if worker % 2 else order[1::-1])),
        f"w{worker % 2}",  # a str key that only some workers share
        -(2**60) if worker % 2 else float(-(2**60)),  # an int and a float of one big value
        2**64 if worker % 2 else Decimal(2**64),  # past 64 bits
        float("inf") if worker % 2 else np.float64("inf"),
    ]


def pairs_of(worker: int) -> list[tuple[Any, int]]:
    """What ``worker`` sends: each key with the value ``10 ** worker`` (sums show who met)."""
    return [(key, 10**worker) for key in _spellings(worker)]


def keyed_everywhere(env: WorkerEnv) -> dict[str, Any]:
    """Each worker's targets' results: the batch reduce's ``{target: [(key, sum)]}`` and the
    streaming partition's ``{target: [(key, value)]}`` (keys as ``repr``: they travel back to the
    test, whose check is on which target they reached)."""
    flow, rank, n = env.dataflow, env.worker_id, env.num_workers
    plan = Plan.spread(n, 2 * n + 1, n)  # a source per worker, targets not dividing evenly
    reduce = KeyedReduce(flow, plan, "sum")
    for source in plan.local_sources(rank):
        reduce.send_all(source, pairs_of(source), finish=True)
    reduce.wait(timeout=120)
    batch = {t: [(k, v) for k, v in reduce.result(t).items()] for t in plan.local_targets(rank)}

    stream = StreamKeyedPartition(flow, plan)
    got: dict[int, list[Any]] = {t: [] for t in plan.local_targets(rank)}
    for source in plan.local_sources(rank):
        for pair in pairs_of(source):
            while not stream.send(source, pair):
                for t in got:
                    got[t] += stream.poll(t)
        stream.finish(source)
    live, deadline = set(got), time.monotonic() + 60
    while live:
        for t in sorted(live):
            got[t] += stream.poll(t)
            if stream.ended(t):
                live.discard(t)
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream targets {sorted(live)} never ended")
        time.sleep(0.001)
    stream.wait(timeout=60)
    stream.close()
    return {"batch": batch, "stream": got}

"""What the streaming examples share: their options, deterministic values, the loop that streams
every local source while consuming every local target, the checks and the report.

Every value is a function of (source, sequence number) alone, so each worker computes what its
targets must receive and checks what arrived: the values, and that those of one source came in
the order sent. A wrong result raises, which fails the job (``twister2 submit`` exits 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

import twister2
from twister2 import WorkerEnv
from twister2.net import Plan

KEYS = 13
"""Distinct keys of the keyed examples."""
RETRY_S = 0.0005
"""How long a source waits after ``send`` returned ``False`` (its buffer was full)."""


class VerificationError(AssertionError):
    """What a target received differs from the reference."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"must be at least 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def parser(operator: str) -> argparse.ArgumentParser:
    """The command line of an example (what follows ``--`` on ``twister2 submit``)."""
    p = argparse.ArgumentParser(
        prog=operator.replace(" ", "_") + ".py", description=f"The {operator} operator."
    )
    p.add_argument("--count", type=_positive, default=1000, help="values per source (1000)")
    p.add_argument("--size", type=_positive, default=8, help="integers per value's array (8)")
    p.add_argument("--sources", type=_positive, help="logical sources (workers + 1)")
    p.add_argument("--targets", type=_positive, help="logical targets (max(1, workers - 1))")
    p.add_argument("--corrupt", action="store_true", help=argparse.SUPPRESS)  # tests the check
    return p


@dataclass(frozen=True)
class Options:
    """An example's settings on one worker."""

    operator: str
    worker: int
    workers: int
    sources: int
    targets: int
    count: int
    size: int
    corrupt: bool

    def plan(self) -> Plan:
        """Sources and targets dealt round robin over the workers."""
        return Plan.spread(self.sources, self.targets, self.workers)


def _shape(args: argparse.Namespace, workers: int, one_to_one: bool) -> tuple[int, int]:
    sources = args.sources or (args.targets if one_to_one else None) or workers + 1
    targets = args.targets or (sources if one_to_one else max(1, workers - 1))
    return sources, targets


def options(env: WorkerEnv, operator: str, *, one_to_one: bool = False) -> Options:
    """Parse the script's arguments; ``one_to_one`` makes targets equal sources (direct)."""
    args = parser(operator).parse_args(env.args)
    sources, targets = _shape(args, env.num_workers, one_to_one)
    if one_to_one and sources != targets:
        msg = f"{operator} is one to one: --sources {sources} and --targets {targets} must match"
        raise ValueError(msg)
    return Options(
        operator=operator,
        worker=env.worker_id,
        workers=env.num_workers,
        sources=sources,
        targets=targets,
        count=args.count,
        size=args.size,
        corrupt=args.corrupt,
    )


# -- values --------------------------------------------------------------------------------------
def array(opts: Options, source: int, seq: int) -> np.ndarray[Any, Any]:
    """The ``seq``-th array of ``source``: ``--size`` integers in 0..999 (exact sums)."""
    base = (source * 7919 + seq * 104729) % 1000
    return (np.arange(opts.size, dtype=np.int64) * 31 + base) % 1000


def record(opts: Options, source: int, seq: int) -> tuple[int, int, np.ndarray[Any, Any]]:
    """A value that says where it comes from: ``(source, seq, array)``."""
    return (source, seq, array(opts, source, seq))


def key(source: int, seq: int) -> str:
    return f"k{(source * 7 + seq) % KEYS}"


def corrupted(opts: Options, source: int, values: list[Any]) -> list[Any]:
    """With the hidden ``--corrupt``: source 0's first value changed, so the check must fail."""
    if not (opts.corrupt and source == 0 and values):
        return values
    return [_perturb(values[0]), *values[1:]]


def _perturb(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        changed = value.copy()
        changed.flat[0] += 1
        return changed
    if isinstance(value, tuple):
        return (*value[:-1], _perturb(value[-1]))
    return value


# -- streaming -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one worker streamed: values sent, values each local target received, seconds, and
    how often ``send`` said the buffer was full."""

    sent: int
    received: dict[int, list[Any]]
    seconds: float
    refused: int


def stream(op: Any, plan: Plan, me: int, values: dict[int, list[Any]]) -> Outcome:
    """Stream ``values[source]`` from each local source that streams (in turns, one value
    each) while consuming every local target, finish those sources, then consume until every
    local target's stream has ended.

    A ``send`` that returns ``False`` did not take the value (backpressure): the loop polls the
    targets, which may be what the stream is waiting for, and sends it again a moment later.
    Every local target is polled: one left unread would hold the others up once its queue is
    full, since a worker takes no more batches while its targets' queues are full.
    """
    targets = plan.local_targets(me)
    received: dict[int, list[Any]] = {t: [] for t in targets}

    def consume() -> int:
        moved = 0
        for t in targets:
            got = op.poll(t)
            received[t] += got
            moved += len(got)
        return moved

    start = time.perf_counter()
    feeds = {s: iter(vs) for s, vs in values.items()}
    pending = {s: next(feeds[s], _DONE) for s in values}
    sent = refused = 0
    while pending:
        for source in list(pending):
            value = pending[source]
            if value is _DONE:
                op.finish(source)
                del pending[source]
            elif op.send(source, value):
                sent += 1
                pending[source] = next(feeds[source], _DONE)
            else:
                refused += 1
                if not consume():
                    time.sleep(RETRY_S)
    live = set(targets)
    while live:
        moved = consume()
        live -= {t for t in live if op.ended(t)}
        if live and not moved:
            time.sleep(RETRY_S)
    op.wait()  # this worker's own sends are drained too
    seconds = time.perf_counter() - start
    op.close()
    return Outcome(sent, received, seconds, refused)


_DONE = object()


# -- checking ------------------------------------------------------------------------------------
def canon(value: Any) -> Any:
    """A hashable, comparable form of a value (arrays by their integers)."""
    if isinstance(value, np.ndarray):
        return ("array", tuple(value.tolist()))
    if isinstance(value, tuple | list):
        return tuple(canon(v) for v in value)
    if isinstance(value, dict):
        return tuple((canon(k), canon(v)) for k, v in sorted(value.items()))
    return value


def check(opts: Options, target: int, got: Any, want: Any, *, ordered: bool = True) -> None:
    """Raise :class:`VerificationError` naming the operator, worker and target when ``got`` is
    not ``want`` (as a list in order, or in any order unless ``ordered``)."""
    if ordered:
        same = canon(got) == canon(want)
    else:
        same = Counter(map(canon, got)) == Counter(map(canon, want))
    if not same:
        fail(opts, target, _difference(got, want))


def check_order(opts: Options, target: int, records: Iterable[tuple[int, int, Any]]) -> None:
    """The ``(source, seq, ...)`` records of each source arrived in the order sent."""
    last: dict[int, int] = {}
    for source, seq, _ in records:
        if seq <= last.get(source, -1):
            fail(opts, target, f"value {seq} of source {source} arrived after value {last[source]}")
        last[source] = seq


def fail(opts: Options, target: int, why: str) -> None:
    msg = (
        f"{opts.operator} on worker {opts.worker}: target {target} differs from the reference: "
        f"{why}"
    )
    raise VerificationError(msg)


def _difference(got: Any, want: Any) -> str:
    if isinstance(got, list) and isinstance(want, list):
        g, w = Counter(map(canon, got)), Counter(map(canon, want))
        if g == w:
            return f"the {len(want)} values arrived in the wrong order"
        extra, missing = sum((g - w).values()), sum((w - g).values())
        return f"{len(got)} values, expected {len(want)}: {extra} unexpected, {missing} missing"
    if isinstance(got, dict) and isinstance(want, dict):
        extra, missing = sorted(got.keys() - want.keys()), sorted(want.keys() - got.keys())
        wrong = sorted(k for k in got.keys() & want.keys() if canon(got[k]) != canon(want[k]))
        return f"keys {extra} unexpected, keys {missing} missing, keys {wrong} with wrong values"
    return f"got {got!r}, expected {want!r}"


def group_by_source(records: Iterable[tuple[int, int, Any]]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = defaultdict(list)
    for rec in records:
        out[rec[0]].append(rec)
    return out


# -- the report ----------------------------------------------------------------------------------
def summary(opts: Options, outcome: Outcome) -> dict[str, Any]:
    """What a worker returns; the report is made from every worker's summary."""
    return {
        **vars(opts),
        "sent": outcome.sent,
        "received": sum(len(v) for v in outcome.received.values()),
        "targets_checked": len(outcome.received),
        "seconds": outcome.seconds,
        "refused": outcome.refused,
    }


def launch(
    main: Callable[[WorkerEnv], dict[str, Any]], operator: str, *, one_to_one: bool = False
) -> None:
    """Run ``main`` on 4 local workers (or what ``twister2 submit`` says) and print the report."""
    p = parser(operator)
    args = p.parse_args(sys.argv[1:])  # --help and usage errors here, before the job starts
    if one_to_one and args.sources and args.targets and args.sources != args.targets:
        p.error(f"{operator} is one to one: --sources and --targets must match")
    result = twister2.run(main, workers=4)
    parts = result.values
    first = parts[0]
    sent = sum(s["sent"] for s in parts)
    received = sum(s["received"] for s in parts)
    checked = sum(s["targets_checked"] for s in parts)
    seconds = max(s["seconds"] for s in parts)
    refused = sum(s["refused"] for s in parts)
    shape = ", ".join(
        _plural(first[field], noun)
        for field, noun in [("workers", "worker"), ("sources", "source"), ("targets", "target")]
    )
    print(
        f"{operator}: {shape}; {first['count']} values of {_plural(first['size'], 'integer')} per "
        f"source: {sent} sent, {received} received in {seconds:.3f} s "
        f"({sent / seconds:,.0f} values/s; send pushed back {refused} times), "
        f"verified ({_plural(checked, 'target')} match the reference)"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"

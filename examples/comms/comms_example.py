"""What the communication examples share: their options, deterministic data, sending with flow
control, the check against a reference, and the report.

Every source's data is a function of (seed, iteration, source) alone, so each worker that hosts a
target computes the reference for that target locally and compares. A wrong result raises, which
fails the job (``twister2 submit`` then exits 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import twister2
from twister2 import WorkerEnv
from twister2.net import Plan

SEED = 2018

AddArguments = Callable[[argparse.ArgumentParser], None]


class VerificationError(AssertionError):
    """A target's result differs from the reference."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"must be at least 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def parser(operator: str, add_arguments: AddArguments | None = None) -> argparse.ArgumentParser:
    """The command line of an example (what follows ``--`` on ``twister2 submit``)."""
    prog = operator.replace(" ", "_") + ".py"
    p = argparse.ArgumentParser(prog=prog, description=f"The {operator} operator.")
    p.add_argument("--size", type=_positive, default=1000, help="elements per array (1000)")
    p.add_argument("--itr", type=_positive, default=10, help="iterations (10)")
    p.add_argument("--sources", type=_positive, help="logical sources (workers + 1)")
    p.add_argument("--targets", type=_positive, help="logical targets (max(1, workers - 1))")
    p.add_argument(
        "--records",
        type=_positive,
        default=16,
        help="values per source and iteration of partition, the keyed operators and join (16)",
    )
    p.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check every result against a reference (on)",
    )
    p.add_argument("--corrupt", action="store_true", help=argparse.SUPPRESS)  # tests the check
    if add_arguments is not None:
        add_arguments(p)
    return p


@dataclass(frozen=True)
class Options:
    """An example's settings on one worker."""

    operator: str
    worker: int
    workers: int
    sources: int
    targets: int
    size: int
    itr: int
    records: int
    verify: bool
    corrupt: bool
    args: argparse.Namespace

    def plan(self) -> Plan:
        """Sources and targets dealt round robin over the workers."""
        return Plan.spread(self.sources, self.targets, self.workers)

    def summary(self, seconds: float, checked: int) -> dict[str, Any]:
        """What a worker returns: the report is made from every worker's summary."""
        return {**vars(self), "args": None, "seconds": seconds, "checked": checked}


def options(
    env: WorkerEnv,
    operator: str,
    add_arguments: AddArguments | None = None,
    *,
    one_to_one: bool = False,
) -> Options:
    """Parse the script's arguments; ``one_to_one`` makes targets equal sources (direct)."""
    args = parser(operator, add_arguments).parse_args(env.args)
    n = env.num_workers
    sources = args.sources or (args.targets if one_to_one else None) or n + 1
    targets = args.targets or (sources if one_to_one else max(1, n - 1))
    if one_to_one and targets != sources:
        msg = f"{operator} is one to one: --sources {sources} and --targets {targets} must match"
        raise ValueError(msg)
    return Options(
        operator=operator,
        worker=env.worker_id,
        workers=n,
        sources=sources,
        targets=targets,
        size=args.size,
        itr=args.itr,
        records=args.records,
        verify=args.verify,
        corrupt=args.corrupt,
        args=args,
    )


# -- data ----------------------------------------------------------------------------------------
def array(opts: Options, iteration: int, source: int, salt: int = 0) -> np.ndarray:
    """One array of ``--size`` integers (exact sums: no rounding to tell apart from errors)."""
    rng = np.random.default_rng([SEED, salt, iteration, source])
    return rng.integers(0, 1000, size=opts.size, dtype=np.int64)


def arrays(opts: Options, iteration: int, source: int) -> list[np.ndarray]:
    """``--records`` arrays from one source."""
    return [array(opts, iteration, source, salt=1 + k) for k in range(opts.records)]


def keyed(
    opts: Options, iteration: int, source: int, salt: int = 0
) -> list[tuple[int, np.ndarray]]:
    """``--records`` ``(key, array)`` pairs from one source, keys in ``0..4 * targets - 1``."""
    rng = np.random.default_rng([SEED, salt, iteration, source, 1])
    keys = rng.integers(0, 4 * opts.targets, size=opts.records)
    return [(int(k), rng.integers(0, 1000, size=opts.size, dtype=np.int64)) for k in keys]


def _perturb(value: Any) -> Any:
    if isinstance(value, tuple):
        return (value[0], _perturb(value[1]))
    changed = value.copy()
    changed.flat[0] += 1
    return changed


# -- sending -------------------------------------------------------------------------------------
def send_all(
    opts: Options,
    op: Any,
    source: int,
    values: Sequence[Any],
    send: Callable[[int, Any], bool] | None = None,
) -> None:
    """Send ``values`` from ``source`` (with ``op.send`` unless ``send`` is given).

    A send returns ``False`` when the operation's send buffer is full: progress the operation
    (which sends what is queued) and try again. That is all the flow control there is.
    """
    send = send or op.send
    for i, value in enumerate(values):
        if opts.corrupt and source == 0 and i == 0:
            value = _perturb(value)
        while not send(source, value):
            op.progress()


class Stopwatch:
    """Adds up the time spent inside ``with stopwatch:`` blocks."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start


# -- checking ------------------------------------------------------------------------------------
def canon(value: Any) -> Any:
    """A hashable, comparable form of a value (arrays by dtype, shape and bytes)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, tuple | list):
        return tuple(canon(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((canon(k), canon(v)) for k, v in value.items()))
    return value


def bag(values: Sequence[Any]) -> tuple[Any, ...]:
    """Values as an unordered collection (for results whose order is not defined)."""
    return tuple(sorted(canon(v) for v in values))


def check(opts: Options, target: int, got: Any, want: Any, *, ordered: bool = True) -> int:
    """Raise :class:`VerificationError` naming the operator, worker and target when ``got`` is
    not ``want`` (in any order unless ``ordered``); the number of results checked (0 or 1)."""
    if not opts.verify:
        return 0
    if ordered:
        same = canon(got) == canon(want)
    else:
        same = Counter(map(canon, got)) == Counter(map(canon, want))
    if not same:
        msg = (
            f"{opts.operator} on worker {opts.worker}: the result at target {target} differs "
            f"from the reference: {_difference(got, want)}"
        )
        raise VerificationError(msg)
    return 1


def _difference(got: Any, want: Any) -> str:
    if isinstance(got, np.ndarray) and isinstance(want, np.ndarray) and got.shape == want.shape:
        bad = np.flatnonzero(got != want)
        i = int(bad[0])
        first = f"element {i}: {got.flat[i]}, not {want.flat[i]}"
        return f"{bad.size} of {want.size} elements differ ({first})"
    if isinstance(got, list | tuple) and isinstance(want, list | tuple):
        g, w = Counter(map(canon, got)), Counter(map(canon, want))
        if g == w:
            return f"the {len(want)} values arrived in the wrong order"
        extra, missing = sum((g - w).values()), sum((w - g).values())
        return f"{len(got)} values, expected {len(want)}: {extra} unexpected, {missing} missing"
    if isinstance(got, dict) and isinstance(want, dict):
        extra, missing = sorted(got.keys() - want.keys()), sorted(want.keys() - got.keys())
        wrong = sorted(k for k in got.keys() & want.keys() if canon(got[k]) != canon(want[k]))
        return f"keys {extra} unexpected, keys {missing} missing, keys {wrong} with wrong values"
    return f"got {type(got).__qualname__}, expected {type(want).__qualname__}"


# -- running -------------------------------------------------------------------------------------
def launch(
    main: Callable[[WorkerEnv], dict[str, Any]],
    operator: str,
    add_arguments: AddArguments | None = None,
    *,
    one_to_one: bool = False,
) -> None:
    """Run ``main`` on 4 local workers (or what ``twister2 submit`` says) and print the report."""
    p = parser(operator, add_arguments)
    args = p.parse_args(sys.argv[1:])  # --help and usage errors here, before the job starts
    if one_to_one and args.sources and args.targets and args.sources != args.targets:
        p.error(f"{operator} is one to one: --sources and --targets must match")
    result = twister2.run(main, workers=4)
    summaries = result.values
    first = summaries[0]
    seconds = max(s["seconds"] for s in summaries) / first["itr"]
    checked = sum(s["checked"] for s in summaries)
    counts = ", ".join(
        _plural(first[field], noun)
        for field, noun in [
            ("workers", "worker"),
            ("sources", "source"),
            ("targets", "target"),
            ("size", "element"),
            ("itr", "iteration"),
        ]
    )
    print(f"{operator}: {counts}: {seconds * 1e3:.3f} ms per iteration", end=", ")
    if not first["verify"]:
        print("not verified")
    elif checked == 0:
        print("nothing was verified")
        sys.exit(1)
    else:
        print(f"verified ({checked} results match the reference)")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"

"""Keys equal under ``==`` meet at one target, whatever their types, in every tier and process.

The oracle is a plain Python ``dict`` (which merges equal keys by Python's own hashing, in one
process); the jobs run in real worker processes (each with its own string-hash seed) over tcp and
mpi at several world sizes.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import subprocess
import sys
import uuid
import zlib
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import twister2
from tests.net.key_jobs import keyed_everywhere, pairs_of
from twister2.net.batch.array_kernels import hash_column, split_by_target
from twister2.net.batch.keyed import KeyedReduce
from twister2.net.dataflow import Dataflow, OperationError
from twister2.net.inproc import InprocChannel
from twister2.net.partitioners import HashPartitioner, UnstableKeyError, check_target, stable_hash
from twister2.net.plan import Plan


def _oracle(workers: int) -> dict[Any, int]:
    sums: dict[Any, int] = {}
    for w in range(workers):
        for key, value in pairs_of(w):
            sums[key] = sums.get(key, 0) + value
    return sums


@pytest.mark.parametrize(
    ("cluster", "channel"),
    [("local", "tcp"), pytest.param("mpi", "mpi", marks=pytest.mark.mpi)],
)
@pytest.mark.parametrize("workers", [2, 3, 4])
def test_equal_keys_of_other_types_meet(cluster: str, channel: str, workers: int) -> None:
    result = twister2.run(
        keyed_everywhere, workers=workers, cluster=cluster, config={"network.channel": channel}
    )
    expect = _oracle(workers)
    assert len(expect) < 8 * workers  # the spellings really do collapse into fewer keys

    where: dict[Any, list[tuple[int, int]]] = defaultdict(list)  # key -> [(target, sum)]
    arrived: dict[Any, set[int]] = defaultdict(set)  # key -> targets the stream reached
    counts: dict[Any, int] = defaultdict(int)
    for part in result.values:
        for target, items in part["batch"].items():
            for key, total in items:
                where[key].append((target, total))
        for target, items in part["stream"].items():
            for key, value in items:
                arrived[key].add(target)
                counts[key] += value
    assert set(where) == set(expect)
    for key, total in expect.items():
        assert len(where[key]) == 1, f"{key!r} reduced at targets {where[key]}"
        assert where[key][0][1] == total, key
        assert len(arrived[key]) == 1, f"{key!r} streamed to targets {sorted(arrived[key])}"
        assert counts[key] == total, key


class Colour(enum.Enum):
    RED = 1


class Size(enum.IntEnum):
    LARGE = 2


@dataclass(frozen=True)
class Point:
    x: Any
    y: str


EQUAL_CLASSES: list[list[Any]] = [
    [
        2,
        2.0,
        np.int64(2),
        np.uint16(2),
        np.float32(2),
        Decimal("2.00"),
        Fraction(6, 3),
        2 + 0j,
        Size.LARGE,
    ],
    [True, 1, np.True_, 1.0, Decimal(1)],
    [False, 0, 0.0, -0.0, np.float64(-0.0)],
    [0.1, np.float64(0.1), Fraction(0.1), Decimal(0.1)],  # noqa: RUF032 - the float's exact value,
    [float("inf"), np.inf, Decimal("Infinity")],
    [2**64, float(2**64), Decimal(2**64), np.float64(2**64)],
    [-(2**63), np.int64(-(2**63)), float(-(2**63))],
    [-1, -1.0, np.int8(-1)],  # (CPython hashes -1 as -2)
    [("a", 1), ("a", 1.0), ("a", np.int64(1))],
    [frozenset({"x", "y", 3}), frozenset({3.0, "y", "x"})],
    ["ß", np.str_("ß")],
    [b"k", np.bytes_(b"k")],
    [
        dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ],
    [dt.timedelta(days=1), dt.timedelta(hours=24)],
    [Point(1, "a"), Point(1.0, "a")],
    [uuid.UUID(int=7), uuid.UUID(int=7)],
]


@pytest.mark.parametrize("keys", EQUAL_CLASSES, ids=lambda ks: type(ks[0]).__name__)
def test_every_spelling_of_one_key_hashes_alike(keys: list[Any]) -> None:
    assert all(k == keys[0] for k in keys)  # the premise: they are equal under ==
    assert len({stable_hash(k) for k in keys}) == 1


def test_an_enum_member_is_not_its_value_but_an_int_enum_is() -> None:
    assert stable_hash(Colour.RED) != stable_hash(1)
    assert stable_hash(Size.LARGE) == stable_hash(2)


numbers_ = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.fractions(),
    st.decimals(allow_nan=False, allow_infinity=True),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.floats(width=32, allow_nan=False).map(np.float32),
    st.booleans(),
)


def _exact(a: Any) -> Fraction | float:
    """The exact value of a number (NumPy's ``==`` of a float32 and a Python float compares them
    as float32, which is not Python's equality: the exact values are)."""
    if isinstance(a, np.floating):
        a = float(a)
    elif isinstance(a, np.integer):
        a = int(a)
    return a if abs(a) == float("inf") else Fraction(a)


@given(numbers_, numbers_)
def test_equal_numbers_hash_alike(a: Any, b: Any) -> None:
    if _exact(a) == _exact(b):
        assert stable_hash(a) == stable_hash(b)
    assert stable_hash(a) == stable_hash(_exact(a))


@given(st.lists(st.one_of(st.integers(), st.text(), st.floats(allow_nan=False)), max_size=6))
def test_tuples_and_frozensets_follow_their_items(items: list[Any]) -> None:
    as_floats = [float(x) if isinstance(x, int) and abs(x) < 2**53 else x for x in items]
    assert stable_hash(tuple(items)) == stable_hash(tuple(as_floats))
    assert stable_hash(frozenset(items)) == stable_hash(frozenset(reversed(as_floats)))


def test_hashes_are_the_same_in_every_process() -> None:
    keys = "('apple', frozenset({'a', 'b', 'c'}), (1, 'x'), b'k', 2.5, -7, None)"
    code = f"from twister2.net.key_hash import stable_hash; print([stable_hash(k) for k in {keys}])"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(outputs) == 1
    got = [int(h) for h in outputs.pop().strip("[]\n").split(",")]
    assert (got[0], got[3], got[6]) == (zlib.crc32(b"apple"), zlib.crc32(b"k"), 0)


@pytest.mark.parametrize(
    ("key", "named"),
    [
        (object(), "builtins.object"),
        ([np.array([1])], "numpy.ndarray"),
        ({"a": object()}, "builtins.object"),
        ((1, object()), "builtins.object"),
    ],
)
def test_a_key_without_a_stable_hash_is_refused_by_name(key: Any, named: str) -> None:
    with pytest.raises(UnstableKeyError, match=rf"a key of type {named} has no stable hash"):
        stable_hash(key)


def test_a_keyed_reduce_names_the_unstable_key_type() -> None:
    (ch,) = InprocChannel.group(1)
    with Dataflow(ch) as flow:
        op = KeyedReduce(flow, Plan.per_worker(1), "sum")
        with pytest.raises(OperationError, match=r"key of type builtins\.object has no stable"):
            op.send(0, (object(), 1))


@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=40))
def test_array_tier_hashes_integers_as_the_object_tier(values: list[int | None]) -> None:
    got = hash_column(pa.array(values, pa.int64())).tolist()
    assert got == [stable_hash(v) for v in values]
    floats = [float(v) for v in values if v is not None and abs(v) < 2**53]
    assert hash_column(pa.array(floats, pa.float64())).tolist() == [
        stable_hash(int(f)) for f in floats
    ]


@given(
    st.lists(st.one_of(st.none(), st.floats()), max_size=40),
    st.lists(st.one_of(st.none(), st.floats(width=32)), max_size=40),
)
def test_array_tier_hashes_floats_as_the_object_tier(
    values: list[float | None], float32s: list[float | None]
) -> None:
    got = hash_column(pa.array(values, pa.float64())).tolist()
    assert got == [stable_hash(v) for v in values]
    singles = hash_column(pa.array(float32s, pa.float32())).tolist()
    assert singles == [stable_hash(None if v is None else np.float32(v)) for v in float32s]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([dt.date(2020, 1, 2), dt.date(1901, 5, 5), None]),
        pa.array([dt.date(2020, 1, 2)], pa.date64()),
        pa.array([dt.datetime(2020, 1, 2, 3, 4, 5, 6), dt.datetime(1960, 1, 1)]),
        pa.array([dt.datetime(2020, 1, 2, 3, 4, 5, 6)], pa.timestamp("ns")),
        pa.array([dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)], pa.timestamp("ms", "UTC")),
        pa.array([dt.timedelta(seconds=-3, microseconds=5)]),
        pa.array([dt.time(3, 4, 5, 6)]),
        pa.array([dt.time(3, 4, 5)], pa.time32("s")),
        pa.array([True, False, None]),
        pa.array([2**64 - 1, 2**61 - 1, 0], pa.uint64()),
    ],
    ids=lambda c: str(c.type),
)
def test_array_tier_hashes_other_columns_as_the_object_tier(column: pa.Array) -> None:
    assert hash_column(column).tolist() == [stable_hash(v) for v in column.to_pylist()]


def test_int_and_float_key_columns_split_alike() -> None:
    ints = pa.table({"k": pa.array(range(-50, 50), pa.int64())})
    floats = pa.table({"k": pa.array([float(x) for x in range(-50, 50)], pa.float64())})
    split = {t: p.column("k").to_pylist() for t, p in split_by_target(ints, "k", 5)}
    assert split == {
        t: [int(x) for x in p.column("k").to_pylist()] for t, p in split_by_target(floats, "k", 5)
    }
    assert all(HashPartitioner()(k, 5) == t for t, ks in split.items() for k in ks)


@pytest.mark.parametrize(
    ("chosen", "error", "message"),
    [
        (3, ValueError, r"returned target 3 for a value of type str, but the targets are 0..2"),
        (-1, ValueError, r"returned target -1 .* 0..2"),
        (True, TypeError, r"returned True \(bool\) .* must return a target index"),
        (1.0, TypeError, r"returned 1.0 \(float\)"),
    ],
)
def test_check_target_refuses_what_is_not_a_target(chosen: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        check_target(chosen, 3, "k")
    assert check_target(np.int64(2), 3, "k") == 2

"""The array tier: its kernels, every array operator on threads over the inproc channel and in
real processes over tcp and mpi, spilling, bad input, and the no-loop-per-record structure."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import twister2
from tests.net.batch.array_cases import (
    NAMES,
    SPILL_LIMIT,
    SPILL_NAMES,
    expected,
    make_inputs,
    plan_for,
    run_case,
    spill_inputs,
    table,
)
from tests.net.batch.array_jobs import all_array_operators, spilling_array_operators
from tests.net.spmd_threads import run_spmd
from twister2.net import Dataflow, OperationError, Plan
from twister2.net.batch import (
    ArrayJoin,
    ArrayKeyedGather,
    ArrayKeyedReduce,
    ArrayPartition,
    Reduce,
    array_spill,
)
from twister2.net.batch.array_kernels import (
    Aggregations,
    bucket_ids,
    choose_cuts,
    hash_column,
    sort_table,
    split_by_target,
)
from twister2.net.batch.array_spill import TableStore, sorted_batches
from twister2.net.inproc import InprocChannel
from twister2.net.partitioners import stable_hash

T = TypeVar("T")

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KERNEL_SETTINGS = settings(deadline=None)  # no deadline: a busy test machine is not a failure


def run_threads(
    body: Callable[[Dataflow], T],
    workers: int,
    config: dict[str, Any] | None = None,
    scratch: Path | None = None,
) -> list[T]:
    """``body(flow)`` on every worker, each a thread with its own inproc channel and dataflow."""
    channels = InprocChannel.group(workers)
    flows = [
        Dataflow(ch, config=config, scratch_dir=scratch / f"w{ch.rank}" if scratch else None)
        for ch in channels
    ]
    try:
        return run_spmd(lambda r: body(flows[r]), workers, timeout=120)
    finally:
        for flow in flows:
            flow.close()
        for ch in channels:
            ch.close()


def merged(parts: list[dict[int, Any]]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for part in parts:
        assert not set(part) & set(out)
        out.update(part)
    return out


def run_name(
    name: str,
    plan: Plan,
    inputs: list[list[Any]],
    kind: str = "int",
    config: dict[str, Any] | None = None,
    scratch: Path | None = None,
) -> dict[int, Any]:
    parts = run_threads(
        lambda flow: run_case(name, flow, plan, inputs, kind), plan.workers, config, scratch
    )
    return merged(parts)


# -- every operator against the reference ---------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["int", "str"])
@pytest.mark.parametrize(
    ("workers", "sources", "targets"), [(1, 3, 5), (2, 3, 5), (4, 3, 5), (3, 7, 2)]
)
def test_operator_matches_reference(
    name: str, kind: str, workers: int, sources: int, targets: int
) -> None:
    plan = plan_for(workers, sources, targets)
    inputs = make_inputs(name, sources, kind, seed=workers * 10 + sources)
    assert run_name(name, plan, inputs, kind) == expected(name, plan, inputs)


rows_int = st.fixed_dictionaries(
    {
        "k": st.one_of(st.none(), st.integers(-3, 3), st.just(2**62), st.just(-(2**63))),
        "v": st.one_of(st.none(), st.integers(-1000, 1000)),
        "s": st.one_of(st.none(), st.text(max_size=3)),
    }
)
rows_str = st.fixed_dictionaries(
    {
        "k": st.one_of(st.none(), st.sampled_from(["", "a", "b", "hot"]), st.text(max_size=4)),
        "v": st.one_of(st.none(), st.integers(-1000, 1000)),
        "s": st.one_of(st.none(), st.text(max_size=3)),
    }
)


def _as_join(inputs: list[list[list[dict[str, Any]]]], flips: list[bool]) -> list[list[Any]]:
    out: list[list[Any]] = []
    i = 0
    for batches in inputs:
        sides = []
        for batch in batches:
            side = "L" if flips[i % len(flips)] else "R"
            i += 1
            other = "s" if side == "L" else "t"
            sides.append((side, [{"k": r["k"], "v": r["v"], other: r["s"]} for r in batch]))
        out.append(sides)
    return out


@SETTINGS
@given(
    data=st.data(),
    kind=st.sampled_from(["int", "str"]),
    workers=st.integers(1, 3),
    targets=st.integers(1, 4),
    name=st.sampled_from(["partition", "keyed_reduce", "keyed_gather", "join_outer", "join_inner"]),
)
def test_operators_property(
    data: st.DataObject, kind: str, workers: int, targets: int, name: str
) -> None:
    rows = rows_int if kind == "int" else rows_str
    hot = st.lists(st.just({"k": 1 if kind == "int" else "hot", "v": 1, "s": None}), max_size=40)
    batch = st.one_of(st.lists(rows, max_size=12), hot)
    inputs: list[list[Any]] = data.draw(
        st.lists(st.lists(batch, max_size=3), min_size=1, max_size=4), label="inputs"
    )
    if name.startswith("join"):
        inputs = _as_join(inputs, data.draw(st.lists(st.booleans(), min_size=1), label="sides"))
    plan = Plan.spread(len(inputs), targets, workers)
    assert run_name(name, plan, inputs, kind) == expected(name, plan, inputs)


# -- kernels --------------------------------------------------------------------------------------
@KERNEL_SETTINGS
@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))))
def test_hash_of_integers_is_stable_hash(values: list[int | None]) -> None:
    assert hash_column(pa.array(values, pa.int64())).tolist() == [stable_hash(v) for v in values]


@KERNEL_SETTINGS
@given(st.lists(st.one_of(st.none(), st.integers(0, 2**64 - 1))))
def test_hash_of_unsigned_integers_is_stable_hash(values: list[int | None]) -> None:
    assert hash_column(pa.array(values, pa.uint64())).tolist() == [stable_hash(v) for v in values]


@KERNEL_SETTINGS
@given(st.lists(st.one_of(st.none(), st.text())))
def test_hash_of_strings_is_stable_hash(values: list[str | None]) -> None:
    for kind in (pa.string(), pa.large_string()):
        hashes = hash_column(pa.array(values, kind)).tolist()
        assert hashes == [stable_hash(v) for v in values]
    dictionary = pa.array(values, pa.string()).dictionary_encode()
    assert hash_column(dictionary).tolist() == [stable_hash(v) for v in values]


@KERNEL_SETTINGS
@given(st.lists(st.text(min_size=0, max_size=30), min_size=65, max_size=300))
def test_vectorised_crc_of_many_distinct_strings(values: list[str]) -> None:
    assert hash_column(pa.array(values)).tolist() == [stable_hash(v) for v in values]


@KERNEL_SETTINGS
@given(st.lists(st.one_of(st.none(), st.binary())))
def test_hash_of_binaries_is_stable_hash(values: list[bytes | None]) -> None:
    assert hash_column(pa.array(values, pa.binary())).tolist() == [stable_hash(v) for v in values]


@KERNEL_SETTINGS
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=False), st.booleans())))
def test_hash_of_floats_and_booleans(values: list[Any]) -> None:
    floats = [float(v) if v is not None else None for v in values]
    reference = [stable_hash(0.0 if v == 0 else v) for v in floats]  # -0.0 hashes as 0.0
    assert hash_column(pa.array(floats, pa.float64())).tolist() == reference
    bools = [bool(v) if v is not None else None for v in values]
    assert hash_column(pa.array(bools, pa.bool_())).tolist() == [stable_hash(v) for v in bools]


def test_hash_of_chunked_arrays_numpy_and_other_types() -> None:
    chunked = pa.chunked_array([[1, 2], [], [3]])
    assert hash_column(chunked).tolist() == [stable_hash(v) for v in (1, 2, 3)]
    assert hash_column(np.array([5, -5], np.int32)).tolist() == [stable_hash(5), stable_hash(-5)]
    assert hash_column(pa.array([None, None])).tolist() == [0, 0]
    with pytest.raises(TypeError, match=r"list<item: int64>"):
        hash_column(pa.array([[1], [2]]))


def test_hash_of_temporal_fixed_size_and_view_columns() -> None:
    stamps = pa.array([0, -5, None, 10**15], pa.timestamp("us"))
    ints = [stable_hash(v) if v is not None else 0 for v in (0, -5, None, 10**15)]
    assert hash_column(stamps).tolist() == ints
    days = pa.array([1, None, -3], pa.date32())
    assert hash_column(days).tolist() == [stable_hash(1), 0, stable_hash(-3)]
    fixed = pa.array([b"ab", None, b"cd"], pa.binary(2))
    assert hash_column(fixed).tolist() == [stable_hash(b"ab"), 0, stable_hash(b"cd")]
    views = pa.array(["x", None, "yz"], pa.string_view())
    assert hash_column(views).tolist() == [stable_hash("x"), 0, stable_hash("yz")]


def test_buckets_of_dates_and_booleans() -> None:
    days = pa.array([5, None, 1, 3, 3], pa.date32())
    assert bucket_ids(days, pa.array([3], pa.date32())).tolist() == [2, 3, 0, 1, 1]
    flags = pa.array([True, False, None])
    assert bucket_ids(flags, pa.array([True])).tolist() == [1, 0, 3]


@SETTINGS
@given(
    keys=st.lists(st.one_of(st.none(), st.integers(-5, 5))),
    targets=st.integers(1, 6),
)
def test_split_by_target_keeps_every_row_once(keys: list[int | None], targets: int) -> None:
    table = pa.table({"k": pa.array(keys, pa.int64()), "i": list(range(len(keys)))})
    parts = split_by_target(table, "k", targets)
    seen = []
    for target, part in parts:
        assert all(stable_hash(k) % targets == target for k in part.column("k").to_pylist())
        seen += part.column("i").to_pylist()
    assert sorted(seen) == list(range(len(keys)))
    assert [t for t, _ in parts] == sorted({stable_hash(k) % targets for k in keys})


@SETTINGS
@given(
    values=st.one_of(
        st.lists(st.one_of(st.none(), st.integers(-4, 4), st.just(4))),
        st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "ab", "b", "zz"]))),
        st.lists(st.one_of(st.none(), st.floats(-3, 3), st.just(math.nan))),
    ),
    cuts=st.integers(0, 5),
    sample=st.integers(1, 50),
)
def test_buckets_follow_the_sort_order(values: list[Any], cuts: int, sample: int) -> None:
    column = pa.array(values)
    edges = choose_cuts(column.slice(0, sample), cuts)
    ordered = sort_table(pa.table({"k": column}), "k").column("k")
    ids = bucket_ids(ordered, edges)
    assert (np.diff(ids) >= 0).all(), (ids, edges)
    for b in np.unique(ids[ids % 2 == 1]):  # odd buckets hold one key each
        assert len({repr(v) for v in ordered.take(np.flatnonzero(ids == b)).to_pylist()}) == 1


def test_aggregations_validate_their_spec() -> None:
    with pytest.raises(ValueError, match=r"unknown aggregation 'median' for column 'v'"):
        Aggregations.of("k", {"v": "median"})
    with pytest.raises(ValueError, match="no aggregations"):
        Aggregations.of("k", {})


# -- spilling -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPILL_NAMES)
@pytest.mark.parametrize("kind", ["int", "str"])
def test_spilling_with_a_tiny_memory_limit(name: str, kind: str, tmp_path: Path) -> None:
    plan = plan_for(2, 3, 2)
    inputs = spill_inputs(name, 3, kind)
    batches = [b if isinstance(b, tuple) else ("L", b) for bs in inputs for b in bs]
    assert sum(table(rows, kind, side).nbytes for side, rows in batches) > 10 * SPILL_LIMIT
    seen: list[list[Path]] = []

    def body(flow: Dataflow) -> dict[int, Any]:
        def look() -> None:
            seen.append(sorted(tmp_path.rglob("*.arrow")))

        return run_case(name, flow, plan, inputs, kind, before_close=look)

    config = {"net.spill.memory_bytes": SPILL_LIMIT}
    assert merged(run_threads(body, 2, config, tmp_path)) == expected(name, plan, inputs)
    assert any(seen), "nothing spilled"
    assert list(tmp_path.rglob("*.arrow")) == []  # close() removed every file


def test_external_sort_of_a_hot_key_and_files_during_the_sort(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 60_000
    keys = np.where(rng.random(n) < 0.6, 13, rng.integers(0, 1000, n))
    source = pa.table({"k": keys, "v": np.arange(n)})
    limit = 40_000  # the data is 960 KB: 24 times the limit

    def body(flow: Dataflow) -> tuple[list[int], int, int]:
        op = ArrayKeyedGather(flow, Plan.spread(1, 1, 1), "k")
        for start in range(0, n, 5000):
            op.send(0, source.slice(start, 5000))
        op.finish(0)
        op.wait()
        spill_files = len(list(tmp_path.rglob("*.arrow")))
        out: list[int] = []
        during = 0
        for batch in op.result(0):
            out += batch.column("k").to_pylist()
            during = max(during, len(list(tmp_path.rglob("*.arrow"))))
        op.close()
        return out, spill_files, during

    ((out, spill_files, during),) = run_threads(
        body, 1, {"net.spill.memory_bytes": limit}, tmp_path
    )
    assert out == sorted(keys.tolist())
    assert spill_files >= 10
    assert during > spill_files  # bucket files of the external sort, beside the spill files
    assert list(tmp_path.rglob("*.arrow")) == []


def test_external_sort_cuts_big_buckets_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(array_spill, "MAX_BUCKETS", 3)  # too few buckets: each is over the limit
    rng = np.random.default_rng(3)
    store = TableStore(8000, tmp_path, "store", sample_key="k")
    keys: list[Any] = []
    for _ in range(400):  # small tables: the store spills every few, and keeps a remainder
        hot = [["x", "y", "z", None][i] for i in rng.integers(0, 4, 20)]
        k = hot + rng.integers(0, 10**6, 10).astype(str).tolist()
        keys += k
        store.add(pa.table({"k": pa.array(k, pa.string())}))
    assert len(store.files) > 5 and store.table() is not None
    assert store.nbytes > 5 * store.limit
    seen: list[int] = []
    out: list[Any] = []
    for batch in sorted_batches(store, "k", store.limit):
        out += batch.column("k").to_pylist()
        seen.append(len(list(tmp_path.glob("store-d1b*"))))
    assert out == sorted(keys, key=lambda k: (k is None, k or ""))
    assert max(seen) > 0  # a second pass over a bucket
    assert len(list(tmp_path.iterdir())) == len(store.files)  # the passes' files are gone
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_keyed_reduce_of_many_small_tables_combines_as_they_arrive() -> None:
    rng = np.random.default_rng(9)
    tables = [
        pa.table({"k": rng.integers(0, 30, 40), "v": rng.integers(-5, 5, 40)}) for _ in range(150)
    ]

    def body(flow: Dataflow) -> dict[int, Any]:
        plan = Plan.spread(2, 3, 2)
        op = ArrayKeyedReduce(flow, plan, "k", {"v": ["sum", "count", "mean"]})
        for source in plan.local_sources(flow.rank):
            for t in tables[source::2]:
                op.send(source, t)
            op.finish(source)
        op.wait()
        return {t: op.result(t).to_pylist() for t in plan.local_targets(flow.rank)}

    got = merged(run_threads(body, 2, {"net.spill.memory_bytes": 2000}))
    groups: dict[int, list[int]] = {}
    for t in tables:
        for k, v in zip(t.column("k").to_pylist(), t.column("v").to_pylist(), strict=True):
            groups.setdefault(k, []).append(v)
    for target, rows in got.items():
        want = [
            {"k": k, "v_sum": sum(vs), "v_count": len(vs), "v_mean": sum(vs) / len(vs)}
            for k, vs in sorted(groups.items())
            if stable_hash(k) % 3 == target
        ]
        assert rows == want


@pytest.mark.parametrize(
    "keys",
    [
        pa.array([1.5, None, math.nan, -0.0, 0.0, 1.5, math.nan, None]),
        pa.array(["b", "a", None, "b", "a"]).dictionary_encode(),
        pa.array([b"x", b"yy", b"x", None], pa.binary()),
    ],
)
def test_groups_of_float_dictionary_and_binary_keys(keys: pa.Array) -> None:
    def body(flow: Dataflow) -> list[tuple[Any, int]]:
        op = ArrayKeyedGather(flow, Plan.per_worker(1), "k")
        op.send(0, pa.table({"k": keys, "i": np.arange(len(keys))}))
        op.finish(0)
        op.wait()
        return [(k, len(rows)) for k, rows in op.groups(0)]

    groups = _one_worker(body)
    values = keys.to_pylist()
    counts: dict[str, int] = {}
    for v in values:
        counts[repr(0.0 if v == 0 else v)] = counts.get(repr(0.0 if v == 0 else v), 0) + 1
    assert sorted(n for _, n in groups) == sorted(counts.values())
    assert groups[-1][0] is None or None not in values


def test_a_spilled_partition_result_is_memory_mapped_and_outlives_close(tmp_path: Path) -> None:
    def body(flow: Dataflow) -> tuple[int, int]:
        op = ArrayPartition(flow, Plan.spread(1, 1, 1), key="k")
        for i in range(20):
            op.send(0, {"k": np.arange(1000) + 1000 * i, "v": np.ones(1000)})
        op.finish(0)
        op.wait()
        table = op.result(0)
        files = len(list(tmp_path.rglob("*.arrow")))
        op.close()
        return files, int(pa.compute.sum(table.column("k")).as_py())

    ((files, total),) = run_threads(body, 1, {"net.spill.memory_bytes": 50_000}, tmp_path)
    assert files >= 3
    assert total == sum(range(20_000))


# -- structure: batches, not records --------------------------------------------------------------
def test_a_million_row_partition_sends_few_messages() -> None:
    rows, chunks, targets = 1_000_000, 10, 5
    table = pa.table({"k": np.arange(rows, dtype=np.int64), "v": np.arange(rows) * 2})

    def body(flow: Dataflow) -> tuple[int, int, dict[int, int]]:
        sends = {"data": 0, "end": 0}
        send = flow.send

        def counting(op: Any, dest: int, kind: str, payload: Any, signature: Any = None) -> None:
            sends[kind] += 1
            send(op, dest, kind, payload, signature)

        flow.send = counting  # type: ignore[method-assign]
        plan = Plan.spread(2, targets, 2)
        op = ArrayPartition(flow, plan, key="k")
        for source in plan.local_sources(flow.rank):
            for start in range(source * rows // 2, (source + 1) * rows // 2, rows // chunks):
                op.send(source, table.slice(start, rows // chunks))
            op.finish(source)
        op.wait()
        sizes = {t: op.result(t).num_rows for t in plan.local_targets(flow.rank)}
        for t in plan.local_targets(flow.rank):
            keys = op.result(t).column("k")
            assert (hash_column(keys) % np.uint64(targets) == t).all()
        return sends["data"], sends["end"], sizes

    parts = run_threads(body, 2)
    sizes = merged([p[2] for p in parts])
    assert sum(sizes.values()) == rows
    batches_per_worker = chunks // 2
    for data, end, _ in parts:
        assert data <= targets * batches_per_worker  # one message per target and table at most
        assert end == 2  # one end message per worker that hosts targets


# -- empty inputs and schemas ---------------------------------------------------------------------
def test_targets_that_got_nothing_return_empty_tables_of_the_schema() -> None:
    def body(flow: Dataflow) -> dict[str, Any]:
        plan = Plan.spread(3, 5, 2)
        ops: dict[str, Any] = {
            "partition": ArrayPartition(flow, plan, key="k"),
            "reduce": ArrayKeyedReduce(flow, plan, "k", {"v": "sum"}),
            "gather": ArrayKeyedGather(flow, plan, "k"),
        }
        for op in ops.values():
            for source in plan.local_sources(flow.rank):
                if source == 2:  # one row from one source: most targets get nothing
                    op.send(source, pa.record_batch({"k": [1], "v": [2.5]}))
                op.finish(source)
            op.wait()
        mine = plan.local_targets(flow.rank)
        return {
            "partition": {t: ops["partition"].result(t).schema.names for t in mine},
            "reduce": {t: ops["reduce"].result(t).column_names for t in mine},
            "gather": {t: ops["gather"].table(t).schema.names for t in mine},
        }

    for part in run_threads(body, 2):
        for t in part["partition"]:
            assert part["partition"][t] == ["k", "v"]
            assert part["reduce"][t] == ["k", "v_sum"]
            assert part["gather"][t] == ["k", "v"]


def test_nothing_sent_anywhere_gives_tables_with_no_columns() -> None:
    def body(flow: Dataflow) -> list[int]:
        plan = Plan.spread(2, 3, 2)
        ops: list[Any] = [
            ArrayPartition(flow, plan, key="k"),
            ArrayKeyedReduce(flow, plan, "k", {"v": "sum"}),
            ArrayKeyedGather(flow, plan, "k"),
            ArrayJoin(flow, plan, "k", how="outer"),
        ]
        widths = []
        for op in ops:
            for source in plan.local_sources(flow.rank):
                op.finish(source)
                if isinstance(op, ArrayJoin):
                    op.finish_right(source)
            op.wait()
            for t in plan.local_targets(flow.rank):
                result = op.table(t) if isinstance(op, ArrayKeyedGather) else op.result(t)
                widths.append(result.num_columns + result.num_rows)
            op.close()
        return widths

    assert all(w == [0] * len(w) for w in run_threads(body, 2))


def test_join_with_one_side_empty_everywhere_keeps_the_key_type() -> None:
    def body(flow: Dataflow) -> list[dict[str, Any]]:
        op = ArrayJoin(flow, Plan.per_worker(1), "k", how="left")
        op.send_left(0, pa.table({"k": ["a", None], "x": [1, 2]}))
        op.finish_left(0)
        op.finish_right(0)
        op.wait()
        rows: list[dict[str, Any]] = op.result(0).sort_by("x").to_pylist()
        return rows

    assert run_threads(body, 1) == [[{"k": "a", "x": 1}, {"k": None, "x": 2}]]


# -- bad input ------------------------------------------------------------------------------------
def _one_worker(body: Callable[[Dataflow], T]) -> T:
    return run_threads(body, 1)[0]


def test_a_missing_key_column_names_the_columns() -> None:
    def body(flow: Dataflow) -> None:
        ArrayPartition(flow, Plan.per_worker(1), key="key").send(0, {"k": [1], "v": [2]})

    with pytest.raises(
        OperationError, match=r"array partition .* worker 0: no column 'key' .*k, v"
    ):
        _one_worker(body)

    def reduce_body(flow: Dataflow) -> None:
        ArrayKeyedReduce(flow, Plan.per_worker(1), "k", {"w": "max"}).send(0, {"k": [1], "v": [2]})

    with pytest.raises(OperationError, match=r"array keyed reduce .*no column 'w'"):
        _one_worker(reduce_body)


def test_different_schemas_on_one_worker_name_both() -> None:
    def body(flow: Dataflow) -> None:
        op = ArrayKeyedGather(flow, Plan.per_worker(1), "k")
        op.send(0, pa.table({"k": [1], "v": [1.0]}))
        op.send(0, pa.table({"k": ["a"], "v": [1.0]}))

    with pytest.raises(
        OperationError,
        match=r"different schemas .*\(k: int64, v: double\).*\(k: string, v: double\)",
    ):
        _one_worker(body)


def test_different_schemas_across_workers_fail_in_the_users_thread() -> None:
    def body(flow: Dataflow) -> None:
        op = ArrayPartition(flow, Plan.per_worker(2), key="k")
        value: Any = [1] if flow.rank == 0 else ["a"]
        op.send(flow.rank, {"k": value})
        op.finish(flow.rank)
        op.wait(timeout=30)

    with pytest.raises(
        OperationError, match=r"array partition .*different schemas reached .*worker"
    ):
        run_threads(body, 2)


def test_unhashable_and_unsortable_keys_name_the_type() -> None:
    def hashing(flow: Dataflow) -> None:
        ArrayPartition(flow, Plan.per_worker(1), key="k").send(0, {"k": pa.array([[1], [2]])})

    with pytest.raises(
        OperationError, match=r"worker 0: cannot route by key column 'k' of type list"
    ):
        _one_worker(hashing)

    def sorting(flow: Dataflow) -> None:
        op = ArrayKeyedGather(
            flow, Plan.per_worker(1), "k", partitioner=lambda col, n: np.zeros(len(col), int)
        )
        op.send(0, {"k": pa.array([[2], [1]])})
        op.finish(0)
        op.wait()
        list(op.result(0))

    with pytest.raises(OperationError, match=r"array keyed gather .*keys of type list.* sorted"):
        _one_worker(sorting)


def test_mixed_python_types_in_a_column_are_named() -> None:
    def body(flow: Dataflow) -> None:
        op = ArrayPartition(flow, Plan.per_worker(1), key="k")
        op.send(0, {"k": np.array([1, "a"], dtype=object)})

    with pytest.raises(OperationError, match=r"column 'k' \(values of types int, str\)"):
        _one_worker(body)


def test_bad_partitioners_and_join_keys() -> None:
    def out_of_range(flow: Dataflow) -> None:
        op = ArrayPartition(flow, Plan.spread(1, 2, 1), "k", partitioner=lambda c, n: [5] * len(c))
        op.send(0, {"k": [1, 2]})

    with pytest.raises(OperationError, match=r"returned target 5, but the targets are 0..1"):
        _one_worker(out_of_range)

    def join_types(flow: Dataflow) -> None:
        op = ArrayJoin(flow, Plan.per_worker(1), "k")
        op.send_left(0, {"k": pa.array([1], pa.int64())})
        op.send_right(0, {"k": pa.array([1], pa.int32())})
        op.finish_left(0)
        op.finish_right(0)
        op.wait()

    with pytest.raises(OperationError, match=r"left key 'k' is int64 but the right key is int32"):
        _one_worker(join_types)

    def not_a_table(flow: Dataflow) -> None:
        ArrayPartition(flow, Plan.per_worker(1), key="k").send(0, [1, 2, 3])

    with pytest.raises(OperationError, match=r"pyarrow Tables, RecordBatches or dicts .*not list"):
        _one_worker(not_a_table)


def test_bad_arguments_are_refused_at_once() -> None:
    def body(flow: Dataflow) -> None:
        plan = Plan.per_worker(1)
        with pytest.raises(TypeError, match=r"the key must be a column name, got 5"):
            ArrayKeyedGather(flow, plan, 5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"a partitioner needs a key column"):
            ArrayPartition(flow, plan, partitioner=lambda c, n: np.zeros(len(c), int))
        with pytest.raises(ValueError, match=r"unknown how='cross' \(known: inner, left"):
            ArrayJoin(flow, plan, "k", how="cross")
        join = ArrayJoin(flow, plan, "k", right_sources=(0, 0))
        with pytest.raises(ValueError, match=r"right source 2 is not hosted here"):
            join.send_right(2, {"k": [1]})
        join.finish_right(1)
        with pytest.raises(ValueError, match=r"right source 1 is already finished"):
            join.finish_right(1)

    _one_worker(body)


def test_join_columns_that_clash_even_with_suffixes() -> None:
    def body(flow: Dataflow) -> None:
        op = ArrayJoin(flow, Plan.per_worker(1), "k", suffixes=("", ""))
        op.send_left(0, {"k": [1], "v": [1]})
        op.send_right(0, {"k": [1], "v": [2]})
        op.finish_left(0)
        op.finish_right(0)
        op.wait()
        op.result(0)

    with pytest.raises(OperationError, match=r"array join .*columns \['v'\] clash"):
        _one_worker(body)


def test_sum_of_arrays_of_mismatched_shapes_fails_clearly() -> None:
    def body(flow: Dataflow) -> None:
        op = Reduce(flow, Plan.spread(2, 1, 1), "sum")
        op.send(0, np.ones(3))
        op.send(1, np.ones(4))
        op.finish(0)
        op.finish(1)
        op.wait()

    with pytest.raises(OperationError, match=r"reduce .*worker 0.*shapes \(3,\) and \(4,\)"):
        _one_worker(body)


# -- real processes -------------------------------------------------------------------------------
CHANNELS = [("local", "tcp"), pytest.param("mpi", "mpi", marks=pytest.mark.mpi)]


@pytest.mark.parametrize(("cluster", "channel"), CHANNELS)
@pytest.mark.parametrize("workers", [2, 4])
def test_every_array_operator_in_real_processes(cluster: str, channel: str, workers: int) -> None:
    result = twister2.run(
        all_array_operators, workers=workers, cluster=cluster, config={"network.channel": channel}
    )
    plan = plan_for(workers)
    for kind in ("int", "str"):
        for name in NAMES:
            got = merged([part[f"{name}/{kind}"] for part in result.values])
            inputs = make_inputs(name, len(plan.sources), kind, seed=workers)
            assert got == expected(name, plan, inputs), (name, kind)


@pytest.mark.parametrize(("cluster", "channel"), CHANNELS)
def test_spilling_in_real_processes(cluster: str, channel: str) -> None:
    config = {"network.channel": channel, "net.spill.memory_bytes": SPILL_LIMIT}
    result = twister2.run(spilling_array_operators, workers=2, cluster=cluster, config=config)
    plan = plan_for(2, 3, 2)
    for kind in ("int", "str"):
        for name in SPILL_NAMES:
            got = merged([part[f"{name}/{kind}"] for part in result.values])
            assert got == expected(name, plan, spill_inputs(name, 3, kind)), (name, kind)
            for part in result.values:
                spilled, left_over = part[f"{name}/{kind}/files"]
                assert spilled == [True] and left_over == []

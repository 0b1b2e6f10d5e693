"""Split correctness as properties: for random files and any readers, every record once.

Text and CSV are checked at the planned cut points (``plan_splits(path, n)``) and at arbitrary
ones (any byte offsets, in the middle of ``\\r\\n`` or of a multi-byte character), with small
read blocks so block edges and lines longer than a block are crossed too.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twister2.io import (
    Split,
    assign_splits,
    plan_splits,
    read_batches,
    read_split,
)
from twister2.io.splits import byte_ranges, unit_ranges

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

line_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\n"),
    max_size=30,
)
endings = st.sampled_from(["\n", "\r\n"])


@st.composite
def text_files(draw: st.DrawFn) -> bytes:
    """Lines of any UTF-8 (``\\r`` inside lines too), ``\\n`` or ``\\r\\n`` ends, maybe no
    final line end, empty lines."""
    lines = draw(st.lists(st.tuples(line_text, endings), max_size=40))
    text = "".join(line + end for line, end in lines)
    if draw(st.booleans()):
        text += draw(line_text)
    return text.encode("utf-8")


def reference_lines(data: bytes) -> list[str]:
    """The lines a text reader must give: split at ``\\n``; ``\\r\\n`` is one line end."""
    parts = data.split(b"\n")
    tail = parts.pop()
    lines = [p[:-1] if p.endswith(b"\r") else p for p in parts]
    if tail:
        lines.append(tail)
    return [line.decode("utf-8") for line in lines]


def config(block_bytes: int = 1 << 20, batch_rows: int = 65536) -> dict[str, Any]:
    return {"io.text.block_bytes": block_bytes, "io.batch_rows": batch_rows}


def cut(split: Split, points: list[int]) -> list[Split]:
    """``split``'s file cut at ``points`` (byte offsets, any order, repeats allowed)."""
    edges = sorted({0, split.file_size, *(min(p, split.file_size) for p in points)})
    return [
        dataclasses.replace(split, start=a, length=b - a, index=i)
        for i, (a, b) in enumerate(itertools.pairwise(edges))
    ]


@PROPERTY
@given(
    data=text_files(),
    readers=st.integers(1, 9),
    block=st.integers(1, 64),
    points=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_text_splits_read_every_line_exactly_once(
    data: bytes, readers: int, block: int, points: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lines.txt"
        path.write_bytes(data)
        cfg = config(block_bytes=block)
        expected = reference_lines(data)
        splits = plan_splits(str(path), readers, config=cfg)
        assert [s.index for s in splits] == list(range(len(splits)))
        if data:
            assert len(splits) == min(readers, len(data))
        got = [line for s in splits for line in read_split(s, cfg)]
        assert got == expected
        if not splits:
            return
        whole = dataclasses.replace(splits[0], start=0, length=len(data))
        pieces = cut(whole, [p % (len(data) + 1) for p in points])
        assert [line for s in pieces for line in read_split(s, cfg)] == expected
        batches = [b for s in pieces for b in read_batches(s, cfg)]
        assert all(b.schema.names == ["line"] for b in batches)
        assert [x for b in batches for x in b.column("line").to_pylist()] == expected


@PROPERTY
@given(
    files=st.lists(text_files(), min_size=1, max_size=4),
    readers=st.integers(1, 6),
)
def test_a_directory_of_text_files_reads_each_line_once(files: list[bytes], readers: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for i, data in enumerate(files):
            (Path(folder) / f"f{i}.txt").write_bytes(data)
        (Path(folder) / "_SUCCESS").write_bytes(b"not data\n")
        splits = plan_splits(folder, readers, config=config(block_bytes=16))
        got = [line for s in splits for line in read_split(s, config(block_bytes=16))]
        assert got == [line for data in files for line in reference_lines(data)]
        shares = assign_splits(splits, readers)
        assert sorted(s.index for share in shares for s in share) == list(range(len(splits)))


csv_value = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12
).map(lambda s: "s" + s)


@PROPERTY
@given(
    rows=st.lists(st.tuples(st.integers(-(10**9), 10**9), csv_value), max_size=40),
    ending=endings,
    final_newline=st.booleans(),
    readers=st.integers(1, 7),
    points=st.lists(st.integers(0, 5_000), max_size=8),
)
def test_csv_splits_read_every_row_exactly_once(
    rows: list[tuple[int, str]],
    ending: str,
    final_newline: bool,
    readers: int,
    points: list[int],
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=ending)
    writer.writerow(["n", "s"])
    writer.writerows(rows)
    text = out.getvalue()
    if not final_newline:
        text = text.removesuffix(ending)
    data = text.encode("utf-8")
    expected = [{"n": n, "s": s} for n, s in rows]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        path.write_bytes(data)
        cfg = config(block_bytes=1 << 16)
        splits = plan_splits(str(path), readers, config=cfg)
        assert [r for s in splits for r in read_split(s, cfg)] == expected
        if not splits:
            return
        whole = dataclasses.replace(splits[0], start=0, length=len(data))
        pieces = cut(whole, [p % (len(data) + 1) for p in points])
        assert [r for s in pieces for r in read_split(s, cfg)] == expected


@PROPERTY
@given(
    rows=st.integers(0, 200),
    width=st.integers(0, 3),
    readers=st.integers(1, 8),
    batch=st.integers(1, 50),
)
def test_npy_splits_read_every_row_once(rows: int, width: int, readers: int, batch: int) -> None:
    shape = (rows,) if width == 0 else (rows, width)
    array = np.arange(rows * max(width, 1), dtype=np.int32).reshape(shape)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.npy"
        np.save(path, array)
        cfg = config(batch_rows=batch)
        splits = plan_splits(str(path), readers, config=cfg)
        assert sum(s.rows or 0 for s in splits) == rows
        batches = [b for s in splits for b in read_batches(s, cfg)]
        assert all(len(b) <= batch for b in batches)
        got = np.concatenate(batches) if batches else np.empty(shape, np.int32)
        np.testing.assert_array_equal(got, array)


@PROPERTY
@given(
    groups=st.lists(st.lists(st.integers(0, 30), min_size=1, max_size=6), min_size=1, max_size=3),
    readers=st.integers(1, 8),
)
def test_parquet_splits_read_every_row_group_once(groups: list[list[int]], readers: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        expected = []
        for f, sizes in enumerate(groups):
            with pq.ParquetWriter(
                Path(folder) / f"p{f}.parquet", pa.schema([("v", pa.int64())])
            ) as w:
                for g, size in enumerate(sizes):
                    values = [f * 10_000 + g * 100 + i for i in range(size)]
                    expected.extend(values)
                    w.write_table(pa.table({"v": pa.array(values, pa.int64())}))
        splits = plan_splits(folder, readers)
        assert all(s.unit == "row_groups" for s in splits)
        got = [r["v"] for s in splits for r in read_split(s)]
        assert got == expected
        assert sum(s.rows or 0 for s in splits) == len(expected)


@PROPERTY
@given(batches=st.lists(st.integers(0, 20), max_size=10), readers=st.integers(1, 8))
def test_arrow_ipc_splits_read_every_batch_once(batches: list[int], readers: int) -> None:
    schema = pa.schema([("v", pa.int64())])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.arrow"
        expected: list[int] = []
        with pa.ipc.new_file(str(path), schema) as w:
            for size in batches:
                values = list(range(len(expected), len(expected) + size))
                expected.extend(values)
                w.write_batch(pa.record_batch({"v": pa.array(values, pa.int64())}))
        splits = plan_splits(str(path), readers)
        assert sum(s.length for s in splits) == len(batches)
        assert [r["v"] for s in splits for r in read_split(s)] == expected


def test_an_arrow_ipc_stream_is_one_split(tmp_path: Path) -> None:
    path = tmp_path / "a.arrows"
    batch = pa.record_batch({"v": [1, 2, 3]})
    with pa.ipc.new_stream(str(path), batch.schema) as w:
        w.write_batch(batch)
        w.write_batch(batch)
    splits = plan_splits(str(path), 4)
    assert len(splits) == 1
    assert [r["v"] for r in read_split(splits[0])] == [1, 2, 3, 1, 2, 3]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 500)), min_size=1, max_size=6),
    n=st.integers(1, 12),
)
def test_byte_ranges_cover_each_byte_once(sizes: list[tuple[int, int]], n: int) -> None:
    pieces = byte_ranges(sizes, n)
    for i, (start, length) in enumerate(sizes):
        mine = [(a, b) for f, a, b in pieces if f == i]
        covered = [x for a, b in mine for x in range(a, a + b)]
        assert covered == list(range(start, start + length))
        assert all(b > 0 for _, b in mine)
    if sum(length for _, length in sizes) >= n and len(sizes) == 1:
        assert len(pieces) == n


@settings(max_examples=200, deadline=None)
@given(
    units=st.lists(st.lists(st.integers(0, 50), max_size=8), min_size=1, max_size=5),
    n=st.integers(1, 10),
)
def test_unit_ranges_take_each_unit_once(units: list[list[int]], n: int) -> None:
    pieces = unit_ranges(units, n)
    for i, rows in enumerate(units):
        mine = [(a, c, r) for f, a, c, r in pieces if f == i]
        assert [u for a, c, _ in mine for u in range(a, a + c)] == list(range(len(rows)))
        assert all(r == sum(rows[a : a + c]) for a, c, r in mine)


@settings(max_examples=100, deadline=None)
@given(weights=st.lists(st.integers(0, 100), max_size=20), n=st.integers(1, 6))
def test_assign_splits_gives_each_split_to_one_reader(weights: list[int], n: int) -> None:
    items = list(enumerate(weights))
    shares = assign_splits(items, n, weight=lambda item: item[1])
    assert len(shares) == n
    assert sorted(i for share in shares for i, _ in share) == list(range(len(weights)))
    assert all(share == sorted(share) for share in shares)
    loads = [sum(w for _, w in share) for share in shares]
    if weights:
        assert max(loads) - min(loads) <= max(weights)


@pytest.mark.parametrize("readers", [1, 2, 3, 5])
def test_word_count_style_shares_match_the_whole_file(tmp_path: Path, readers: int) -> None:
    sample = Path(__file__).resolve().parents[2] / "examples" / "data" / "sample.txt"
    splits = plan_splits(str(sample), readers)
    shares = assign_splits(splits, readers)
    lines = [line for share in shares for s in share for line in read_split(s)]
    assert lines == reference_lines(sample.read_bytes())

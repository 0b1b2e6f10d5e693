"""Every format round-trips: written through a Sink's part writers, read back through splits,
as batches and as records."""

from __future__ import annotations

import datetime
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from twister2.io import (
    ArrowFormat,
    CsvFormat,
    NumpyFormat,
    ParquetFormat,
    Sink,
    TextFormat,
    TsvFormat,
    plan_splits,
    read_batches,
    read_split,
)

TABLE = pa.table(
    {
        "id": pa.array(range(1000), pa.int64()),
        "x": pa.array([i / 7 if i % 11 else None for i in range(1000)], pa.float64()),
        "name": pa.array([f'név {i}, "q" 日本' for i in range(1000)], pa.string()),
        "flag": pa.array([i % 3 == 0 for i in range(1000)], pa.bool_()),
    }
)
NESTED = TABLE.append_column(
    "tags", pa.array([[f"t{i}", "u"] if i % 5 else [] for i in range(1000)])
).append_column(
    "at",
    pa.array(
        [datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=i) for i in range(1000)],
        pa.timestamp("us"),
    ),
)


def write_parts(out: Path, fmt: Any, pieces: list[Any], *, records: bool = False) -> Sink:
    sink = Sink(str(out), fmt, job_id="roundtrip")
    for part, piece in enumerate(pieces):
        with sink.open(part) as writer:
            if records:
                for record in piece:
                    writer.write(record)
            else:
                writer.write_batch(piece)
    sink.commit(len(pieces))
    return sink


def read_table(out: Path, n: int, fmt: Any = None) -> pa.Table:
    batches = [b for s in plan_splits(str(out), n, format=fmt) for b in read_batches(s)]
    return pa.Table.from_batches(batches)


@pytest.mark.parametrize("fmt", [ParquetFormat(), ArrowFormat()], ids=["parquet", "arrow"])
@pytest.mark.parametrize("readers", [1, 3])
def test_arrow_formats_round_trip_batches_and_records(
    tmp_path: Path, fmt: Any, readers: int
) -> None:
    thirds = [NESTED.slice(0, 300), NESTED.slice(300, 500), NESTED.slice(800)]
    write_parts(tmp_path / "batches", fmt, thirds)
    assert read_table(tmp_path / "batches", readers).equals(NESTED)
    rows = NESTED.to_pylist()
    write_parts(tmp_path / "records", fmt, [rows[:10], rows[10:]], records=True)
    got = [r for s in plan_splits(str(tmp_path / "records"), readers) for r in read_split(s)]
    assert got == rows


@pytest.mark.parametrize("fmt", [CsvFormat(), TsvFormat()], ids=["csv", "tsv"])
@pytest.mark.parametrize("readers", [1, 4])
def test_csv_round_trips_with_inferred_types(tmp_path: Path, fmt: Any, readers: int) -> None:
    write_parts(tmp_path / "out", fmt, [TABLE.slice(0, 600), TABLE.slice(600)])
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["_SUCCESS", f"part-00000{fmt.extension}", f"part-00001{fmt.extension}"]
    got = read_table(tmp_path / "out", readers)
    assert got.schema == TABLE.schema
    assert got.equals(TABLE)
    splits = plan_splits(str(tmp_path / "out"), readers)
    assert pickle.loads(pickle.dumps(splits)) == splits  # the schema travels with them
    assert [r for s in splits for r in read_split(s)] == TABLE.to_pylist()


def test_csv_reads_with_a_given_schema(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,code\n1,007\n2,010\n")
    schema = pa.schema([("id", pa.int32()), ("code", pa.string())])
    splits = plan_splits(str(path), 2, format=CsvFormat(schema=schema))
    assert [r for s in splits for r in read_split(s)] == [
        {"id": 1, "code": "007"},
        {"id": 2, "code": "010"},
    ]


@pytest.mark.parametrize("readers", [1, 2, 5])
def test_text_round_trips(tmp_path: Path, readers: int) -> None:
    lines = [f"línea {i} 😀" if i % 4 else "" for i in range(500)]
    write_parts(tmp_path / "lists", TextFormat(), [lines[:100], pa.array(lines[100:])])
    got = [x for s in plan_splits(str(tmp_path / "lists"), readers) for x in read_split(s)]
    assert got == lines
    write_parts(tmp_path / "records", "text", [lines[:250], lines[250:]], records=True)
    table = read_table(tmp_path / "records", readers)
    assert table.column("line").to_pylist() == lines


def test_text_writer_refuses_lines_that_would_not_read_back(tmp_path: Path) -> None:
    sink = Sink(str(tmp_path / "out"), "text", job_id="j")
    with pytest.raises(ValueError, match="may not hold"), sink.open(0) as writer:
        writer.write_batch(["fine", "two\nlines"])
    with pytest.raises(TypeError, match="give str"), sink.open(0) as writer:
        writer.write_batch([b"bytes"])


@pytest.mark.parametrize("readers", [1, 3])
def test_npy_round_trips(tmp_path: Path, readers: int) -> None:
    array = np.random.default_rng(0).normal(size=(1000, 3))
    write_parts(tmp_path / "batches", NumpyFormat(), [array[:400], array[400:]])
    splits = plan_splits(str(tmp_path / "batches"), readers)
    batches = [b for s in splits for b in read_batches(s)]
    assert all(isinstance(b, np.ndarray) for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), array)
    ints = np.arange(50, dtype=np.int16)
    write_parts(tmp_path / "records", "npy", [list(ints[:20]), list(ints[20:])], records=True)
    rows = [r for s in plan_splits(str(tmp_path / "records"), readers) for r in read_split(s)]
    assert rows == list(ints)
    assert {type(r) for r in rows} == {np.int16}


def test_npy_files_match_numpy_load(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    write_parts(tmp_path / "out", "npy", [array])
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "part-00000.npy"), array)


def test_an_empty_part_reads_as_no_records(tmp_path: Path) -> None:
    for fmt in ("parquet", "arrow", "csv", "text"):
        write_parts(tmp_path / fmt, fmt, [[], TABLE.slice(0, 3) if fmt != "text" else ["a"]])
        rows = [r for s in plan_splits(str(tmp_path / fmt), 2) for r in read_split(s)]
        assert len(rows) == (3 if fmt != "text" else 1), fmt


def test_a_part_refuses_a_second_schema(tmp_path: Path) -> None:
    sink = Sink(str(tmp_path / "out"), "parquet", job_id="j")
    with pytest.raises(ValueError, match="one part holds one schema"), sink.open(0) as writer:
        writer.write_batch(pa.table({"a": [1]}))
        writer.write_batch(pa.table({"b": ["x"]}))
    assert not list((tmp_path / "out").rglob("part-*"))

"""Parquet files, split by whole row groups.

Every file's footer is read at plan time: its schema must match the first file's (a file of
another schema in a directory is a :class:`~twister2.io.SchemaMismatchError` naming both),
and its row groups' byte ranges give the split hosts.

Example
-------
>>> import os, tempfile
>>> import pyarrow as pa, pyarrow.parquet as pq
>>> from twister2.io import plan_splits, read_batches
>>> path = os.path.join(tempfile.mkdtemp(), "a.parquet")
>>> pq.write_table(pa.table({"x": list(range(10))}), path, row_group_size=5)
>>> [(s.start, s.length, s.unit, s.rows) for s in plan_splits(path, 2)]
[(0, 1, 'row_groups', 5), (1, 1, 'row_groups', 5)]
>>> [b.num_rows for b in read_batches(plan_splits(path, 2)[1])]
[5]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from twister2.config import Config
from twister2.io.errors import MalformedRecordError, SchemaMismatchError
from twister2.io.filesystem import FileInfo, FileSystem
from twister2.io.formats.base import ArrowWriter, Format, FormatWriter, same_schema
from twister2.io.splits import ReadStats, Split, unit_ranges

__all__ = ["ParquetFormat"]


@dataclass(frozen=True)
class ParquetFormat(Format):
    """Parquet: records are dicts, batches ``pyarrow.RecordBatch``.

    Parameters
    ----------
    columns:
        Read only these columns (None: all).
    compression:
        The codec parts are written with.
    """

    columns: tuple[str, ...] | None = None
    compression: str = "snappy"

    name = "parquet"
    extension = ".parquet"
    extensions = (".parquet", ".pq")

    def _open(self, f: pa.NativeFile, url: str) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            msg = f"not a readable Parquet file: {exc}"
            raise MalformedRecordError(url, None, msg, hint="check the file is Parquet") from None

    def plan(
        self, fs: FileSystem, files: Sequence[FileInfo], n: int, config: Config
    ) -> list[Split]:
        schema: pa.Schema | None = None
        groups: list[list[int]] = []
        spans: list[list[tuple[int, int]]] = []
        for info in files:
            with fs.open_input(info.path) as f:
                meta = self._open(f, info.url).metadata
            file_schema = meta.schema.to_arrow_schema()
            if schema is None:
                schema = file_schema
            elif detail := same_schema(schema, file_schema):
                raise SchemaMismatchError(info.url, files[0].url, detail)
            groups.append([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
            spans.append([_byte_span(meta.row_group(g)) for g in range(meta.num_row_groups)])
        splits = []
        for i, first, count, rows in unit_ranges(groups, n):
            lo = min(spans[i][g][0] for g in range(first, first + count))
            hi = max(spans[i][g][1] for g in range(first, first + count))
            info = files[i]
            hosts = fs.hosts(info.path, lo, hi - lo, info.size)
            splits.append(
                Split(info.url, self, first, count, "row_groups", hosts, 0, info.size, rows)
            )
        return splits

    def read_batches(
        self, split: Split, fs: FileSystem, path: str, config: Config, stats: ReadStats
    ) -> Iterator[Any]:
        with fs.open_input(path) as f:
            parquet = self._open(f, split.url)
            columns = list(self.columns) if self.columns is not None else None
            for batch in parquet.iter_batches(
                batch_size=int(config["io.batch_rows"]),
                row_groups=range(split.start, split.end),
                columns=columns,
            ):
                stats.records += batch.num_rows
                yield batch

    def writer(self, out: pa.NativeFile, url: str, config: Config) -> FormatWriter:
        return ParquetWriter(out, url, config, self)


def _byte_span(group: Any) -> tuple[int, int]:
    """The bytes ``[start, end)`` a row group's column chunks occupy."""
    starts, ends = [], []
    for c in range(group.num_columns):
        column = group.column(c)
        start = column.data_page_offset
        if column.has_dictionary_page and column.dictionary_page_offset is not None:
            start = min(start, column.dictionary_page_offset)
        starts.append(start)
        ends.append(start + column.total_compressed_size)
    return (min(starts), max(ends)) if starts else (0, 0)


class ParquetWriter(ArrowWriter):
    """Writes record batches (or dict records) as one Parquet file."""

    def __init__(self, out: pa.NativeFile, url: str, config: Config, fmt: ParquetFormat) -> None:
        super().__init__(out, url, config)
        self.fmt = fmt

    def open(self, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(self.out, schema, compression=self.fmt.compression)

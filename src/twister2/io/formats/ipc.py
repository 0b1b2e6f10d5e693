"""Arrow IPC files (Feather v2), split by record batches.

The IPC *file* format has a footer that lists its record batches, so a reader can start at
any of them: splits hold ranges of batches. The IPC *stream* format has none, so a stream file
is one split. All files of one input must have one schema.

Example
-------
>>> import os, tempfile
>>> import pyarrow as pa
>>> from twister2.io import plan_splits, read_split
>>> path = os.path.join(tempfile.mkdtemp(), "a.arrow")
>>> batch = pa.record_batch({"x": [1, 2]})
>>> with pa.ipc.new_file(path, batch.schema) as w:
...     for _ in range(4):
...         w.write_batch(batch)
>>> [(s.start, s.length, s.unit) for s in plan_splits(path, 2)]
[(0, 2, 'batches'), (2, 2, 'batches')]
>>> list(read_split(plan_splits(path, 2)[1]))
[{'x': 1}, {'x': 2}, {'x': 1}, {'x': 2}]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from twister2.config import Config
from twister2.io.errors import MalformedRecordError, SchemaMismatchError
from twister2.io.filesystem import FileInfo, FileSystem
from twister2.io.formats.base import ArrowWriter, Format, FormatWriter, same_schema
from twister2.io.splits import ReadStats, Split, byte_ranges

__all__ = ["ArrowFormat"]

FILE_MAGIC = b"ARROW1"


@dataclass(frozen=True)
class ArrowFormat(Format):
    """Arrow IPC: records are dicts, batches ``pyarrow.RecordBatch``."""

    name = "arrow"
    extension = ".arrow"
    extensions = (".arrow", ".feather", ".ipc", ".arrows")

    def _reader(self, f: pa.NativeFile, url: str) -> Any:
        """An IPC file reader, or a stream reader when the file has no footer."""
        try:
            if f.read_at(len(FILE_MAGIC), 0) == FILE_MAGIC:
                return pa.ipc.open_file(f)
            f.seek(0)
            return pa.ipc.open_stream(f)
        except (pa.ArrowInvalid, OSError) as exc:
            msg = f"not a readable Arrow IPC file: {exc}"
            raise MalformedRecordError(url, None, msg, hint="check the file is Arrow IPC") from None

    def plan(
        self, fs: FileSystem, files: Sequence[FileInfo], n: int, config: Config
    ) -> list[Split]:
        schema: pa.Schema | None = None
        counts = []
        for info in files:
            with fs.open_input(info.path) as f:
                reader = self._reader(f, info.url)
                file_schema = reader.schema
                counts.append(reader.num_record_batches if _is_file(reader) else -1)
            if schema is None:
                schema = file_schema
            elif detail := same_schema(schema, file_schema):
                raise SchemaMismatchError(info.url, files[0].url, detail)
        splits = []
        seekable = [(0, c) if c >= 0 else (0, 0) for c in counts]
        for i, start, count in byte_ranges(seekable, n):
            info = files[i]
            hosts = fs.hosts(info.path, 0, info.size, info.size)
            splits.append(Split(info.url, self, start, count, "batches", hosts, 0, info.size))
        for i, count in enumerate(counts):
            if count < 0:  # a stream: one split of all its batches
                info = files[i]
                hosts = fs.hosts(info.path, 0, info.size, info.size)
                splits.append(Split(info.url, self, 0, -1, "batches", hosts, 0, info.size))
        return sorted(splits, key=lambda s: (s.url, s.start))

    def read_batches(
        self, split: Split, fs: FileSystem, path: str, config: Config, stats: ReadStats
    ) -> Iterator[Any]:
        with fs.open_input(path) as f:
            reader = self._reader(f, split.url)
            if split.length < 0:
                batches: Iterator[Any] = iter(reader)
            else:
                batches = (reader.get_batch(i) for i in range(split.start, split.end))
            for batch in batches:
                stats.records += batch.num_rows
                yield batch

    def writer(self, out: pa.NativeFile, url: str, config: Config) -> FormatWriter:
        return ArrowIpcWriter(out, url, config)


def _is_file(reader: Any) -> bool:
    return isinstance(reader, pa.ipc.RecordBatchFileReader)


class ArrowIpcWriter(ArrowWriter):
    """Writes record batches (or dict records) as one Arrow IPC file."""

    def open(self, schema: pa.Schema) -> None:
        self._writer = pa.ipc.new_file(self.out, schema)

"""Text files of UTF-8 lines, split by byte ranges aligned to line starts.

A line ends at ``\\n``; a ``\\r`` just before it belongs to the line end (``\\r\\n`` files read
as ``\\n`` files); the last line needs no line end. Records are ``str`` lines without their
line end; batches are ``pyarrow.RecordBatch`` objects with one string column, ``line``, built
a block (``io.text.block_bytes``) at a time with vectorised NumPy/bytes operations.

Example
-------
>>> import os, tempfile
>>> from twister2.io import plan_splits, read_split
>>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
>>> with open(path, "wb") as f:
...     _ = f.write("one\\r\\ntwo\\nthrée".encode())
>>> [line for s in plan_splits(path, 3) for line in read_split(s)]
['one', 'two', 'thrée']
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from twister2.config import Config
from twister2.io.errors import MalformedRecordError
from twister2.io.filesystem import FileInfo, FileSystem
from twister2.io.formats._lines import count_lines, line_start
from twister2.io.formats.base import Format, FormatWriter
from twister2.io.splits import ReadStats, Split, byte_ranges

__all__ = ["TextFormat"]

SCHEMA = pa.schema([pa.field("line", pa.string(), nullable=False)])


@dataclass(frozen=True)
class TextFormat(Format):
    """UTF-8 text lines: records are ``str``, batches have one string column ``line``."""

    name = "text"
    extension = ".txt"
    extensions = (".txt", ".text", ".log", ".md")

    def plan(
        self, fs: FileSystem, files: Sequence[FileInfo], n: int, config: Config
    ) -> list[Split]:
        pieces = byte_ranges([(0, f.size) for f in files], n)
        return [
            Split(
                files[i].url,
                self,
                start,
                length,
                "bytes",
                fs.hosts(files[i].path, start, length, files[i].size),
                file_size=files[i].size,
            )
            for i, start, length in pieces
        ]

    def read_batches(
        self, split: Split, fs: FileSystem, path: str, config: Config, stats: ReadStats
    ) -> Iterator[Any]:
        with fs.open_input(path) as f:
            size = f.size()
            start, end = line_start(f, split.start, size), line_start(f, split.end, size)
            block = max(1, int(config["io.text.block_bytes"]))
            pos = start
            while pos < end:
                want = min(block, end - pos)
                data = f.read_at(want, pos)
                if len(data) < want:
                    msg = f"{split.url} ended at byte {pos + len(data)} while being read"
                    raise OSError(msg + " (was it changed or truncated?)")
                newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
                if pos + want < end:
                    if len(newlines) == 0:  # a line longer than a block: read more at once
                        block *= 2
                        continue
                    used = int(newlines[-1]) + 1
                else:
                    used = want
                try:
                    lines = _lines(data, newlines, used)
                except _BadUtf8 as exc:
                    raise MalformedRecordError(
                        split.url,
                        count_lines(f, pos) + exc.line + 1,
                        f"invalid UTF-8 ({exc.reason})",
                        hint="text files must be UTF-8; convert the file, e.g. with iconv",
                    ) from None
                stats.records += len(lines)
                yield pa.RecordBatch.from_arrays([lines], schema=SCHEMA)
                pos += used

    def read_records(
        self, split: Split, fs: FileSystem, path: str, config: Config, stats: ReadStats
    ) -> Iterator[Any]:
        for batch in self.read_batches(split, fs, path, config, stats):
            yield from batch.column(0).to_pylist()

    def writer(self, out: pa.NativeFile, url: str, config: Config) -> FormatWriter:
        return TextWriter(out, url, config)


def _lines(data: bytes, newlines: np.ndarray[Any, Any], used: int) -> pa.Array:
    """The lines of ``data[:used]`` (which ends at a line end or the file's end) as strings.

    The newline bytes are dropped with one ``bytes.replace`` and the offsets follow from the
    newline positions: line ``j`` starts at ``newlines[j - 1] + 1 - j`` in the compacted bytes.
    """
    if data.find(b"\r", 0, used) >= 0:
        data = data[:used].replace(b"\r\n", b"\n")
        newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
        used = len(data)
    k = len(newlines)
    ends_with_newline = k > 0 and int(newlines[-1]) == used - 1
    count = k if ends_with_newline or used == 0 else k + 1
    offsets = np.empty(count + 1, np.int32)
    offsets[0] = 0
    offsets[1 : k + 1] = newlines - np.arange(k)
    if count > k:
        offsets[count] = used - k
    compact = data.replace(b"\n", b"")
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(compact)]
    lines = pa.Array.from_buffers(pa.string(), count, buffers)
    if not data.isascii():  # ASCII is UTF-8; anything else is checked
        try:
            lines.validate(full=True)
        except pa.ArrowInvalid:
            _raise_decode_error(data[:used])
    return lines


class _BadUtf8(Exception):
    """Invalid UTF-8 in line ``line`` (0-based) of a block."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line, self.reason = line, reason


def _raise_decode_error(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadUtf8(data[: exc.start].count(b"\n"), exc.reason) from None
    raise _BadUtf8(0, "Arrow rejects it")  # pragma: no cover - Arrow and Python agree


class TextWriter(FormatWriter):
    """Writes ``str`` lines, each followed by ``\\n``.

    A batch is a list of ``str``, a ``pyarrow`` string array, or a record batch or table whose
    first column holds the lines. A line may not hold ``\\n`` or end in ``\\r`` (it would not
    read back the same).
    """

    def write_records(self, records: list[Any]) -> None:
        for i, line in enumerate(records):
            if not isinstance(line, str):
                msg = f"cannot write a {type(line).__name__} as a line of {self.url}: give str"
                raise TypeError(msg)
            if "\n" in line or line.endswith("\r"):
                msg = (
                    f"cannot write line {self.rows + i + 1} of {self.url}: a line may not "
                    f"hold '\\n' or end in '\\r' (got {line[:60]!r})"
                )
                raise ValueError(msg)
        self.out.write(("\n".join(records) + "\n").encode("utf-8"))
        self.rows += len(records)

    def write_batch(self, batch: Any) -> None:
        self.flush_records()
        if isinstance(batch, pa.Table | pa.RecordBatch):
            batch = batch.column(0)
        if isinstance(batch, pa.ChunkedArray):
            for chunk in batch.chunks:
                self.write_batch(chunk)
            return
        if isinstance(batch, pa.Array):
            batch = batch.to_pylist()
        if not isinstance(batch, list):
            batch = list(batch)
        if batch:
            self.write_records(batch)

"""The interface every file format implements: plan splits, read them, write parts.

A format is a small frozen dataclass of options (a CSV delimiter, Parquet columns), so it
travels inside the :class:`~twister2.io.Split` objects it plans.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pyarrow as pa

from twister2.config import Config
from twister2.io.filesystem import FileInfo, FileSystem
from twister2.io.splits import ReadStats, Split

__all__ = ["ArrowWriter", "Format", "FormatWriter"]


class Format(ABC):
    """How one kind of file is cut into splits, read and written."""

    name: ClassVar[str]
    """Short name, as ``plan_splits(..., format=name)`` takes it."""
    extension: ClassVar[str]
    """The extension of the part files a sink writes."""
    extensions: ClassVar[tuple[str, ...]]
    """The extensions that select this format when none is given."""

    @abstractmethod
    def plan(
        self, fs: FileSystem, files: Sequence[FileInfo], n: int, config: Config
    ) -> list[Split]:
        """Cut ``files`` (all of this format, on ``fs``) into about ``n`` splits."""

    @abstractmethod
    def read_batches(
        self, split: Split, fs: FileSystem, path: str, config: Config, stats: ReadStats
    ) -> Iterator[Any]:
        """The split's records as batches: ``pyarrow.RecordBatch`` or ``numpy.ndarray``."""

    def read_records(
        self, split: Split, fs: FileSystem, path: str, config: Config, stats: ReadStats
    ) -> Iterator[Any]:
        """The split's records one by one (Arrow rows come as dicts)."""
        for batch in self.read_batches(split, fs, path, config, stats):
            yield from batch.to_pylist()

    @abstractmethod
    def writer(self, out: pa.NativeFile, url: str, config: Config) -> FormatWriter:
        """A writer of this format into the open stream ``out`` (the file ``url``)."""


class FormatWriter(ABC):
    """Writes records or batches of one format into one stream.

    :meth:`write` takes one record, :meth:`write_batch` many; :meth:`finish` completes the
    file (a footer, a header) without closing the stream.
    """

    def __init__(self, out: pa.NativeFile, url: str, config: Config) -> None:
        self.out = out
        self.url = url
        self.config = config
        self.rows = 0
        self._pending: list[Any] = []
        self._batch_rows = int(config["io.batch_rows"])

    @abstractmethod
    def write_batch(self, batch: Any) -> None:
        """Write many records at once."""

    def write(self, record: Any) -> None:
        """Write one record (buffered; written as a batch every ``io.batch_rows``)."""
        self._pending.append(record)
        if len(self._pending) >= self._batch_rows:
            self.flush_records()

    def flush_records(self) -> None:
        """Write the buffered records as one batch."""
        if self._pending:
            pending, self._pending = self._pending, []
            self.write_records(pending)

    def write_records(self, records: list[Any]) -> None:
        """Write buffered records (formats override the conversion)."""
        self.write_batch(records)

    def finish(self) -> None:
        """Write what is buffered and complete the file."""
        self.flush_records()

    def discard(self) -> None:
        """Drop what is buffered: the part is being abandoned."""
        self._pending.clear()


class ArrowWriter(FormatWriter):
    """A writer of tabular formats: batches are Arrow record batches or tables, records dicts.

    The first batch fixes the part's schema; a later batch with another schema is an error.
    """

    schema: pa.Schema | None = None
    _writer: Any = None
    """The pyarrow writer :meth:`open` made (closed by :meth:`finish`)."""

    @abstractmethod
    def open(self, schema: pa.Schema) -> None:
        """Start the file for ``schema`` (called before the first batch)."""

    def write_arrow(self, batch: pa.RecordBatch) -> None:
        """Write one record batch of the part's schema."""
        self._writer.write_batch(batch)

    def finish(self) -> None:
        super().finish()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def discard(self) -> None:
        super().discard()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            with contextlib.suppress(Exception):  # the file is being removed anyway
                writer.close()

    def write_records(self, records: list[Any]) -> None:
        if not records:
            return
        try:
            batch = pa.RecordBatch.from_pylist(records, schema=self.schema)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            msg = f"cannot write records to {self.url}: {exc} (give dicts with the same keys)"
            raise ValueError(msg) from exc
        self.write_batch(batch)

    def write_batch(self, batch: Any) -> None:
        if isinstance(batch, list):
            self.flush_records()
            self.write_records(batch)
            return
        if isinstance(batch, dict):
            batch = pa.RecordBatch.from_pydict(batch)
        if isinstance(batch, pa.Table):
            for piece in batch.to_batches():
                self.write_batch(piece)
            return
        if not isinstance(batch, pa.RecordBatch):
            msg = (
                f"cannot write a {type(batch).__name__} to {self.url}: "
                "give a pyarrow RecordBatch or Table, a dict of columns, or a list of dicts"
            )
            raise TypeError(msg)
        if self.schema is None:
            self.schema = batch.schema
            self.open(batch.schema)
        elif not batch.schema.equals(self.schema):
            msg = (
                f"cannot write to {self.url}: a batch with schema {batch.schema} "
                f"after batches with schema {self.schema} (one part holds one schema)"
            )
            raise ValueError(msg)
        self.write_arrow(batch)
        self.rows += batch.num_rows


def same_schema(a: pa.Schema, b: pa.Schema) -> str:
    """How ``b`` differs from ``a`` ('' when they are equal, metadata aside)."""
    if a.equals(b, check_metadata=False):
        return ""
    only_a = [n for n in a.names if n not in b.names]
    only_b = [n for n in b.names if n not in a.names]
    parts = []
    if only_b:
        parts.append(f"columns {only_b} are not in the other file")
    if only_a:
        parts.append(f"columns {only_a} are missing")
    for name in a.names:
        if name in b.names and not a.field(name).type.equals(b.field(name).type):
            parts.append(f"column {name!r} is {b.field(name).type}, not {a.field(name).type}")
    return "; ".join(parts) or f"schema {b} differs from {a}"

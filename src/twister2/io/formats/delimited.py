"""CSV (and TSV) files with a header, split by byte ranges aligned to line starts.

The header of every file is read at plan time (all files of one input must have the same);
column types are inferred once, from the first ``io.csv.infer_bytes`` of the first file, and
travel in the splits, so every reader produces the same schema (pass ``schema=`` to fix it).
A row with the wrong number of fields is an error naming the file and line, or, with
``io.csv.bad_rows: skip`` (or ``CsvFormat(bad_rows="skip")``), skipped and counted.

Rows must not hold line breaks inside quoted values unless ``newlines_in_values=True``, which
reads each file as one split.

Example
-------
>>> import os, tempfile
>>> from twister2.io import plan_splits, read_batches
>>> path = os.path.join(tempfile.mkdtemp(), "a.csv")
>>> with open(path, "w") as f:
...     _ = f.write("x,y\\n1,a\\n2,b\\n3,c\\n")
>>> splits = plan_splits(path, 2)
>>> [b.to_pydict() for s in splits for b in read_batches(s)]
[{'x': [1, 2], 'y': ['a', 'b']}, {'x': [3], 'y': ['c']}]
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from twister2.config import Config
from twister2.io.errors import MalformedRecordError, SchemaMismatchError
from twister2.io.filesystem import FileInfo, FileSystem
from twister2.io.formats._lines import RangeReader, count_lines, line_start
from twister2.io.formats.base import ArrowWriter, Format, FormatWriter
from twister2.io.splits import ReadStats, Split, byte_ranges

__all__ = ["CsvFormat", "TsvFormat"]

log = logging.getLogger("twister2.io")
BAD_ROW_CHOICES = ("error", "skip")


@dataclass(frozen=True)
class CsvFormat(Format):
    """Comma-separated values: records are dicts, batches ``pyarrow.RecordBatch``.

    Parameters
    ----------
    delimiter:
        The field separator.
    header:
        Whether each file starts with a header line of column names (else ``f0``, ``f1``...).
    schema:
        Column names and types (None: the header's names, types inferred at plan time).
    bad_rows:
        ``"error"`` or ``"skip"`` for rows with the wrong number of fields (None: the
        ``io.csv.bad_rows`` key).
    newlines_in_values:
        Quoted values may hold line breaks; each file is then read as one split.
    """

    delimiter: str = ","
    header: bool = True
    schema: pa.Schema | None = None
    bad_rows: str | None = None
    newlines_in_values: bool = False

    name = "csv"
    extension = ".csv"
    extensions = (".csv",)

    def __post_init__(self) -> None:
        if self.bad_rows is not None and self.bad_rows not in BAD_ROW_CHOICES:
            msg = f"bad_rows must be 'error' or 'skip', got {self.bad_rows!r}"
            raise ValueError(msg)

    def parse_options(self, handler: Any = None) -> pacsv.ParseOptions:
        return pacsv.ParseOptions(
            delimiter=self.delimiter,
            newlines_in_values=self.newlines_in_values,
            invalid_row_handler=handler,
        )

    # ------------------------------------------------------------------------- plan

    def plan(
        self, fs: FileSystem, files: Sequence[FileInfo], n: int, config: Config
    ) -> list[Split]:
        first_names: list[str] | None = None
        ranges = []
        for info in files:
            with fs.open_input(info.path) as f:
                data_start = line_start(f, 1, info.size) if self.header else 0
                names = self._header(f, data_start, info.url) if self.header else None
            if first_names is None:
                first_names = names
            elif names != first_names:
                detail = f"its header {names} differs from {first_names}"
                raise SchemaMismatchError(info.url, files[0].url, detail)
            ranges.append((data_start, info.size - data_start))
        schema = self.schema or self._infer(fs, files, ranges, first_names, config)
        if first_names is not None and list(schema.names) != first_names:
            detail = f"its header {first_names} differs from the schema's names {schema.names}"
            raise SchemaMismatchError(files[0].url, "the given schema", detail)
        fmt = dataclasses.replace(self, schema=schema)
        if self.newlines_in_values:
            pieces = [(i, start, length) for i, (start, length) in enumerate(ranges) if length]
        else:
            pieces = byte_ranges(ranges, n)
        return [
            Split(
                files[i].url,
                fmt,
                start,
                length,
                "bytes",
                fs.hosts(files[i].path, start, length, files[i].size),
                file_size=files[i].size,
            )
            for i, start, length in pieces
        ]

    def _header(self, f: pa.NativeFile, end: int, url: str) -> list[str]:
        text = f.read_at(end, 0)
        if not text.endswith(b"\n"):
            text += b"\n"
        try:
            table = pacsv.read_csv(io.BytesIO(text), parse_options=self.parse_options())
        except pa.ArrowInvalid as exc:
            raise MalformedRecordError(url, 1, f"cannot read the header: {exc}") from None
        return list(table.column_names)

    def _infer(
        self,
        fs: FileSystem,
        files: Sequence[FileInfo],
        ranges: Sequence[tuple[int, int]],
        names: list[str] | None,
        config: Config,
    ) -> pa.Schema:
        """Column types from the start of the first file with data (null columns: string)."""
        for info, (start, length) in zip(files, ranges, strict=True):
            if length == 0:
                continue
            with fs.open_input(info.path) as f:
                end = line_start(f, start + int(config["io.csv.infer_bytes"]), info.size)
                sample = f.read_at(end - start, start)
            read = pacsv.ReadOptions(
                column_names=names, autogenerate_column_names=names is None, use_threads=False
            )
            try:
                table = pacsv.read_csv(
                    io.BytesIO(sample),
                    read_options=read,
                    parse_options=self.parse_options(lambda row: "skip"),
                )
            except pa.ArrowInvalid as exc:
                msg = f"cannot infer the column types: {exc}"
                raise MalformedRecordError(
                    info.url, None, msg, hint="pass CsvFormat(schema=...) with the column types"
                ) from None
            fields = [
                pa.field(fld.name, pa.string()) if pa.types.is_null(fld.type) else fld
                for fld in table.schema
            ]
            return pa.schema(fields)
        return pa.schema([pa.field(name, pa.string()) for name in names or []])

    # ------------------------------------------------------------------------- read

    def read_batches(
        self, split: Split, fs: FileSystem, path: str, config: Config, stats: ReadStats
    ) -> Iterator[Any]:
        schema = self.schema
        assert schema is not None, "plan CSV splits with plan_splits (it fixes the schema)"
        skip = (self.bad_rows or str(config["io.csv.bad_rows"])) == "skip"
        bad: list[tuple[int, int, int, str]] = []

        def on_bad_row(row: Any) -> str:
            bad.append((row.number or 0, row.expected_columns, row.actual_columns, row.text))
            return "skip" if skip else "error"

        with fs.open_input(path) as f:
            size = f.size()
            start, end = line_start(f, split.start, size), line_start(f, split.end, size)
            if self.header:  # the header line is no split's data
                start = max(start, line_start(f, 1, size))
            if start >= end:
                return
            first_line = -1
            try:
                reader = pacsv.open_csv(
                    RangeReader(f, start, end),
                    read_options=pacsv.ReadOptions(
                        column_names=schema.names,
                        use_threads=False,
                        block_size=max(1 << 16, int(config["io.text.block_bytes"])),
                    ),
                    parse_options=self.parse_options(on_bad_row),
                    convert_options=pacsv.ConvertOptions(column_types=schema),
                )
                for batch in reader:
                    if bad and skip:
                        if first_line < 0:
                            first_line = count_lines(f, start)
                        for number, *_ in bad:
                            stats.add_bad_row(f"{split.url}:{first_line + number}")
                        bad.clear()
                    stats.records += batch.num_rows
                    yield batch
            except pa.ArrowInvalid as exc:
                if bad and not skip:
                    number, expected, actual, text = bad[-1]
                    line = count_lines(f, start) + number
                    reason = f"expected {expected} fields, got {actual}: {text[:80]!r}"
                    raise MalformedRecordError(split.url, line, reason) from None
                hint = "fix the value, or pass CsvFormat(schema=...) with the column types"
                where = f"{exc} (in bytes {start}..{end})"
                raise MalformedRecordError(split.url, None, where, hint=hint) from None
            if first_line >= 0:
                log.warning(
                    "%s: skipped bad rows (io.csv.bad_rows=skip); %d so far, first at %s",
                    split.url,
                    stats.bad_rows,
                    stats.bad_lines[0] if stats.bad_lines else "?",
                )

    # ------------------------------------------------------------------------ write

    def writer(self, out: pa.NativeFile, url: str, config: Config) -> FormatWriter:
        return CsvWriter(out, url, config, self)


@dataclass(frozen=True)
class TsvFormat(CsvFormat):
    """Tab-separated values: :class:`CsvFormat` with ``delimiter="\\t"``."""

    delimiter: str = "\t"

    name = "tsv"
    extension = ".tsv"
    extensions = (".tsv",)


class CsvWriter(ArrowWriter):
    """Writes record batches (or dict records) as CSV with a header line."""

    def __init__(self, out: pa.NativeFile, url: str, config: Config, fmt: CsvFormat) -> None:
        super().__init__(out, url, config)
        self.fmt = fmt

    def open(self, schema: pa.Schema) -> None:
        options = pacsv.WriteOptions(include_header=self.fmt.header, delimiter=self.fmt.delimiter)
        self._writer = pacsv.CSVWriter(self.out, schema, write_options=options)

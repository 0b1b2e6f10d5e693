"""NumPy ``.npy`` files, split by ranges of rows (the first axis).

Batches are read-only ``numpy.ndarray`` slices of at most ``io.batch_rows`` rows, read as
raw bytes at the right offset (no unpickling: arrays of Python objects are refused). All
files of one input must have one dtype and one row shape.

Example
-------
>>> import os, tempfile
>>> import numpy as np
>>> from twister2.io import plan_splits, read_batches
>>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
>>> np.save(path, np.arange(12).reshape(6, 2))
>>> splits = plan_splits(path, 2)
>>> [(s.start, s.length) for s in splits]
[(0, 3), (3, 3)]
>>> next(read_batches(splits[1])).tolist()
[[6, 7], [8, 9], [10, 11]]
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from twister2.config import Config
from twister2.io.errors import MalformedRecordError, SchemaMismatchError
from twister2.io.filesystem import FileInfo, FileSystem
from twister2.io.formats.base import Format, FormatWriter
from twister2.io.splits import ReadStats, Split, byte_ranges
from twister2.io.storage import volatile_root

__all__ = ["NumpyFormat"]

MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class _Header:
    dtype: np.dtype[Any]
    row_shape: tuple[int, ...]
    rows: int
    offset: int

    @property
    def row_bytes(self) -> int:
        return int(math.prod(self.row_shape)) * self.dtype.itemsize


def read_header(f: pa.NativeFile, url: str) -> _Header:
    """The dtype, row shape, row count and data offset of an ``.npy`` file."""
    f.seek(0)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            msg = f"the .npy format version {version} is not supported (save with np.save)"
            raise MalformedRecordError(url, None, msg, hint="save it with numpy.save")
    except ValueError as exc:
        if isinstance(exc, MalformedRecordError):
            raise
        msg = f"not a readable .npy file: {exc}"
        raise MalformedRecordError(url, None, msg, hint="save it with numpy.save") from None
    if dtype.hasobject:
        msg = "it holds Python objects, which are not read (unpickling is code execution)"
        raise MalformedRecordError(url, None, msg, hint="save a numeric or string array")
    if not shape:
        msg = "it holds a 0-d array, which has no rows"
        raise MalformedRecordError(url, None, msg, hint="save an array of one or more axes")
    if fortran and len(shape) > 1:
        msg = "it is in Fortran order, so its rows are not contiguous"
        raise MalformedRecordError(
            url, None, msg, hint="save numpy.ascontiguousarray(array) instead"
        )
    return _Header(dtype, tuple(shape[1:]), int(shape[0]), f.tell())


@dataclass(frozen=True)
class NumpyFormat(Format):
    """NumPy ``.npy``: records are rows (arrays or scalars), batches ``numpy.ndarray``."""

    name = "npy"
    extension = ".npy"
    extensions = (".npy",)

    def plan(
        self, fs: FileSystem, files: Sequence[FileInfo], n: int, config: Config
    ) -> list[Split]:
        headers: list[_Header] = []
        for info in files:
            with fs.open_input(info.path) as f:
                header = read_header(f, info.url)
            first = headers[0] if headers else header
            if (header.dtype, header.row_shape) != (first.dtype, first.row_shape):
                detail = (
                    f"its rows are {header.dtype} of shape {header.row_shape}, "
                    f"not {first.dtype} of shape {first.row_shape}"
                )
                raise SchemaMismatchError(info.url, files[0].url, detail)
            headers.append(header)
        splits = []
        for i, start, count in byte_ranges([(0, h.rows) for h in headers], n):
            h, info = headers[i], files[i]
            hosts = fs.hosts(
                info.path, h.offset + start * h.row_bytes, count * h.row_bytes, info.size
            )
            splits.append(Split(info.url, self, start, count, "rows", hosts, 0, info.size, count))
        return splits

    def read_batches(
        self, split: Split, fs: FileSystem, path: str, config: Config, stats: ReadStats
    ) -> Iterator[Any]:
        step = max(1, int(config["io.batch_rows"]))
        with fs.open_input(path) as f:
            h = read_header(f, split.url)
            if split.end > h.rows:
                msg = f"it has {h.rows} rows, fewer than the split's end {split.end}"
                raise MalformedRecordError(split.url, None, msg, hint="was it changed since?")
            for row in range(split.start, split.end, step):
                count = min(step, split.end - row)
                data = f.read_at(count * h.row_bytes, h.offset + row * h.row_bytes)
                batch = np.frombuffer(data, h.dtype).reshape((count, *h.row_shape))
                stats.records += count
                yield batch

    def read_records(
        self, split: Split, fs: FileSystem, path: str, config: Config, stats: ReadStats
    ) -> Iterator[Any]:
        for batch in self.read_batches(split, fs, path, config, stats):
            yield from batch

    def writer(self, out: pa.NativeFile, url: str, config: Config) -> FormatWriter:
        return NumpyWriter(out, url, config)


class NumpyWriter(FormatWriter):
    """Writes rows (one array per record, or arrays of rows per batch) as one ``.npy`` file.

    The header holds the row count, which is known only at the end, so rows are spooled to
    volatile storage (``storage.volatile_root``) and copied behind the header by
    :meth:`finish`.
    """

    def __init__(self, out: pa.NativeFile, url: str, config: Config) -> None:
        super().__init__(out, url, config)
        self.dtype: np.dtype[Any] | None = None
        self.row_shape: tuple[int, ...] = ()
        root = volatile_root(config)
        os.makedirs(root, exist_ok=True)
        self._spool = tempfile.TemporaryFile(dir=root)  # noqa: SIM115 - closed by finish/discard

    def write_records(self, records: list[Any]) -> None:
        self.write_batch(np.asarray(records, dtype=self.dtype))

    def write_batch(self, batch: Any) -> None:
        self.flush_records()
        array = np.ascontiguousarray(batch)
        if array.ndim == 0:
            msg = f"cannot write a 0-d array to {self.url}: give rows along the first axis"
            raise ValueError(msg)
        if array.dtype.hasobject:
            msg = f"cannot write Python objects to {self.url}: give a numeric or string array"
            raise TypeError(msg)
        if self.dtype is None:
            self.dtype, self.row_shape = array.dtype, array.shape[1:]
        elif (array.dtype, array.shape[1:]) != (self.dtype, self.row_shape):
            msg = (
                f"cannot write rows of {array.dtype} {array.shape[1:]} to {self.url} after "
                f"rows of {self.dtype} {self.row_shape} (one part holds one dtype and shape)"
            )
            raise ValueError(msg)
        self._spool.write(array.tobytes())
        self.rows += array.shape[0]

    def finish(self) -> None:
        self.flush_records()
        dtype = self.dtype if self.dtype is not None else np.dtype(np.float64)
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": (self.rows, *self.row_shape),
        }
        stream = io.BytesIO()
        np.lib.format.write_array_header_1_0(stream, header)
        self.out.write(stream.getvalue())
        self._spool.seek(0)
        shutil.copyfileobj(self._spool, self.out, 1 << 22)
        self._spool.close()

    def discard(self) -> None:
        self._spool.close()

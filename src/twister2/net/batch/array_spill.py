"""Bounded-memory table stores for the array tier, spilling to Arrow IPC files, with a vectorised
external sort and hash bucketing.

A :class:`TableStore` keeps the tables a target receives in memory until their size passes a
limit, then writes them to an Arrow IPC file in a scratch folder (and keeps a small random
sample of their keys). Reading back is zero-copy: :meth:`TableStore.table` memory-maps the files.

:func:`sorted_batches` sorts a store larger than memory without a per-record merge: it picks cut
points at quantiles of the key sample, writes every row to the file of its key-range bucket
(:func:`~twister2.net.batch.array_kernels.bucket_ids`, one vectorised pass), then sorts each
bucket in memory and yields it, in bucket order. A bucket that is still over the limit is cut
again from its own sample; a bucket holding a single key (a hot key) streams out unsorted.
:func:`hash_buckets` cuts a store into buckets by key hash instead (for a Grace hash join).

Example
-------
>>> import tempfile
>>> import pyarrow as pa
>>> store = TableStore(1000, Path(tempfile.mkdtemp()), "demo", sample_key="k")
>>> for start in range(0, 1000, 100):
...     store.add(pa.table({"k": [(start + 37 * i) % 101 for i in range(100)]}))
>>> len(store.files) > 3
True
>>> keys = [k for b in sorted_batches(store, "k", 1000) for k in b.column("k").to_pylist()]
>>> keys == sorted(keys) and len(keys) == 1000
True
>>> store.close(); store.files
[]
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from twister2.net.batch.array_kernels import (
    bucket_ids,
    choose_cuts,
    hash_column,
    mix64,
    sort_table,
    split_by_index,
)

__all__ = ["TableStore", "hash_buckets", "sorted_batches"]

SAMPLE_ROWS = 1024
"""Keys sampled from every spilled file (cut points for the external sort come from them)."""
MAX_BUCKETS = 256
"""At most this many key-range buckets per pass (a bigger input takes a second pass)."""
MAX_DEPTH = 6
"""Passes of the external sort before a bucket is sorted in memory whatever its size."""
MIN_PASS_BYTES = 1 << 16
"""The least a pass over spilled data reads (and buffers for writing) at a time."""
_SALT = np.uint64(0x2545F4914F6CDD1D)


def scratch_file(folder: Path, prefix: str, suffix: str = ".arrow") -> Path:
    """A new empty file in ``folder``."""
    fd, name = tempfile.mkstemp(prefix=f"{prefix}-", suffix=suffix, dir=folder)
    os.close(fd)
    return Path(name)


def read_mapped(path: Path) -> pa.Table:
    """The table in an Arrow IPC file, memory-mapped (zero copy; pages load as they are read)."""
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def read_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The record batches of an Arrow IPC file, one at a time."""
    reader = pa.ipc.open_file(pa.memory_map(str(path)))
    for i in range(reader.num_record_batches):
        yield reader.get_batch(i)


def _sample_keys(tables: list[pa.Table], key: str, count: int, rng: np.random.Generator) -> Any:
    keys = pa.chunked_array(  # flatten the chunks: a list of ChunkedArrays converts per value
        [chunk for t in tables for chunk in t.column(key).chunks],
        type=tables[0].schema.field(key).type,
    )
    if len(keys) <= count:
        return keys
    return keys.take(np.sort(rng.integers(0, len(keys), count)))


class TableStore:
    """Tables held in memory up to ``limit_bytes``, then spilled to Arrow IPC files.

    Parameters
    ----------
    limit_bytes : int
        Memory the store may hold before it spills.
    folder : pathlib.Path or None
        Where spill files go (made when first needed; the system's temporary folder if ``None``).
    name : str
        Prefix of the spill files' names.
    sample_key : str, optional
        A key column to keep a random sample of (for :func:`sorted_batches`).
    """

    def __init__(
        self, limit_bytes: int, folder: Path | None, name: str, sample_key: str | None = None
    ) -> None:
        self.limit = max(1, limit_bytes)
        self.folder = folder
        self.name = name
        self.sample_key = sample_key
        self.schema: pa.Schema | None = None
        self.files: list[Path] = []
        self.nbytes = 0
        self.rows = 0
        self.temporary: set[Path] = set()
        """Files of passes over the store (external sort buckets...), removed by :meth:`close`."""
        self._memory: list[pa.Table] = []
        self._memory_bytes = 0
        self._samples: list[Any] = []
        self._rng = np.random.default_rng(0)
        self._made: Path | None = None

    @property
    def spilled(self) -> bool:
        return bool(self.files)

    def scratch(self) -> Path:
        """The folder of the store's files (made on first use)."""
        if self._made is None:
            self._made = self.folder or Path(tempfile.gettempdir())
            self._made.mkdir(parents=True, exist_ok=True)
        return self._made

    def add(self, table: pa.Table) -> None:
        """Keep ``table`` (it must have the store's schema); spill past the limit."""
        if len(table) == 0:
            if self.schema is None:
                self.schema = table.schema
            return
        if self.schema is None:
            self.schema = table.schema
        self._memory.append(table)
        size = table.nbytes
        self._memory_bytes += size
        self.nbytes += size
        self.rows += len(table)
        if self._memory_bytes > self.limit:
            self.spill()

    def spill(self) -> None:
        """Write what is in memory to a new IPC file."""
        if not self._memory:
            return
        path = scratch_file(self.scratch(), self.name)
        self.files.append(path)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, self.schema) as writer:
            for table in self._memory:
                writer.write_table(table)
        if self.sample_key is not None:
            self._samples.append(
                _sample_keys(self._memory, self.sample_key, SAMPLE_ROWS, self._rng)
            )
        self._memory = []
        self._memory_bytes = 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Every row, as record batches: the spilled files' (one batch in memory at a time),
        then what is in memory."""
        for path in list(self.files):
            yield from read_batches(path)
        for table in self._memory:
            yield from table.to_batches()

    def table(self) -> pa.Table | None:
        """Every row as one table, the spilled part memory-mapped (``None``: no schema known)."""
        if self.schema is None:
            return None
        parts = [read_mapped(p) for p in self.files] + self._memory
        if not parts:
            return self.schema.empty_table()
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def sample(self) -> Any:
        """A random sample of the sample key's values (of the spilled files and memory)."""
        assert self.sample_key is not None
        samples = list(self._samples)
        if self._memory:
            samples.append(_sample_keys(self._memory, self.sample_key, SAMPLE_ROWS, self._rng))
        assert self.schema is not None
        kind = self.schema.field(self.sample_key).type
        return pa.chunked_array([c for s in samples for c in s.chunks], type=kind)

    def close(self) -> None:
        """Remove every file of the store."""
        for path in [*self.files, *self.temporary]:
            path.unlink(missing_ok=True)
        self.files = []
        self.temporary.clear()
        self._memory = []
        self._memory_bytes = 0


class Buckets:
    """One IPC file per bucket, written a part at a time; files recorded in ``registry``."""

    def __init__(self, store: TableStore, schema: pa.Schema, count: int, tag: str) -> None:
        self.store = store
        self.schema = schema
        self.count = count
        self.tag = tag
        self.paths: dict[int, Path] = {}
        self.nbytes = np.zeros(count, dtype=np.int64)
        self.rows = np.zeros(count, dtype=np.int64)
        self._writers: dict[int, tuple[Any, Any]] = {}

    def write(self, bucket: int, table: pa.Table) -> None:
        if bucket not in self._writers:
            path = scratch_file(self.store.scratch(), f"{self.store.name}-{self.tag}{bucket}")
            self.store.temporary.add(path)
            self.paths[bucket] = path
            sink = pa.OSFile(str(path), "wb")
            self._writers[bucket] = (sink, pa.ipc.new_file(sink, self.schema))
        self._writers[bucket][1].write_table(table)
        self.nbytes[bucket] += table.nbytes
        self.rows[bucket] += len(table)

    def finish_writing(self) -> None:
        for sink, writer in self._writers.values():
            writer.close()
            sink.close()
        self._writers = {}

    def table(self, bucket: int) -> pa.Table:
        if bucket not in self.paths:
            return self.schema.empty_table()
        return read_mapped(self.paths[bucket])

    def batches(self, bucket: int) -> Iterator[pa.RecordBatch]:
        if bucket in self.paths:
            yield from read_batches(self.paths[bucket])

    def sample(self, bucket: int, key: str, rng: np.random.Generator) -> Any:
        return _sample_keys([self.table(bucket)], key, SAMPLE_ROWS, rng)

    def remove(self, bucket: int) -> None:
        path = self.paths.pop(bucket, None)
        if path is not None:
            path.unlink(missing_ok=True)
            self.store.temporary.discard(path)

    def remove_all(self) -> None:
        self.finish_writing()
        for bucket in list(self.paths):
            self.remove(bucket)


def _coalesce(batches: Iterable[pa.RecordBatch], budget: int) -> Iterator[pa.Table]:
    """Consecutive batches joined into tables of about ``budget`` bytes (fewer kernel calls)."""
    group: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        group.append(batch)
        size += batch.nbytes
        if size >= budget:
            yield pa.Table.from_batches(group)
            group, size = [], 0
    if group:
        yield pa.Table.from_batches(group)


def _split_into(
    buckets: Buckets,
    batches: Iterable[pa.RecordBatch],
    ids_of: Callable[[pa.Table], Any],
    budget: int,
) -> None:
    """Every row of ``batches`` into the file of its bucket, ``budget`` bytes at a time."""
    pending: dict[int, list[pa.Table]] = {}
    size = 0

    def write_pending() -> None:
        for bucket, parts in pending.items():
            buckets.write(bucket, pa.concat_tables(parts) if len(parts) > 1 else parts[0])
        pending.clear()

    try:
        for table in _coalesce(batches, budget):
            for bucket, part in split_by_index(table, ids_of(table), buckets.count):
                pending.setdefault(bucket, []).append(part)
                size += part.nbytes
            if size >= budget:
                write_pending()
                size = 0
        write_pending()
    finally:
        buckets.finish_writing()


def pass_budget(limit: int) -> int:
    """Bytes a pass over spilled data holds at once: a quarter of the limit, at least 64 KiB
    (so tiny limits do not mean tiny, slow steps)."""
    return max(limit // 4, MIN_PASS_BYTES)


def sorted_batches(store: TableStore, key: str, limit: int) -> Iterator[pa.RecordBatch]:
    """The store's rows in ``key`` order (stable within a bucket; nulls last), as record batches,
    holding about ``limit`` bytes in memory at a time when the store spilled."""
    if store.schema is None:
        return
    if not store.spilled:
        table = store.table()
        assert table is not None
        if len(table):
            yield from sort_table(table, key).combine_chunks().to_batches()
        return
    yield from _range_sort(store, store.batches, store.nbytes, store.sample(), key, limit, 0)


def _range_sort(
    store: TableStore,
    batches: Callable[[], Iterable[pa.RecordBatch]],
    nbytes: int,
    sample: Any,
    key: str,
    limit: int,
    depth: int,
) -> Iterator[pa.RecordBatch]:
    assert store.schema is not None
    cuts = choose_cuts(sample, min(MAX_BUCKETS, max(1, math.ceil(2 * nbytes / limit))))
    buckets = Buckets(store, store.schema, 2 * len(cuts) + 2, f"d{depth}b")
    try:
        _split_into(
            buckets, batches(), lambda t: bucket_ids(t.column(key), cuts), pass_budget(limit)
        )
        for b in range(buckets.count):
            if b not in buckets.paths:
                continue
            if b % 2 == 1:  # a single key (or the nulls): already in order
                yield from buckets.batches(b)
            elif buckets.nbytes[b] <= limit or depth + 1 >= MAX_DEPTH or len(cuts) == 0:
                yield from sort_table(buckets.table(b), key).combine_chunks().to_batches()
            else:
                yield from _range_sort(
                    store,
                    functools.partial(buckets.batches, b),
                    int(buckets.nbytes[b]),
                    buckets.sample(b, key, np.random.default_rng(b)),
                    key,
                    limit,
                    depth + 1,
                )
            buckets.remove(b)
    finally:
        buckets.remove_all()


def hash_buckets(store: TableStore, key: str, count: int, tag: str, limit: int) -> Buckets:
    """The store's rows cut into ``count`` files by a hash of ``key`` independent of the one that
    routed them to this target (so the buckets are even), equal keys in one bucket."""
    assert store.schema is not None
    buckets = Buckets(store, store.schema, count, tag)

    def ids_of(table: pa.Table) -> Any:
        mixed = mix64(hash_column(table.column(key)) ^ _SALT)
        return (mixed % np.uint64(count)).astype(np.int64)

    _split_into(buckets, store.batches(), ids_of, pass_budget(limit))
    return buckets

"""Bounded-memory record stores that spill to disk, with an external merge sort.

A :class:`SpillStore` keeps records in memory until their estimated size passes a limit, then
writes them (sorted by key, when a key is given) to a run file in a scratch folder. Reading
merges the runs and what is still in memory; with a key the result is in key order. Files are
removed by :meth:`SpillStore.close` (and with the worker's scratch folder when a job ends).

Example
-------
>>> import tempfile
>>> store = SpillStore(limit_bytes=200, folder=Path(tempfile.mkdtemp()), key=lambda r: r[0])
>>> store.extend([(i % 7, i) for i in range(50)])
>>> store.spilled_runs > 0
True
>>> [k for k, _ in store][:8]
[0, 0, 0, 0, 0, 0, 0, 0]
>>> store.close()
"""

from __future__ import annotations

import heapq
import itertools
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["SpillStore"]

_CHUNK = 4096
_SAMPLE_EVERY = 32


def _record_size(record: Any) -> int:
    """The pickled size of ``record``; large buffers are counted, not copied."""
    oob = 0

    def count(buf: pickle.PickleBuffer) -> bool:
        nonlocal oob
        oob += buf.raw().nbytes
        return False

    try:
        return len(pickle.dumps(record, protocol=5, buffer_callback=count)) + oob
    except Exception:  # not picklable: it stays in memory, and fails only if it must spill
        return sys.getsizeof(record)


class SpillStore:
    """Records held in memory up to ``limit_bytes``, then spilled to sorted run files."""

    def __init__(
        self,
        limit_bytes: int,
        folder: Path | None,
        key: Callable[[Any], Any] | None = None,
        name: str = "spill",
    ) -> None:
        self.limit = limit_bytes
        self.folder = folder
        self.key = key
        self.name = name
        self._memory: list[Any] = []
        self._runs: list[Path] = []
        self._estimate = 0
        self._avg = 0.0
        self._seen = 0
        self.count = 0
        self.spilled_bytes = 0

    @property
    def spilled_runs(self) -> int:
        return len(self._runs)

    def extend(self, records: Iterable[Any]) -> None:
        for record in records:
            if self._seen % _SAMPLE_EVERY == 0:
                size = _record_size(record)
                n = self._seen // _SAMPLE_EVERY + 1
                self._avg += (size - self._avg) / n
            self._seen += 1
            self._memory.append(record)
            self.count += 1
            self._estimate += int(self._avg) + 1
            if self._estimate > self.limit:
                self._spill()

    def _sorted_memory(self) -> list[Any]:
        if self.key is not None:
            try:
                self._memory.sort(key=self.key)
            except TypeError as exc:
                kinds = sorted({type(self.key(r)).__qualname__ for r in self._memory[:1000]})
                msg = f"{self.name}: keys of types {kinds} cannot be compared for sorting: {exc}"
                raise TypeError(msg) from exc
        return self._memory

    def _spill(self) -> None:
        if not self._memory:
            return
        records = self._sorted_memory()
        folder = self.folder or Path(tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".run", dir=folder)
        path = Path(name)
        with os.fdopen(fd, "wb") as f:
            for start in range(0, len(records), _CHUNK):
                pickle.dump(records[start : start + _CHUNK], f, protocol=5)
            self.spilled_bytes += f.tell()
        self._runs.append(path)
        self._memory = []
        self._estimate = 0

    @staticmethod
    def _read_run(path: Path) -> Iterator[Any]:
        with open(path, "rb") as f:
            while True:
                try:
                    chunk = pickle.load(f)
                except EOFError:
                    return
                yield from chunk

    def __iter__(self) -> Iterator[Any]:
        memory = self._sorted_memory()
        runs = [self._read_run(p) for p in self._runs]
        if not runs:
            return iter(memory)
        if self.key is None:
            return itertools.chain(*runs, memory)
        return heapq.merge(*runs, memory, key=self.key)

    def close(self) -> None:
        for path in self._runs:
            path.unlink(missing_ok=True)
        self._runs = []
        self._memory = []

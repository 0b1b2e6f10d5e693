"""Line boundaries in byte ranges, shared by the text and CSV formats.

A split of bytes ``[start, end)`` owns the lines whose first byte lies in it. A line begins at
byte 0 and after every ``\\n``, so the split reads from ``line_start(start)`` to
``line_start(end)``, and neighbouring splits meet exactly: no line is lost or read twice,
wherever the cuts fall (inside a ``\\r\\n``, inside a multi-byte UTF-8 character: ``\\n`` is
never part of one).
"""

from __future__ import annotations

import io

import pyarrow as pa

SCAN_BYTES = 1 << 16
COUNT_BYTES = 1 << 23


def line_start(f: pa.NativeFile, offset: int, size: int) -> int:
    """The first line start at or after ``offset`` (``size`` if no line starts there)."""
    if offset <= 0:
        return 0
    if offset >= size:
        return size
    pos = offset - 1
    while pos < size:
        chunk: bytes = f.read_at(min(SCAN_BYTES, size - pos), pos)
        found = chunk.find(b"\n")
        if found >= 0:
            return pos + found + 1
        pos += len(chunk)
        if not chunk:
            break
    return size


def count_lines(f: pa.NativeFile, end: int) -> int:
    """How many lines end before byte ``end`` (its ``\\n`` count)."""
    count, pos = 0, 0
    while pos < end:
        chunk = f.read_at(min(COUNT_BYTES, end - pos), pos)
        if not chunk:
            break
        count += chunk.count(b"\n")
        pos += len(chunk)
    return count


class RangeReader(io.RawIOBase):
    """A file-like reader of bytes ``[start, end)`` of a random-access file."""

    def __init__(self, f: pa.NativeFile, start: int, end: int) -> None:
        super().__init__()
        self.f, self.pos, self.end = f, start, end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.end - self.pos)
        if want <= 0:
            return 0
        data = self.f.read_at(want, self.pos)
        view = memoryview(buffer).cast("B")
        view[: len(data)] = data
        self.pos += len(data)
        return len(data)

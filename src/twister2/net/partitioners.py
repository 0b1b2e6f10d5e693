"""Choosing a target: stable key hashing, round robin, and user partitioners.

Python's ``hash`` of a string differs between processes, so keys are hashed with a stable
function (CRC-32 of their bytes; integers mixed arithmetically): every worker sends a key to the
same target.

Example
-------
>>> stable_hash("apple") == stable_hash("apple"), stable_hash(7) != stable_hash(8)
(True, True)
>>> HashPartitioner()("k", 4) == HashPartitioner()("k", 4)
True
"""

from __future__ import annotations

import pickle
import struct
import zlib
from collections.abc import Callable
from typing import Any

__all__ = ["HashPartitioner", "Partitioner", "RoundRobin", "stable_hash"]

Partitioner = Callable[[Any, int], int]
"""``partitioner(value_or_key, number_of_targets) -> target index``."""

_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def stable_hash(key: Any) -> int:
    """A hash of ``key`` that is the same in every process."""
    if isinstance(key, bool):
        return _mix(int(key))
    if isinstance(key, int):
        return _mix(key & _MASK)
    if isinstance(key, str):
        return zlib.crc32(key.encode("utf-8", "surrogatepass"))
    if isinstance(key, bytes | bytearray):
        return zlib.crc32(key)
    if isinstance(key, float):
        key = key + 0.0  # -0.0 == 0.0, so they must hash alike (as in the array tier)
        return _mix(struct.unpack("<Q", struct.pack("<d", key))[0])
    if isinstance(key, tuple):
        h = 0x345678
        for item in key:
            h = _mix(h ^ stable_hash(item))
        return h
    if key is None:
        return 0
    return zlib.crc32(pickle.dumps(key, protocol=5))


class HashPartitioner:
    """Target by the stable hash of the whole value."""

    def __call__(self, value: Any, targets: int) -> int:
        return stable_hash(value) % targets


class RoundRobin:
    """Each source deals its values to the targets in turn (load balance)."""

    def __init__(self, start: int = 0) -> None:
        self._next = start

    def __call__(self, value: Any, targets: int) -> int:
        target = self._next % targets
        self._next += 1
        return target

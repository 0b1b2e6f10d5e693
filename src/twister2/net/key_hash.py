"""The one rule for routing keys: keys equal under ``==`` get the same stable hash.

Python's own ``hash`` of a string changes from process to process, and the hashes of ``2``,
``2.0``, ``numpy.int64(2)``, ``Decimal(2)`` and ``Fraction(2)`` are equal only because Python
defines numeric hashing so. :func:`stable_hash` keeps that promise across processes and runs:

- numbers (``bool``, ``int``, ``float``, ``complex``, ``Decimal``, ``Fraction``, NumPy scalars and
  any other ``numbers.Number``) by Python's numeric hash (which does not vary between processes),
  every NaN alike, then mixed by splitmix64;
- ``str`` by the CRC-32 of its UTF-8 bytes, ``bytes`` by the CRC-32 of the bytes;
- ``tuple`` (and lists, for values that are not keys) by a mix of their items in order;
  ``frozenset`` (and sets, dicts) by an order-free combination of their items;
- ``None``; dates, times and durations by their microseconds; ``Enum`` members by class and name;
  ``UUID`` by its integer; dataclasses by class and fields.

Anything else has no hash that is both equal for equal keys and the same in every process, so it
gets a :class:`UnstableKeyError` naming its type instead of a random target. The array tier's
``hash_column`` computes the same numbers column-wise (the tests hold the two together).

Example
-------
>>> from decimal import Decimal
>>> from fractions import Fraction
>>> import numpy as np
>>> len({stable_hash(k) for k in (2, 2.0, True + 1, np.int64(2), Decimal(2), Fraction(4, 2))})
1
>>> stable_hash(("a", 1)) == stable_hash(("a", 1.0)), stable_hash(frozenset("ab")) == stable_hash(
...     frozenset("ba"))
(True, True)
>>> stable_hash(object())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
twister2.net.key_hash.UnstableKeyError: a key of type builtins.object has no stable hash...
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import numbers
import sys
import uuid
import zlib
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["NAN_HASH", "UnstableKeyError", "mix", "numeric_hash", "stable_hash"]

_MASK = (1 << 64) - 1
_MODULUS = (1 << 61) - 1
NAN_HASH = 0
"""The numeric hash every NaN gets (Python's own differs per NaN object since 3.10)."""

if sys.hash_info.modulus != _MODULUS:  # pragma: no cover - 32-bit platforms
    msg = "twister2 needs a 64-bit Python (its key hashing follows the 64-bit numeric hash)"
    raise ImportError(msg)


class UnstableKeyError(TypeError):
    """A key whose hash would differ between processes or between equal keys."""


def mix(x: int) -> int:
    """The splitmix64 finaliser: spreads a 64-bit integer's bits over all 64 bits.

    >>> mix(0) != mix(1)
    True
    """
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def numeric_hash(value: Any) -> int:
    """Python's numeric hash of ``value``, with every NaN hashed as :data:`NAN_HASH`.

    >>> numeric_hash(2.0) == numeric_hash(2) == 2, numeric_hash(float("nan"))
    (True, 0)
    """
    try:
        return hash(value) if value == value else NAN_HASH
    except TypeError:  # a signalling Decimal NaN refuses hashing
        return NAN_HASH


def _number(key: Any) -> int:
    return mix(numeric_hash(key) & _MASK)


def _int(key: int) -> int:
    return mix(hash(key) & _MASK)


def _str(key: str) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogatepass"))


def _bytes(key: bytes | bytearray | memoryview) -> int:
    return zlib.crc32(key)


def _sequence(key: tuple[Any, ...] | list[Any]) -> int:
    h = 0x345678
    for item in key:
        h = mix(h ^ stable_hash(item))
    return h


def _unordered(items: Any) -> int:
    total = 0
    for item in items:
        total += mix(stable_hash(item) ^ 0x5BD1E995)
    return mix(total & _MASK)


def _none(key: None) -> int:
    return 0


_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=dt.UTC)


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _datetime(key: dt.datetime) -> int:
    # equal instants are equal whatever their time zone; a naive one never equals an aware one
    epoch = _EPOCH if key.utcoffset() is None else _EPOCH_UTC
    return _int(_micros(key - epoch))


def _date(key: dt.date) -> int:
    return _int(key.toordinal() - 719_163)  # days since 1970-01-01, as Arrow's date32


def _time(key: dt.time) -> int:
    us = ((key.hour * 60 + key.minute) * 60 + key.second) * 1_000_000 + key.microsecond
    offset = key.utcoffset()
    return _int(us - (_micros(offset) if offset is not None else 0))


def _timedelta(key: dt.timedelta) -> int:
    return _int(_micros(key))


def _dict(key: dict[Any, Any]) -> int:
    return _unordered(key.items())


_BY_TYPE: dict[type, Callable[[Any], int]] = {
    int: _int,
    bool: _int,
    float: _number,
    complex: _number,
    Decimal: _number,
    Fraction: _number,
    str: _str,
    bytes: _bytes,
    bytearray: _bytes,
    tuple: _sequence,
    list: _sequence,
    frozenset: _unordered,
    set: _unordered,
    dict: _dict,
    type(None): _none,
    np.bool_: lambda key: _int(bool(key)),  # (not a numbers.Number)
    dt.datetime: _datetime,
    dt.date: _date,
    dt.time: _time,
    dt.timedelta: _timedelta,
}
"""Exact types and their hashers: one dictionary lookup per key in the common case."""

_BY_BASE: tuple[tuple[type | Any, Callable[[Any], int]], ...] = (
    (enum.Enum, lambda key: _sequence((_type_name(type(key)), key.name))),
    # (an IntEnum or a str-Enum is an int or a str first: those rows come later but the exact
    # type misses, and Enum is checked before the numbers so Color.RED is not its value)
    (numbers.Number, _number),
    (str, _str),
    (bytes, _bytes),
    (tuple, _sequence),
    (frozenset, _unordered),
    (dt.datetime, _datetime),
    (dt.date, _date),
    (dt.time, _time),
    (dt.timedelta, _timedelta),
    (uuid.UUID, lambda key: _int(key.int)),
)


def _type_name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _enum_or_value(key: Any) -> Callable[[Any], int] | None:
    kind = type(key)
    if isinstance(key, enum.Enum):
        # an IntEnum/StrEnum member equals its value: hash it as the value
        for value_type in (int, str, float):
            if isinstance(key, value_type):
                return _BY_TYPE[value_type]
        return _BY_BASE[0][1]
    for base, hasher in _BY_BASE[1:]:
        if isinstance(key, base):
            return hasher
    if dataclasses.is_dataclass(kind) and kind.__dataclass_params__.eq:  # type: ignore[attr-defined]
        return lambda k: _sequence(
            (_type_name(type(k)), *(getattr(k, f.name) for f in dataclasses.fields(k)))
        )
    return None


def stable_hash(key: Any) -> int:
    """A 64-bit hash of ``key`` that is equal for keys equal under ``==``, in every process.

    Raises
    ------
    UnstableKeyError
        ``key`` is of a type with no such hash (name it in a tuple of supported values, or give
        the operation a partitioner of its own).

    >>> stable_hash("apple") == stable_hash("apple"), stable_hash(7) != stable_hash(8)
    (True, True)
    """
    hasher = _BY_TYPE.get(type(key))
    if hasher is None:
        hasher = _enum_or_value(key)
        if hasher is not None:
            _BY_TYPE[type(key)] = hasher  # the choice depends on the type alone
        else:
            msg = (
                f"a key of type {_type_name(type(key))} has no stable hash, so equal keys could "
                "reach different targets: use keys of str, bytes, numbers, None, dates and times, "
                "Enum, UUID, dataclasses or tuples/frozensets of those, or give the operation a "
                "partitioner of your own"
            )
            raise UnstableKeyError(msg)
    return hasher(key)

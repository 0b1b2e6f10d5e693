"""Choosing a target: the stable key hash, round robin, and the check of user partitioners.

Every keyed operation of every tier (object, array, streaming, Harp) routes a key with
:func:`~twister2.net.key_hash.stable_hash` (keys equal under ``==`` meet at one target, in every
process) and checks what a user's partitioner returns with :func:`check_target`.

Example
-------
>>> stable_hash("apple") == stable_hash("apple"), stable_hash(7) != stable_hash(8)
(True, True)
>>> HashPartitioner()("k", 4) == HashPartitioner()("k", 4)
True
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from twister2.net.key_hash import UnstableKeyError, stable_hash

__all__ = [
    "HashPartitioner",
    "Partitioner",
    "RoundRobin",
    "UnstableKeyError",
    "check_target",
    "stable_hash",
]

Partitioner = Callable[[Any, int], int]
"""``partitioner(value_or_key, number_of_targets) -> target index``."""


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


def check_target(
    chosen: Any, targets: int, of: Any, *, subject: str | None = None, noun: str = "target"
) -> int:
    """``chosen`` as a target index in ``0..targets-1``, or the error that says what is wrong.

    ``of`` is the value (or key) the partitioner was asked about: the error names its type, or
    ``subject`` when given (``"partition 5"``); ``noun`` names what the targets are (Harp's are
    workers). An integer such as ``numpy.int64`` is accepted; ``bool`` is not.

    >>> check_target(2, 3, "k")
    2
    >>> check_target(3, 3, "k")
    Traceback (most recent call last):
    ...
    ValueError: the partitioner returned target 3 for a value of type str, but the targets are 0..2
    """
    about = subject if subject is not None else f"a value of type {type(of).__qualname__}"
    if not isinstance(chosen, bool) and hasattr(type(chosen), "__index__"):
        chosen = operator.index(chosen)  # an int, or an integer such as numpy.int64
    if isinstance(chosen, bool) or not isinstance(chosen, int):
        msg = (
            f"the partitioner returned {chosen!r} ({type(chosen).__qualname__}) for {about}; "
            f"it must return a {noun} index"
        )
        raise TypeError(msg)
    if not 0 <= chosen < targets:
        msg = (
            f"the partitioner returned {noun} {chosen} for {about}, but the {noun}s are "
            f"0..{targets - 1}"
        )
        raise ValueError(msg)
    return chosen

"""Harp's data model: a :class:`Table` of :class:`Partition` s and the :class:`Combiner` that
merges two partitions with the same id.

A partition is an id (an ``int``) and its data: a NumPy array or any picklable Python object.
A table holds at most one partition per id; adding a second one combines the two with the
table's combiner: :data:`SUM`, :data:`MIN` or :data:`MAX` (element-wise on arrays, which must
then have the same shape), :data:`REPLACE` (the newer data wins), or a function of two values.

Example
-------
>>> import numpy as np
>>> table = Table("sum")
>>> table.add(0, np.array([1, 2]))
>>> table.add(0, np.array([10, 20]))
>>> table.add(3, 5)
>>> table[0].tolist(), table.ids()
([11, 22], [0, 3])
>>> try:
...     table.add(0, np.zeros(3))
... except CombineError as exc:
...     print(exc)
cannot combine partition 0 with sum: shape (2,) in the table but (3,) added
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twister2.net.reductions import MAX as _NET_MAX
from twister2.net.reductions import MIN as _NET_MIN
from twister2.net.reductions import SUM as _NET_SUM

__all__ = [
    "MAX",
    "MIN",
    "REPLACE",
    "SUM",
    "CombineError",
    "CombineFunction",
    "Combiner",
    "Partition",
    "Table",
    "combiner",
]

CombineFunction = Callable[[Any, Any], Any]
"""``combine(old, new) -> merged``: must not modify its arguments."""


class CombineError(ValueError):
    """Two partitions with the same id cannot be combined: the message names the partition id,
    the shapes and where they came from, and the worker that combined them."""


class Combiner:
    """How two partitions with the same id merge.

    Use :data:`SUM`, :data:`MIN`, :data:`MAX`, :data:`REPLACE`, or :func:`combiner` to wrap a
    function of two values.

    >>> SUM(2, 3), MAX(2, 3), REPLACE(2, 3)
    (5, 3, 3)
    """

    def __init__(
        self,
        name: str,
        fn: CombineFunction,
        *,
        elementwise: bool = False,
        ufunc: str | None = None,
    ) -> None:
        self.name = name
        self.fn = fn
        self.elementwise = elementwise
        self._ufunc: Any = getattr(np, ufunc) if ufunc else None

    def __call__(self, old: Any, new: Any) -> Any:
        """The merged data (a new value: neither argument is modified)."""
        return self.fn(old, new)

    def merge(
        self,
        pid: int,
        parts: Sequence[tuple[str, Any]],
        *,
        worker: int | None = None,
        owned: Sequence[bool] | None = None,
    ) -> Any:
        """Fold ``parts`` (``(where it came from, data)`` pairs) in order into one value.

        A built-in combiner works in place where it may: in the running result once it is an
        array this method made, or in a part that ``owned`` marks as the caller's to overwrite
        (a received copy). As the built-ins are commutative and the result's dtype is checked,
        the result is the same, bit for bit, as folding into new arrays.

        >>> import numpy as np
        >>> SUM.merge(4, [("worker 0", np.ones(2)), ("worker 1", np.ones(2))]).tolist()
        [2.0, 2.0]
        """
        if not parts:
            msg = f"partition {pid}: nothing to combine"
            raise ValueError(msg)
        mine = list(owned) if owned is not None else [False] * len(parts)
        first_from, acc = parts[0]
        acc_owned = mine[0]
        for index in range(1, len(parts)):
            came_from, value = parts[index]
            if self.elementwise:
                _check_shapes(self.name, pid, acc, value, first_from, came_from, worker)
            try:
                if acc_owned and self._into(acc, value):
                    continue
                if mine[index] and self._into(value, acc):  # value + acc == acc + value
                    acc, acc_owned = value, True
                    continue
                acc = self.fn(acc, value)
                acc_owned = self._ufunc is not None and isinstance(acc, np.ndarray)
            except CombineError:
                raise
            except Exception as exc:
                on = "" if worker is None else f" on worker {worker}"
                msg = (
                    f"cannot combine partition {pid} with {self.name}{on}: {type(exc).__name__}: "
                    f"{exc} (combining the data from {first_from} with that from {came_from})"
                )
                raise CombineError(msg) from exc
        return acc

    def _into(self, out: Any, other: Any) -> bool:
        """Combine ``other`` into the array ``out`` in place, if this is a built-in and the
        result would have ``out``'s shape and dtype anyway; whether it did."""
        if (
            self._ufunc is None
            or not isinstance(out, np.ndarray)
            or not isinstance(other, np.ndarray)
            or not out.flags.writeable
            or out.shape != other.shape
            or np.result_type(out, other) != out.dtype
        ):
            return False
        self._ufunc(out, other, out=out)
        return True

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> str | tuple[Any, ...]:
        if _BUILTINS.get(self.name) is self:
            return self.name.upper()
        return (combiner, (self.fn, self.name))


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(shape) if isinstance(shape, tuple) else None


def _check_shapes(
    name: str, pid: int, a: Any, b: Any, a_from: str, b_from: str, worker: int | None
) -> None:
    sa, sb = _shape(a), _shape(b)
    if (sa is not None or sb is not None) and sa != sb:
        on = "" if worker is None else f" on worker {worker}"
        shown_a = "a scalar" if sa is None else f"shape {sa}"
        shown_b = "a scalar" if sb is None else str(sb)
        msg = (
            f"cannot combine partition {pid} with {name}{on}: {shown_a} {a_from} but {shown_b} "
            f"{b_from}"
        )
        raise CombineError(msg)


def _replace(old: Any, new: Any) -> Any:
    return new


SUM = Combiner("sum", _NET_SUM, elementwise=True, ufunc="add")
"""Element-wise sum of arrays (of the same shape); ``+`` of other values."""
MIN = Combiner("min", _NET_MIN, elementwise=True, ufunc="minimum")
"""Element-wise minimum of arrays (of the same shape); ``min`` of other values."""
MAX = Combiner("max", _NET_MAX, elementwise=True, ufunc="maximum")
"""Element-wise maximum of arrays (of the same shape); ``max`` of other values."""
REPLACE = Combiner("replace", _replace)
"""The newer data replaces the older (in a collective: the highest worker id's wins)."""

_BUILTINS = {c.name: c for c in (SUM, MIN, MAX, REPLACE)}


def combiner(fn: CombineFunction | str | Combiner, name: str | None = None) -> Combiner:
    """A :class:`Combiner` from a name (``"sum"``, ``"min"``, ``"max"``, ``"replace"``), a
    combiner, or a function ``fn(old, new) -> merged`` that does not modify its arguments.

    >>> combiner("max") is MAX
    True
    >>> concat = combiner(lambda old, new: old + new, name="concat")
    >>> concat([1], [2]), concat
    ([1, 2], concat)
    """
    if isinstance(fn, Combiner):
        return fn
    if isinstance(fn, str):
        try:
            return _BUILTINS[fn.lower()]
        except KeyError:
            known = ", ".join(_BUILTINS)
            msg = f"unknown combiner {fn!r} (known: {known}, or a function of two values)"
            raise ValueError(msg) from None
    if not callable(fn):
        msg = f"a combiner must be a name or a function of two values, got {type(fn).__qualname__}"
        raise TypeError(msg)
    return Combiner(name or str(getattr(fn, "__name__", "function")), fn)


def partition_id(pid: Any) -> int:
    """``pid`` as a partition id: an integer (NumPy integers included), not a bool.

    >>> partition_id(np.int64(3))
    3
    >>> partition_id(True)
    Traceback (most recent call last):
    ...
    TypeError: a partition id is an int, got bool True
    """
    if isinstance(pid, bool) or not isinstance(pid, numbers.Integral):
        msg = f"a partition id is an int, got {type(pid).__qualname__} {pid!r}"
        raise TypeError(msg)
    return int(pid)


@dataclass(frozen=True)
class Partition:
    """One partition: its id and its data (a NumPy array or any picklable object)."""

    id: int
    data: Any


class Table:
    """Partitions by id, with a combiner for partitions that share an id.

    ``partitions`` may be a mapping ``{id: data}`` or ``(id, data)`` pairs (equal ids are
    combined). Iterating gives the :class:`Partition` s in id order.

    >>> t = Table("max", {1: 5, 0: 7})
    >>> t.add(1, 9)
    >>> [(p.id, p.data) for p in t], len(t), 2 in t
    ([(0, 7), (1, 9)], 2, False)
    """

    def __init__(
        self,
        combiner: str | Combiner | CombineFunction = "sum",
        partitions: Mapping[int, Any] | Iterable[tuple[int, Any]] | None = None,
    ) -> None:
        self._combiner = _as_combiner(combiner)
        self._parts: dict[int, Any] = {}
        if partitions is not None:
            pairs = partitions.items() if isinstance(partitions, Mapping) else partitions
            for pid, data in pairs:
                self.add(pid, data)

    @property
    def combiner(self) -> Combiner:
        """How partitions with the same id merge."""
        return self._combiner

    def add(self, pid: int, data: Any) -> None:
        """Add a partition; combine it with the one already under ``pid``, if any.

        Neither the table's data nor ``data`` is modified: a combined partition is a new value.
        """
        pid = partition_id(pid)
        if pid in self._parts:
            self._parts[pid] = self._combiner.merge(
                pid, [("in the table", self._parts[pid]), ("added", data)]
            )
        else:
            self._parts[pid] = data

    def __setitem__(self, pid: int, data: Any) -> None:
        """Set partition ``pid`` to ``data`` (no combining)."""
        self._parts[partition_id(pid)] = data

    def __getitem__(self, pid: int) -> Any:
        """The data of partition ``pid``."""
        try:
            return self._parts[pid]
        except KeyError:
            ids = self.ids()
            shown = ids if len(ids) <= 10 else [*ids[:10], "..."]
            msg = f"no partition {pid} in this table (its ids: {shown})"
            raise KeyError(msg) from None

    def get(self, pid: int, default: Any = None) -> Any:
        """The data of partition ``pid``, or ``default``."""
        return self._parts.get(pid, default)

    def remove(self, pid: int) -> Any:
        """Remove partition ``pid``; its data."""
        data = self[pid]
        del self._parts[pid]
        return data

    def __contains__(self, pid: object) -> bool:
        return pid in self._parts

    def __len__(self) -> int:
        return len(self._parts)

    def __iter__(self) -> Iterator[Partition]:
        for pid in sorted(self._parts):
            yield Partition(pid, self._parts[pid])

    def ids(self) -> list[int]:
        """The partition ids, in order."""
        return sorted(self._parts)

    def partitions(self) -> list[Partition]:
        """The partitions, in id order."""
        return list(self)

    def to_dict(self) -> dict[int, Any]:
        """``{id: data}`` (a new dict; the data is shared)."""
        return {pid: self._parts[pid] for pid in sorted(self._parts)}

    def copy(self) -> Table:
        """A new table with the same combiner and partitions (the data is shared)."""
        new = Table(self._combiner)
        new._parts = dict(self._parts)
        return new

    def empty(self) -> Table:
        """A new empty table with this table's combiner."""
        return Table(self._combiner)

    def __repr__(self) -> str:
        ids = self.ids()
        shown = ids if len(ids) <= 8 else [*ids[:8], "..."]
        return f"Table({self._combiner.name}, {len(ids)} partitions: {shown})"


_as_combiner = combiner  # Table's parameter named ``combiner`` hides the function

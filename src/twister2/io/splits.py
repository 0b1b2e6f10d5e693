"""Input splits: the piece of one file that one reader reads, and how pieces are cut.

A :class:`Split` is a plain, picklable value: the driver (or every worker, the same way) plans
them with :func:`twister2.io.plan_splits`, a worker reads one with
:func:`twister2.io.read_split`. Its ``start`` and ``length`` count the file's ``unit``:

============  ==========================================================================
unit          meaning
============  ==========================================================================
bytes         a byte range of a text or CSV file; the split reads the lines that *begin*
              in it, so any cut points read each line exactly once
rows          rows of a NumPy ``.npy`` file
row_groups    Parquet row groups
batches       record batches of an Arrow IPC file
============  ==========================================================================

Example
-------
>>> byte_ranges([(0, 100), (0, 50)], 3)
[(0, 0, 50), (0, 50, 50), (1, 0, 50)]
>>> groups = assign_splits(["a", "b", "c"], 2, weight=lambda s: 1)
>>> groups
[['a', 'c'], ['b']]
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from twister2.io.formats.base import Format

__all__ = ["ReadStats", "Split", "assign_splits", "byte_ranges", "unit_ranges"]

Unit = Literal["bytes", "rows", "row_groups", "batches"]
T = TypeVar("T")


@dataclass(frozen=True)
class Split:
    """One reader's piece of one file.

    Attributes
    ----------
    url:
        The file's URL (or local path).
    format:
        The :class:`~twister2.io.formats.Format` that reads it (with its options).
    start, length:
        The first ``unit`` of the piece and how many.
    unit:
        ``bytes``, ``rows``, ``row_groups`` or ``batches``.
    hosts:
        The hosts that hold most of the piece's bytes, most first (empty: no preference).
    index:
        The split's place in its plan.
    file_size:
        The whole file's size in bytes.
    rows:
        The records in the piece when known without reading it (None for text and CSV).
    """

    url: str
    format: Format
    start: int
    length: int
    unit: Unit
    hosts: tuple[str, ...] = ()
    index: int = 0
    file_size: int = 0
    rows: int | None = None

    @property
    def end(self) -> int:
        """One past the last ``unit`` of the piece."""
        return self.start + self.length

    @property
    def weight(self) -> int:
        """How much reading the split costs: its rows if known, else its length."""
        return self.rows if self.rows is not None else self.length

    def with_index(self, index: int) -> Split:
        """The same split at another place in its plan."""
        return dataclasses.replace(self, index=index)


@dataclass
class ReadStats:
    """What reading splits met: records read and bad rows skipped (``io.csv.bad_rows=skip``).

    Pass one to :func:`twister2.io.read_split` or :func:`twister2.io.read_batches`; it adds up
    over every split it is given to.
    """

    records: int = 0
    bad_rows: int = 0
    bad_lines: list[str] = field(default_factory=list)
    """Where the first bad rows were (``url:line``), at most :attr:`MAX_LINES`."""

    MAX_LINES = 20

    def add_bad_row(self, where: str) -> None:
        self.bad_rows += 1
        if len(self.bad_lines) < self.MAX_LINES:
            self.bad_lines.append(where)


def _pieces(amount: int, total: int, n: int) -> int:
    """How many pieces an input of ``amount`` out of ``total`` is cut into for ``n`` readers."""
    if amount <= 0:
        return 0
    return max(1, min(amount, round(amount * n / total)))


def byte_ranges(ranges: Sequence[tuple[int, int]], n: int) -> list[tuple[int, int, int]]:
    """Cut byte ranges of several files into about ``n`` pieces of about equal size.

    Parameters
    ----------
    ranges:
        ``(start, length)`` of each file's data (``start`` is past a CSV header).
    n:
        The number of readers.

    Returns
    -------
    list of (file index, start, length)
        In file order; a file of ``k`` times the average size gets about ``k`` pieces, and
        every file with data at least one. Empty files get none.

    Examples
    --------
    >>> byte_ranges([(10, 90)], 4)
    [(0, 10, 22), (0, 32, 23), (0, 55, 22), (0, 77, 23)]
    """
    if n < 1:
        msg = f"the number of readers must be at least 1, got {n}"
        raise ValueError(msg)
    total = sum(length for _, length in ranges)
    out: list[tuple[int, int, int]] = []
    for i, (start, length) in enumerate(ranges):
        k = _pieces(length, total, n)
        if k == 0:
            continue
        cuts = [start + length * j // k for j in range(k + 1)]
        out.extend((i, a, b - a) for a, b in itertools.pairwise(cuts) if b > a)
    return out


def unit_ranges(units: Sequence[Sequence[int]], n: int) -> list[tuple[int, int, int, int]]:
    """Group whole units (row groups, record batches) of several files into about ``n`` pieces.

    Parameters
    ----------
    units:
        For each file, the rows of each of its units, in order.
    n:
        The number of readers.

    Returns
    -------
    list of (file index, first unit, number of units, rows)
        Consecutive units of one file, about equal in rows; files without units get none.

    Examples
    --------
    >>> unit_ranges([[10, 10, 10, 10], [5]], 2)
    [(0, 0, 2, 20), (0, 2, 2, 20), (1, 0, 1, 5)]
    """
    if n < 1:
        msg = f"the number of readers must be at least 1, got {n}"
        raise ValueError(msg)
    total = sum(sum(rows) for rows in units) or 1
    out: list[tuple[int, int, int, int]] = []
    for i, rows in enumerate(units):
        if not rows:
            continue
        file_rows = sum(rows)
        k = min(len(rows), max(1, _pieces(file_rows, total, n)))
        made, first, taken, done = 0, 0, 0, 0
        for j, count in enumerate(rows):
            done += count
            taken += count
            if j == len(rows) - 1 or done * k >= (made + 1) * file_rows:
                out.append((i, first, j + 1 - first, taken))
                made, first, taken = made + 1, j + 1, 0
    return out


def assign_splits(
    splits: Sequence[T], n: int, *, weight: Callable[[T], int] | None = None
) -> list[list[T]]:
    """Give ``splits`` to ``n`` readers so that each reads about as much.

    With exactly ``n`` splits, reader ``i`` gets split ``i``. Otherwise the heaviest split goes
    to the least loaded reader, in turn (ties to the lower reader), and each reader's splits
    keep their plan order. Every process computes the same assignment.

    Parameters
    ----------
    splits:
        The plan (:class:`Split` objects, or anything with a ``weight``).
    n:
        The number of readers (``env.num_workers``).
    weight:
        The cost of a split (default: :attr:`Split.weight`).

    Examples
    --------
    >>> assign_splits([5, 1, 1, 4, 3], 2, weight=lambda w: w)
    [[5, 1, 1], [4, 3]]
    """
    if n < 1:
        msg = f"the number of readers must be at least 1, got {n}"
        raise ValueError(msg)
    cost: Callable[[T], int] = weight or (lambda s: int(getattr(s, "weight", 1)))
    if len(splits) == n:
        return [[s] for s in splits]
    loads = [0] * n
    chosen: list[list[int]] = [[] for _ in range(n)]
    order = sorted(range(len(splits)), key=lambda i: (-cost(splits[i]), i))
    for i in order:
        reader = min(range(n), key=lambda r: (loads[r], r))
        loads[reader] += cost(splits[i])
        chosen[reader].append(i)
    return [[splits[i] for i in sorted(mine)] for mine in chosen]

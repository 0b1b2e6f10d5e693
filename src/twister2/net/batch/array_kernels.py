"""Vectorised kernels of the array tier: key hashing, splitting by target, sorting, bucketing and
two-stage aggregation, on NumPy arrays and Arrow tables with no Python loop per record.

:func:`hash_column` gives every key the same hash as :func:`~twister2.net.partitioners.stable_hash`
gives the equal Python value (so the object tier and the array tier route a key alike), in every
process: numbers by Python's numeric hash (so ``2`` and ``2.0`` meet) computed in NumPy and mixed
by splitmix64, dates, times and durations by their days or microseconds, strings and binaries by
the CRC-32 of their bytes (computed once per distinct value, the distinct
values found by Arrow's dictionary encoding, the CRC itself vectorised over them), nulls as 0.

Example
-------
>>> import pyarrow as pa
>>> from twister2.net.partitioners import stable_hash
>>> hashes = hash_column(pa.array(["apple", None, "apple", "kiwi"]))
>>> hashes.tolist() == [stable_hash("apple"), 0, stable_hash("apple"), stable_hash("kiwi")]
True
>>> int(hash_column(pa.array([-7]))[0]) == stable_hash(-7)
True
>>> table = pa.table({"k": [1, 2, 3, 4, 5, 6], "v": [10, 20, 30, 40, 50, 60]})
>>> [(t, part.column("k").to_pylist()) for t, part in split_by_target(table, "k", 2)]
[(0, [2, 4, 5, 6]), (1, [1, 3])]
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from twister2.net.key_hash import NAN_HASH

__all__ = [
    "AGGREGATIONS",
    "Aggregations",
    "ArrayPartitioner",
    "bucket_ids",
    "choose_cuts",
    "describe_schema",
    "hash_column",
    "mix64",
    "sort_table",
    "split_by_index",
    "split_by_target",
    "to_table",
]

U64 = npt.NDArray[np.uint64]
Ints = npt.NDArray[np.int64]

ArrayPartitioner = Callable[[Any, int], Any]
"""``partitioner(key_column, number_of_targets) -> array of target indices, one per row``.

``key_column`` is a ``pyarrow.ChunkedArray``; the result anything :func:`numpy.asarray` makes an
integer array of the column's length from.
"""

_C0 = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_MODULUS = np.uint64((1 << 61) - 1)
_MINUS_ONE, _MINUS_TWO = np.uint64((1 << 64) - 1), np.uint64((1 << 64) - 2)
_TWO_53 = float(1 << 53)
_INF_HASH = np.uint64(hash(float("inf")))
_MINUS_INF_HASH = np.uint64((1 << 64) + hash(float("-inf")))
_FEW_PARTS = 8
"""Up to this many parts, :func:`split_by_index` finds each part's rows with a pass of its own."""
_SMALL_DICTIONARY = 64
"""Below this many distinct strings, CRC-32 them one by one with zlib (cheaper than NumPy)."""


def mix64(x: U64) -> U64:
    """The splitmix64 finaliser of :func:`~twister2.net.partitioners.stable_hash`, element-wise.

    >>> from twister2.net.partitioners import stable_hash
    >>> int(mix64(np.array([5], dtype=np.uint64))[0]) == stable_hash(5)
    True
    """
    x = x + _C0
    shifted = np.empty_like(x)
    for shift, factor in ((_S30, _C1), (_S27, _C2)):
        np.right_shift(x, shift, out=shifted)
        x ^= shifted
        x *= factor
    np.right_shift(x, _S31, out=shifted)
    x ^= shifted
    return x


def _crc_table() -> npt.NDArray[np.uint32]:
    c = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        c = np.where(c & 1, (c >> 1) ^ np.uint32(0xEDB88320), c >> 1).astype(np.uint32)
    return c


_CRC_TABLE = _crc_table()


def _binary_parts(arr: pa.Array) -> tuple[Ints, npt.NDArray[np.uint8]]:
    """Start offsets (length n + 1) and the data bytes of a string or binary array."""
    bufs = arr.buffers()
    width = (
        np.int64
        if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
        else np.int32
    )
    offsets = np.frombuffer(bufs[1], dtype=width)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    return offsets.astype(np.int64), data


def _crc32_values(arr: pa.Array) -> U64:
    """zlib's CRC-32 of every value of a null-free string/binary array, vectorised over values.

    The loop runs over byte positions (up to the longest value), each step a handful of NumPy
    operations on the values that are still that long.
    """
    offsets, data = _binary_parts(arr)
    n = len(arr)
    if n <= _SMALL_DICTIONARY:
        return np.array(
            [zlib.crc32(data[offsets[i] : offsets[i + 1]].tobytes()) for i in range(n)],
            dtype=np.uint64,
        )
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    order = np.argsort(-lengths, kind="stable")
    starts, lengths = starts[order], lengths[order]
    longest = int(lengths[0]) if n else 0
    still = np.searchsorted(-lengths, -np.arange(longest), side="left")
    crc = np.full(n, 0xFFFFFFFF, dtype=np.uint32)
    table, low, eight = _CRC_TABLE, np.uint32(0xFF), np.uint32(8)
    for pos in range(longest):
        m = int(still[pos])
        part = crc[:m]
        byte = data[starts[:m] + pos]
        crc[:m] = table[(part ^ byte) & low] ^ (part >> eight)
    out = np.empty(n, dtype=np.uint64)
    out[order] = crc ^ np.uint32(0xFFFFFFFF)
    return out


def _nulls(arr: pa.Array) -> npt.NDArray[np.bool_] | None:
    if arr.null_count == 0:
        return None
    return np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _signed(magnitude: U64, negative: npt.NDArray[np.bool_]) -> U64:
    """Python's signed hash from a magnitude below the modulus, as ``uint64`` bits (``-1`` is
    ``-2``, as in CPython, where ``-1`` means an error)."""
    out = np.where(negative, np.uint64(0) - magnitude, magnitude)
    out[out == _MINUS_ONE] = _MINUS_TWO
    return out


def _int_hashes(ints: Ints) -> U64:
    """``hash(int(v))`` of every ``int64`` value (the two's complement bits, as ``uint64``)."""
    bits = ints.view(np.uint64)
    negative = ints < 0
    magnitude = np.where(negative, np.uint64(0) - bits, bits)  # |v|, right even for -2**63
    return _signed(magnitude % _MODULUS, negative)


def _float_hashes(floats: npt.NDArray[np.float64]) -> U64:
    """``hash(v)`` of every ``float64`` value, NaNs as :data:`~twister2.net.key_hash.NAN_HASH`.

    A finite ``v`` is ``M * 2**E`` with an integer ``M < 2**53``; its hash is ``M * 2**E`` modulo
    the Mersenne prime ``2**61 - 1``, and multiplying by ``2**s`` modulo it rotates 61 bits."""
    finite = np.isfinite(floats)
    mantissa, exponent = np.frexp(np.where(finite, np.abs(floats), 0.0))
    m = (mantissa * _TWO_53).astype(np.uint64)
    s = np.mod(exponent.astype(np.int64) - 53, 61).astype(np.uint64)
    rotated = ((m << s) & _MODULUS) | (m >> (np.uint64(61) - s))
    out = _signed(rotated, floats < 0)
    out[np.isinf(floats)] = np.where(floats[np.isinf(floats)] > 0, _INF_HASH, _MINUS_INF_HASH)
    out[np.isnan(floats)] = np.uint64(NAN_HASH)
    return out


_TEMPORAL_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": -1_000}
"""Per unit, the factor to microseconds (negative: a divisor), as Python's datetime keeps them."""


def _temporal_ints(arr: pa.Array) -> Ints:
    """The integers :func:`~twister2.net.key_hash.stable_hash` hashes for the equal Python date,
    time, datetime or timedelta: days for dates, microseconds for the others."""
    kind = arr.type
    raw = arr.view(pa.int64() if kind.bit_width == 64 else pa.int32())
    ints: Ints = (raw.fill_null(0) if raw.null_count else raw).to_numpy().astype(np.int64)
    if pa.types.is_date32(kind):
        return ints
    factor = -86_400_000 if pa.types.is_date64(kind) else _TEMPORAL_MICROS.get(kind.unit)
    if factor is None:
        msg = f"cannot hash a key column of type {kind}"
        raise TypeError(msg)
    out: Ints = ints * factor if factor > 0 else np.floor_divide(ints, -factor)
    return out


def _hash_chunk(arr: pa.Array) -> U64:
    kind = arr.type
    if len(arr) == 0:
        return np.empty(0, dtype=np.uint64)
    out: U64
    if pa.types.is_dictionary(kind):
        values = _hash_chunk(arr.dictionary)
        if len(values) == 0:  # every value is null
            return np.zeros(len(arr), dtype=np.uint64)
        out = values[arr.indices.fill_null(0).to_numpy(zero_copy_only=False)]
    elif pa.types.is_null(kind):
        return np.zeros(len(arr), dtype=np.uint64)
    elif pa.types.is_boolean(kind):
        out = mix64(arr.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint64))
    elif pa.types.is_integer(kind):
        ints = (arr.fill_null(0) if arr.null_count else arr).to_numpy()
        if pa.types.is_uint64(kind):
            out = mix64(ints % _MODULUS)
        else:
            out = mix64(_int_hashes(ints.astype(np.int64, copy=False)))
    elif pa.types.is_floating(kind):
        floats = (arr.fill_null(0) if arr.null_count else arr).to_numpy()
        out = mix64(_float_hashes(floats.astype(np.float64, copy=False)))
    elif pa.types.is_temporal(kind):
        out = mix64(_int_hashes(_temporal_ints(arr)))
    elif pa.types.is_string_view(kind) or pa.types.is_binary_view(kind):
        return _hash_chunk(
            arr.cast(pa.large_string() if pa.types.is_string_view(kind) else pa.large_binary())
        )
    elif pa.types.is_fixed_size_binary(kind):
        return _hash_chunk(arr.cast(pa.binary()))
    elif (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    ):
        encoded = pc.dictionary_encode(arr)
        if len(encoded.dictionary) == 0:  # every value is null
            return np.zeros(len(arr), dtype=np.uint64)
        values = _crc32_values(encoded.dictionary)
        out = values[encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)]
    else:
        msg = (
            f"cannot hash a key column of type {kind} (keys may be integers, floats, booleans, "
            "strings, binaries, dates and times, or dictionaries of those)"
        )
        raise TypeError(msg)
    nulls = _nulls(arr)
    if nulls is not None:
        out[nulls] = 0
    return out


def hash_column(column: Any) -> U64:
    """The stable 64-bit hash of every value of ``column``, as a NumPy ``uint64`` array.

    Parameters
    ----------
    column : pyarrow.Array, pyarrow.ChunkedArray or numpy.ndarray
        The keys. Integers, floats, booleans, strings, binaries, temporal values (hashed by their
        integer representation) and dictionary arrays of those.

    Returns
    -------
    numpy.ndarray
        ``uint64`` hashes, equal to ``stable_hash(value)`` of the equal Python value (nulls are 0).

    Raises
    ------
    TypeError
        For a column type that cannot be hashed (lists, structs...).

    Examples
    --------
    >>> hash_column(np.array([1, 1, 2])).tolist() == hash_column(pa.array([1, 1, 2])).tolist()
    True
    """
    if isinstance(column, np.ndarray):
        column = pa.array(column)
    if isinstance(column, pa.ChunkedArray):
        parts = [_hash_chunk(c) for c in column.chunks]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
    return _hash_chunk(column)


def _small_ids(ids: Ints, n: int) -> npt.NDArray[Any]:
    if n <= 1 << 8:
        return ids.astype(np.uint8)
    if n <= 1 << 16:
        return ids.astype(np.uint16)
    return ids


def split_by_index(table: pa.Table, ids: npt.ArrayLike, n: int) -> list[tuple[int, pa.Table]]:
    """Rows of ``table`` grouped by ``ids`` (values in ``0..n-1``): ``[(id, rows), ...]``.

    Only ids that got rows appear, in increasing order; rows keep their relative order. Each part
    is a compact copy (one ``take``), except when every row has one id: then ``table`` itself.

    >>> t = pa.table({"x": [5, 6, 7]})
    >>> [(i, p.column("x").to_pylist()) for i, p in split_by_index(t, [1, 0, 1], 3)]
    [(0, [6]), (1, [5, 7])]
    """
    index = np.asarray(ids)
    counts = np.bincount(index, minlength=n)
    used = np.flatnonzero(counts)
    if len(used) == 1:
        return [(int(used[0]), table)]
    if len(used) <= _FEW_PARTS:  # a pass per part beats a sort
        return [(int(i), table.take(np.flatnonzero(index == i))) for i in used.tolist()]
    order = np.argsort(_small_ids(index, n), kind="stable")
    ends = np.cumsum(counts)
    return [(int(i), table.take(order[ends[i] - counts[i] : ends[i]])) for i in used.tolist()]


def _check_targets(chosen: Any, rows: int, n: int) -> Ints:
    targets = np.asarray(chosen)
    if targets.shape != (rows,) or not np.issubdtype(targets.dtype, np.integer):
        msg = (
            f"the partitioner returned {targets.dtype} values of shape {targets.shape}; it must "
            f"return one integer target per row ({rows} rows)"
        )
        raise TypeError(msg)
    if rows and (int(targets.min()) < 0 or int(targets.max()) >= n):
        bad = targets[(targets < 0) | (targets >= n)][0]
        msg = f"the partitioner returned target {int(bad)}, but the targets are 0..{n - 1}"
        raise ValueError(msg)
    return targets.astype(np.int64, copy=False)


def key_column(table: pa.Table, key: str) -> pa.ChunkedArray:
    """``table``'s column ``key``; a ``KeyError`` listing the columns when it has none."""
    if key not in table.column_names:
        msg = f"no column {key!r} in the table (its columns: {', '.join(table.column_names)})"
        raise KeyError(msg)
    return table.column(key)


def split_by_target(
    table: pa.Table,
    key: str,
    num_targets: int,
    partitioner: ArrayPartitioner | None = None,
) -> list[tuple[int, pa.Table]]:
    """Split ``table`` by its ``key`` column into ``[(target, rows), ...]`` for the targets that
    get rows; by default ``hash_column(key) % num_targets``.

    Parameters
    ----------
    table : pyarrow.Table
    key : str
        The key column.
    num_targets : int
    partitioner : callable, optional
        ``partitioner(key_column, num_targets)``: one target per row (an array).

    Raises
    ------
    KeyError
        ``table`` has no column ``key``.
    TypeError, ValueError
        The partitioner's answer is not one integer per row, or a target is out of range.
    """
    column = key_column(table, key)
    if len(table) == 0:
        return []
    if partitioner is None:
        targets = (hash_column(column) % np.uint64(num_targets)).astype(np.int64)
    else:
        targets = _check_targets(partitioner(column, num_targets), len(table), num_targets)
    return split_by_index(table, targets, num_targets)


def to_table(value: Any) -> pa.Table:
    """A ``pyarrow.Table`` from a table, a record batch or a mapping of column name to array.

    >>> to_table({"k": np.array([1, 2])}).num_rows
    2
    """
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    if isinstance(value, Mapping):
        columns: dict[str, Any] = {}
        for name, col in value.items():
            try:
                columns[str(name)] = (
                    col if isinstance(col, pa.Array | pa.ChunkedArray) else pa.array(col)
                )
            except (pa.ArrowException, TypeError, ValueError) as exc:
                kinds = _element_types(col)
                msg = (
                    f"column {name!r} (values of types {kinds}) cannot become an Arrow "
                    f"column: {exc}"
                )
                raise TypeError(msg) from exc
        return pa.table(columns)
    msg = (
        f"the array tier sends pyarrow Tables, RecordBatches or dicts of NumPy columns, "
        f"not {type(value).__qualname__}"
    )
    raise TypeError(msg)


def _element_types(col: Any) -> str:
    sample = list(col[:1000]) if isinstance(col, np.ndarray | list | tuple) else []
    names = sorted({type(x).__qualname__ for x in sample}) or [type(col).__qualname__]
    return ", ".join(names)


def describe_schema(schema: pa.Schema | None) -> str:
    """``(name: type, ...)`` on one line.

    >>> describe_schema(pa.schema([("k", pa.int64()), ("s", pa.string())]))
    '(k: int64, s: string)'
    """
    if schema is None:
        return "(unknown)"
    return "(" + ", ".join(f"{f.name}: {f.type}" for f in schema) + ")"


def compact(table: pa.Table) -> pa.Table:
    """``table`` as one contiguous chunk per column whose buffers hold only its rows.

    A slice of a large table pickles its whole buffers; this copies out just the rows when the
    buffers are much larger than the rows need.
    """
    if table.num_columns and table.get_total_buffer_size() > 2 * table.nbytes + 65536:
        return table.take(np.arange(len(table)))
    return table


def _sortable(column: Any) -> Any:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def sort_table(table: pa.Table, key: str) -> pa.Table:
    """``table`` sorted by ``key`` (stable, ascending, nulls and NaN last).

    >>> sort_table(pa.table({"k": ["b", None, "a"]}), "k").column("k").to_pylist()
    ['a', 'b', None]
    """
    if len(table) <= 1:
        return table
    order = pc.array_sort_indices(_sortable(table.column(key)), null_placement="at_end")
    return table.take(order)


def choose_cuts(sample: Any, count: int) -> pa.Array:
    """Up to ``count`` distinct cut points at even quantiles of ``sample`` (nulls and NaN left out),
    in increasing order.

    >>> choose_cuts(pa.array([5, 1, None, 3, 2, 4, 4]), 2).to_pylist()
    [3, 4]
    """
    values = _sortable(pa.chunked_array([sample]) if isinstance(sample, pa.Array) else sample)
    values = pc.drop_null(values)
    if pa.types.is_floating(values.type):
        values = values.filter(pc.invert(pc.is_nan(values)))
    if len(values) == 0 or count < 1:
        return pa.array([], type=values.type)
    ordered = values.take(pc.array_sort_indices(values))
    picks = (np.arange(1, count + 1) * len(ordered)) // (count + 1)
    cuts = ordered.take(np.unique(picks)).combine_chunks()
    return pc.unique(cuts)


def bucket_ids(column: Any, cuts: pa.Array) -> Ints:
    """The range bucket of every value against the sorted, distinct ``cuts`` ``c1 < ... < ck``.

    Buckets run ``(-inf, c1)``, ``{c1}``, ``(c1, c2)``, ``{c2}``, ..., ``(ck, inf)``, nulls:
    bucket ``2i`` holds the values strictly between two cuts (NaN above every cut, in bucket
    ``2k``), odd bucket ``2i + 1`` the values equal to cut ``i + 1``, and the last, ``2k + 1``,
    the nulls. Ascending buckets hold ascending keys (in the order of :func:`sort_table`), so
    sorting each bucket in turn sorts the whole; an odd bucket holds one key and needs no sort.

    >>> bucket_ids(pa.array([1, 2, 3, None]), pa.array([2])).tolist()
    [0, 1, 2, 3]
    """
    column = _sortable(column)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    cuts = cuts.cast(column.type)
    kind = column.type
    if pa.types.is_temporal(kind) or pa.types.is_boolean(kind):  # compare as integers
        width = pa.int8() if pa.types.is_boolean(kind) else _int_of(kind)
        column, cuts = column.cast(width), cuts.cast(width)
        kind = width
    k = len(cuts)
    if k == 0:
        ids = np.zeros(len(column), dtype=np.int64)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = column.fill_null(0).to_numpy()
        edges = cuts.to_numpy()
        below = np.searchsorted(edges, values, side="left")
        equal = (below < k) & (edges[np.minimum(below, k - 1)] == values)
        ids = 2 * below.astype(np.int64) + equal
    else:  # strings, binaries...: rank the distinct values among the cuts in one sort
        encoded = pc.dictionary_encode(column)
        distinct = _ids_against(encoded.dictionary, cuts)
        ids = (
            distinct[encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)]
            if len(distinct)
            else np.zeros(len(column), dtype=np.int64)
        )
    nulls = _nulls(column)
    if nulls is not None:
        ids[nulls] = 2 * k + 1
    return ids


def _int_of(kind: pa.DataType) -> pa.DataType:
    return pa.int64() if kind.bit_width == 64 else pa.int32()


def _ids_against(values: pa.Array, cuts: pa.Array) -> Ints:
    """:func:`bucket_ids` of null-free ``values``: one sort of values and cuts together (a cut
    before the values equal to it), then the number of cuts at or before each value."""
    n, k = len(values), len(cuts)
    is_value = np.concatenate([np.ones(n, dtype=bool), np.zeros(k, dtype=bool)])
    both = pa.table({"v": pa.concat_arrays([values, cuts]), "c": is_value})
    order = pc.sort_indices(both, sort_keys=[("v", "ascending"), ("c", "ascending")])
    order = order.to_numpy()
    upto = np.cumsum(~is_value[order])  # cuts at or before each position of the sorted order
    position = np.empty(n + k, dtype=np.int64)
    position[order] = np.arange(n + k)
    at_most = upto[position[:n]]  # for each value: how many cuts are <= it
    nearest = cuts.take(np.maximum(at_most - 1, 0))
    equal = (at_most > 0) & pc.equal(nearest, values).to_numpy(zero_copy_only=False)
    return np.asarray(2 * (at_most - equal) + equal, dtype=np.int64)


AGGREGATIONS = ("sum", "min", "max", "count", "mean")
"""The aggregation functions of :class:`Aggregations`."""

_PARTIALS = {
    "sum": ("sum",),
    "min": ("min",),
    "max": ("max",),
    "count": ("count",),
    "mean": ("sum", "count"),
}
_COMBINE = {"sum": "sum", "min": "min", "max": "max", "count": "sum"}


@dataclass(frozen=True)
class Aggregations:
    """A keyed aggregation done in two stages: partial aggregates (on every sender), combined
    (at the target), then finished (``mean`` = combined sum / combined count).

    Output columns: ``key``, then ``f"{column}_{function}"`` for every requested aggregation,
    in the order given. ``count`` counts non-null values; ``sum``, ``min``, ``max`` and ``mean``
    skip nulls and are null for a key whose values are all null.

    >>> aggs = Aggregations.of("k", {"v": ["sum", "mean"]})
    >>> parts = [aggs.partial(pa.table({"k": [1, 1, 2], "v": [1, 2, 3]})),
    ...          aggs.partial(pa.table({"k": [2], "v": [5]}))]
    >>> aggs.finish(aggs.combine(parts)).to_pylist()
    [{'k': 1, 'v_sum': 3, 'v_mean': 1.5}, {'k': 2, 'v_sum': 8, 'v_mean': 4.0}]
    """

    key: str
    outputs: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, key: str, spec: Mapping[str, str | Sequence[str]]) -> Aggregations:
        outputs: list[tuple[str, str]] = []
        for column, fns in spec.items():
            for fn in [fns] if isinstance(fns, str) else list(fns):
                if fn not in AGGREGATIONS:
                    known = ", ".join(AGGREGATIONS)
                    msg = f"unknown aggregation {fn!r} for column {column!r} (known: {known})"
                    raise ValueError(msg)
                outputs.append((str(column), fn))
        if not outputs:
            msg = "no aggregations given: pass e.g. {'value': 'sum'}"
            raise ValueError(msg)
        return cls(key, tuple(outputs))

    @property
    def columns(self) -> list[str]:
        return sorted({c for c, _ in self.outputs})

    @property
    def partials(self) -> list[tuple[str, str]]:
        seen: dict[tuple[str, str], None] = {}
        for column, fn in self.outputs:
            for part in _PARTIALS[fn]:
                seen[(column, part)] = None
        return list(seen)

    def _names(self) -> list[str]:
        return [f"{c}_{p}" for c, p in self.partials]

    def partial(self, table: pa.Table) -> pa.Table:
        """Per-key partial aggregates of raw rows (one row per key)."""
        out = table.group_by(self.key, use_threads=False).aggregate(list(self.partials))
        return out.select([self.key, *self._names()])

    def combine(self, partials: Iterable[pa.Table]) -> pa.Table:
        """Partial aggregates of the same keys combined into one row per key."""
        table = pa.concat_tables(list(partials))
        names = self._names()
        aggs = [(n, _COMBINE[p]) for n, (_, p) in zip(names, self.partials, strict=True)]
        out = table.group_by(self.key, use_threads=False).aggregate(aggs)
        return out.select([self.key, *[f"{n}_{f}" for n, f in aggs]]).rename_columns(
            [self.key, *names]
        )

    def finish(self, partials: pa.Table) -> pa.Table:
        """The requested aggregates from combined partials, sorted by key."""
        columns: dict[str, Any] = {self.key: partials.column(self.key)}
        for column, fn in self.outputs:
            if fn == "mean":
                total = pc.cast(partials.column(f"{column}_sum"), pa.float64())
                count = pc.cast(partials.column(f"{column}_count"), pa.float64())
                columns[f"{column}_mean"] = pc.divide(total, count)
            else:
                columns[f"{column}_{fn}"] = partials.column(f"{column}_{fn}")
        return sort_table(pa.table(columns), self.key)

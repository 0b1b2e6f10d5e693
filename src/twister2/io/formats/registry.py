"""Formats by name and by file extension.

Example
-------
>>> get_format("csv")
CsvFormat(delimiter=',', header=True, schema=None, bad_rows=None, newlines_in_values=False)
>>> type(get_format(None, ["/data/part-00000.parquet"])).__name__
'ParquetFormat'
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from twister2.io.formats.base import Format
from twister2.io.formats.delimited import CsvFormat, TsvFormat
from twister2.io.formats.ipc import ArrowFormat
from twister2.io.formats.npy import NumpyFormat
from twister2.io.formats.parquet import ParquetFormat
from twister2.io.formats.text import TextFormat

__all__ = ["FORMATS", "get_format"]

FORMATS: dict[str, type[Format]] = {
    "text": TextFormat,
    "csv": CsvFormat,
    "tsv": TsvFormat,
    "parquet": ParquetFormat,
    "npy": NumpyFormat,
    "numpy": NumpyFormat,
    "arrow": ArrowFormat,
    "ipc": ArrowFormat,
    "feather": ArrowFormat,
}
"""Format classes by the names ``format=`` takes."""

_BY_EXTENSION = {ext: cls for cls in set(FORMATS.values()) for ext in cls.extensions}


def _by_extension(path: str) -> type[Format] | None:
    return _BY_EXTENSION.get(posixpath.splitext(path)[1].lower())


def get_format(spec: str | Format | None, paths: Sequence[str] = ()) -> Format:
    """The format ``spec`` names, or (``spec`` None) the one the paths' extensions name.

    Parameters
    ----------
    spec:
        A :class:`Format` (returned as is), a name (``text``, ``csv``, ``tsv``, ``parquet``,
        ``npy``, ``arrow``), or None.
    paths:
        The input files, whose extensions choose the format when ``spec`` is None.

    Examples
    --------
    >>> get_format("xml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown format 'xml' (known: arrow, csv, feather, ipc, npy, numpy, ...)
    """
    if isinstance(spec, Format):
        return spec
    if spec is not None:
        cls = FORMATS.get(str(spec).lower())
        if cls is None:
            msg = f"unknown format {spec!r} (known: {', '.join(sorted(FORMATS))})"
            raise ValueError(msg)
        return cls()
    found = {path: _by_extension(path) for path in paths}
    unknown = [path for path, cls in found.items() if cls is None]
    if unknown:
        msg = (
            f"cannot tell the format of {unknown[0]} from its extension: pass format= "
            f"(one of {', '.join(sorted(FORMATS))})"
        )
        raise ValueError(msg)
    kinds = sorted({cls.name for cls in found.values() if cls is not None})
    if len(kinds) > 1:
        msg = f"the input holds files of several formats ({', '.join(kinds)}): pass format="
        raise ValueError(msg)
    if not kinds:
        return TextFormat()
    cls = next(cls for cls in found.values() if cls is not None)
    return cls()

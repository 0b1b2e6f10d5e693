"""File formats: text, CSV/TSV, Parquet, NumPy ``.npy`` and Arrow IPC.

Each is a :class:`Format` that plans splits, reads them as batches or records, and writes
part files. Pass one with options where a name is not enough::

    plan_splits("data/*.csv", 4, format=CsvFormat(delimiter=";", bad_rows="skip"))
"""

from twister2.io.formats.base import Format, FormatWriter
from twister2.io.formats.delimited import CsvFormat, TsvFormat
from twister2.io.formats.ipc import ArrowFormat
from twister2.io.formats.npy import NumpyFormat
from twister2.io.formats.parquet import ParquetFormat
from twister2.io.formats.registry import FORMATS, get_format
from twister2.io.formats.text import TextFormat

__all__ = [
    "FORMATS",
    "ArrowFormat",
    "CsvFormat",
    "Format",
    "FormatWriter",
    "NumpyFormat",
    "ParquetFormat",
    "TextFormat",
    "TsvFormat",
    "get_format",
]

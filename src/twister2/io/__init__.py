"""Storage and data I/O: file systems by URL, input splits with hosts, formats, atomic sinks.

* :func:`get_filesystem` opens local paths (NFS included), ``persistent://`` and ``volatile://``
  storage, ``s3://`` and ``hdfs://`` URLs behind one :class:`FileSystem` interface.
* :func:`plan_splits` cuts files, directories or globs into :class:`Split` objects for N
  readers; :func:`read_split` and :func:`read_batches` read one as records or batches.
* :class:`Sink` writes ``part-NNNNN`` files under temporary names and commits them with a
  ``_SUCCESS`` marker; readers refuse an output whose commit did not finish
  (:class:`IncompleteOutputError`), and :func:`recover_output` puts the previous one back.

Example
-------
>>> import os, tempfile
>>> from twister2 import io
>>> out = os.path.join(tempfile.mkdtemp(), "squares")
>>> sink = io.Sink(out, "parquet", job_id="example")
>>> with sink.open(0) as writer:
...     for i in range(5):
...         writer.write({"i": i, "square": i * i})
>>> _ = sink.commit(1)
>>> [r["square"] for s in io.plan_splits(out, 2) for r in io.read_split(s)]
[0, 1, 4, 9, 16]
"""

from twister2.io.errors import (
    CommitError,
    IncompleteOutputError,
    MalformedRecordError,
    NotARegularFileError,
    OutputExistsError,
    SchemaMismatchError,
    StorageUnavailableError,
)
from twister2.io.filesystem import (
    BlockLocation,
    FileInfo,
    FileSystem,
    LocalFileSystem,
    get_filesystem,
    hosts_for_range,
    register_filesystem,
)
from twister2.io.formats import (
    ArrowFormat,
    CsvFormat,
    Format,
    NumpyFormat,
    ParquetFormat,
    TextFormat,
    TsvFormat,
    get_format,
)
from twister2.io.inputs import list_inputs, plan_splits, read_batches, read_split
from twister2.io.outputs import recover_output
from twister2.io.sinks import JobEnv, PartWriter, Sink
from twister2.io.splits import ReadStats, Split, assign_splits
from twister2.io.storage import persistent_root, resolve_storage_url, storage_url, volatile_root

__all__ = [
    "ArrowFormat",
    "BlockLocation",
    "CommitError",
    "CsvFormat",
    "FileInfo",
    "FileSystem",
    "Format",
    "IncompleteOutputError",
    "JobEnv",
    "LocalFileSystem",
    "MalformedRecordError",
    "NotARegularFileError",
    "NumpyFormat",
    "OutputExistsError",
    "ParquetFormat",
    "PartWriter",
    "ReadStats",
    "SchemaMismatchError",
    "Sink",
    "Split",
    "StorageUnavailableError",
    "TextFormat",
    "TsvFormat",
    "assign_splits",
    "get_filesystem",
    "get_format",
    "hosts_for_range",
    "list_inputs",
    "persistent_root",
    "plan_splits",
    "read_batches",
    "read_split",
    "recover_output",
    "register_filesystem",
    "resolve_storage_url",
    "storage_url",
    "volatile_root",
]

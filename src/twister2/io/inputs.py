"""Reading input: list files, plan splits (driver), read a split (worker).

``plan_splits`` is deterministic (files sorted by path), so every worker of an SPMD job can
plan for itself and read its own share without a message::

    def main(env):
        splits = plan_splits("s3://bucket/logs/*.txt", env.num_workers, config=env.config)
        for split in assign_splits(splits, env.num_workers)[env.worker_id]:
            for batch in read_batches(split, env.config):
                ...

Example
-------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> for name in ("a.txt", "b.txt", "_SUCCESS"):
...     with open(os.path.join(folder, name), "w") as f:
...         _ = f.write(f"{name} 1\\n{name} 2\\n")
>>> [os.path.basename(f.path) for f in list_inputs(folder)[1]]
['a.txt', 'b.txt']
>>> splits = plan_splits(os.path.join(folder, "*.txt"), 2)
>>> [(os.path.basename(s.url), s.start, s.length) for s in splits]
[('a.txt', 0, 16), ('b.txt', 0, 16)]
>>> list(read_split(splits[1]))
['b.txt 1', 'b.txt 2']
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from typing import Any

from twister2.io import outputs
from twister2.io._settings import ConfigLike, resolved
from twister2.io.filesystem import FileInfo, FileSystem, get_filesystem
from twister2.io.formats.base import Format
from twister2.io.formats.registry import get_format
from twister2.io.splits import ReadStats, Split

__all__ = ["list_inputs", "plan_splits", "read_batches", "read_split"]

GLOB_CHARS = frozenset("*?[")


def _hidden(name: str) -> bool:
    """Hadoop's rule: names starting with ``_`` or ``.`` are not data (``_SUCCESS``, ...)."""
    return name.startswith(("_", "."))


def _match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Whether path ``parts`` match glob ``pattern`` segments (``**``: any depth)."""
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        return any(_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    if not parts or not fnmatch.fnmatchcase(parts[0], head):
        return False
    if _hidden(parts[0]) and not _hidden(head):
        return False
    return _match(pattern[1:], parts[1:])


def _expand(fs: FileSystem, path: str) -> list[FileInfo]:
    segments = path.split("/")
    first = next((i for i, s in enumerate(segments) if GLOB_CHARS & set(s)), None)
    if first is None:
        info = fs.info(path)
        if not info.is_dir:
            _check_no_commit(fs, [info])
            return [info]
        base = path.rstrip("/")
        entries = fs.list_dir(base, recursive=True)
        committed = outputs.committed_files(fs, base, entries)
        found = (
            committed
            if committed is not None
            else [
                f
                for f in entries
                if not f.is_dir and not any(_hidden(p) for p in f.path[len(base) :].split("/"))
            ]
        )
        if not found:
            msg = (
                f"{fs.url(path)} is a directory without data files "
                "(names starting with '_' or '.' are skipped): check the path"
            )
            raise FileNotFoundError(msg)
        return found
    base = "/".join(segments[:first]) or ("/" if path.startswith("/") else "")
    if not fs.info(base).is_dir:
        raise NotADirectoryError(f"{fs.url(base)} is not a directory (in {fs.url(path)})")
    pattern = segments[first:]
    prefix = len(base.rstrip("/")) + 1
    found = [
        f
        for f in fs.list_dir(base, recursive=True)
        if not f.is_dir and _match(pattern, f.path[prefix:].split("/"))
    ]
    if not found:
        raise FileNotFoundError(f"no files match {fs.url(path)} (check the pattern)")
    _check_no_commit(fs, found)
    return found


def _check_no_commit(fs: FileSystem, files: Sequence[FileInfo]) -> None:
    """Refuse files of a sink's output whose commit is running or was interrupted."""
    for folder in sorted({f.path.rstrip("/").rpartition("/")[0] for f in files}):
        outputs.check_no_commit(fs, folder or "/")


def list_inputs(
    url: str | Sequence[str], config: ConfigLike = None
) -> tuple[FileSystem, list[FileInfo]]:
    """The data files a URL names: a file, a directory (all files below it) or a glob.

    In directories and globs, names that start with ``_`` or ``.`` are skipped (``_SUCCESS``,
    ``_temporary``, ``.crc``), as Hadoop does. Globs take ``*``, ``?``, ``[...]`` within one
    path segment and ``**`` for any depth.

    Parameters
    ----------
    url:
        A URL or path, or a list of them (on one file system).
    config:
        The configuration (``env.config`` in a job; None: this process's).

    Returns
    -------
    (FileSystem, list of FileInfo)
        The file system and the files, sorted by path, each once.

    Raises
    ------
    FileNotFoundError
        A path does not exist, or a directory or glob holds no data file.
    PermissionError
        A path cannot be read.

    Examples
    --------
    >>> list_inputs("/no/such/dir/*.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no such file or directory: /no/such/dir (check the path)
    """
    cfg = resolved(config)
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("no input given: pass a URL, a path or a glob")
    files: dict[str, FileInfo] = {}
    first_fs: FileSystem | None = None
    for one in urls:
        fs, path = get_filesystem(one, cfg)
        if first_fs is not None and fs is not first_fs:
            msg = f"inputs on different file systems: {urls[0]!r} and {one!r} (plan them apart)"
            raise ValueError(msg)
        first_fs = fs
        for info in _expand(fs, path):
            files.setdefault(info.path, info)
    assert first_fs is not None
    return first_fs, [files[p] for p in sorted(files)]


def plan_splits(
    url: str | Sequence[str],
    n: int,
    *,
    format: str | Format | None = None,
    config: ConfigLike = None,
) -> list[Split]:
    """Cut the files a URL names into about ``n`` splits of about equal size.

    Parameters
    ----------
    url:
        A file, a directory, a glob, or a list of them, as :func:`list_inputs` takes.
    n:
        The number of readers. Text and CSV get ``n`` byte ranges over all files (a file has
        at least one split, a big one several); Parquet, Arrow IPC and NumPy whole row groups,
        record batches or row ranges.
    format:
        ``"text"``, ``"csv"``, ``"tsv"``, ``"parquet"``, ``"npy"``, ``"arrow"``, a
        :class:`~twister2.io.formats.Format` with options, or None to choose by extension.
    config:
        The configuration (``env.config`` in a job; None: this process's).

    Returns
    -------
    list of Split
        In file order, ``index`` 0, 1, ...; every process computes the same plan.

    Raises
    ------
    SchemaMismatchError
        Files of one input have different schemas (Parquet, Arrow, CSV headers, NumPy dtypes).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "n.txt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("".join(f"{i}\\n" for i in range(100)))
    >>> splits = plan_splits(path, 4)
    >>> [len(list(read_split(s))) for s in splits]
    [28, 24, 24, 24]
    """
    if n < 1:
        msg = f"the number of readers must be at least 1, got {n}"
        raise ValueError(msg)
    cfg = resolved(config)
    fs, files = list_inputs(url, cfg)
    fmt = get_format(format, [f.path for f in files])
    files = [f for f in files if f.size > 0]  # an empty part holds no records
    splits = fmt.plan(fs, files, n, cfg)
    return [split.with_index(i) for i, split in enumerate(splits)]


def read_batches(
    split: Split, config: ConfigLike = None, *, stats: ReadStats | None = None
) -> Iterator[Any]:
    """The split's records in batches: ``pyarrow.RecordBatch`` (``numpy.ndarray`` for .npy).

    Parameters
    ----------
    split:
        A split from :func:`plan_splits`.
    config:
        The configuration (``env.config`` in a job; None: this process's).
    stats:
        Counts records and skipped bad rows, if given.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("x\\ny\\n")
    >>> [b.num_rows for b in read_batches(plan_splits(path, 1)[0])]
    [2]
    """
    cfg = resolved(config)
    fs, path = get_filesystem(split.url, cfg)
    yield from split.format.read_batches(split, fs, path, cfg, stats or ReadStats())


def read_split(
    split: Split, config: ConfigLike = None, *, stats: ReadStats | None = None
) -> Iterator[Any]:
    """The split's records one by one: ``str`` lines, dicts of a row, or NumPy rows.

    Parameters
    ----------
    split:
        A split from :func:`plan_splits`.
    config:
        The configuration (``env.config`` in a job; None: this process's).
    stats:
        Counts records and skipped bad rows, if given.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("name,n\\nann,1\\nbob,2\\n")
    >>> list(read_split(plan_splits(path, 1)[0]))
    [{'name': 'ann', 'n': 1}, {'name': 'bob', 'n': 2}]
    """
    cfg = resolved(config)
    fs, path = get_filesystem(split.url, cfg)
    yield from split.format.read_records(split, fs, path, cfg, stats or ReadStats())

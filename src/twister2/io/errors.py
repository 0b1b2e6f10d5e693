"""The errors :mod:`twister2.io` raises: each names the path and says what to do.

Missing paths and permission problems are the built-in :class:`FileNotFoundError` and
:class:`PermissionError` (with a message naming the URL), so ordinary ``except`` clauses work;
the classes here cover what has no built-in counterpart.

Example
-------
>>> err = MalformedRecordError("data/a.csv", 7, "expected 3 fields, got 2")
>>> print(err)  # doctest: +ELLIPSIS
data/a.csv, line 7: expected 3 fields, got 2 (fix the row, or set io.csv.bad_rows to 'skip' ...)
>>> err.line
7
"""

from __future__ import annotations

__all__ = [
    "CommitError",
    "IncompleteOutputError",
    "MalformedRecordError",
    "NotARegularFileError",
    "OutputExistsError",
    "SchemaMismatchError",
    "StorageUnavailableError",
]


class MalformedRecordError(ValueError):
    """A record of an input file cannot be read: the file, the line (when known) and why."""

    def __init__(self, url: str, line: int | None, reason: str, *, hint: str = "") -> None:
        self.url = url
        self.line = line
        self.reason = reason
        where = f"{url}, line {line}" if line is not None else url
        hint = hint or "fix the row, or set io.csv.bad_rows to 'skip' to skip and count bad rows"
        super().__init__(f"{where}: {reason} ({hint})")


class SchemaMismatchError(ValueError):
    """Two files of one input have different schemas (or dtypes): both are named."""

    def __init__(self, url: str, other_url: str, detail: str) -> None:
        self.url = url
        self.other_url = other_url
        msg = (
            f"{url} does not match the schema of {other_url}: {detail} "
            "(read the files separately, or rewrite them with one schema)"
        )
        super().__init__(msg)


class StorageUnavailableError(ConnectionError):
    """A storage service (an S3 endpoint, an HDFS namenode) cannot be reached."""

    def __init__(self, url: str, endpoint: str, detail: str, *, hint: str = "") -> None:
        self.url = url
        self.endpoint = endpoint
        hint = hint or "check the endpoint in the config and that the service is up"
        super().__init__(f"cannot reach {endpoint} for {url}: {detail} ({hint})")


class OutputExistsError(FileExistsError):
    """A sink's output already exists and overwrite was not asked for."""

    def __init__(self, url: str, *, complete: bool) -> None:
        self.url = url
        state = (
            "holds a committed output (_SUCCESS)"
            if complete
            else "exists but holds no _SUCCESS (perhaps what a failed job left)"
        )
        super().__init__(
            f"output {url} {state}: choose another path, remove it, or pass overwrite=True"
        )


class IncompleteOutputError(OSError):
    """A sink's output is not complete: its commit is running or was interrupted, or a part is
    missing. Nothing of it was read."""

    def __init__(self, url: str, job_id: str, detail: str, *, hint: str = "") -> None:
        self.url = url
        self.job_id = job_id
        """The job that wrote (or was writing) the output ('' if unknown)."""
        hint = hint or "rerun the job that writes it"
        super().__init__(f"output {url} is incomplete: {detail}; nothing was read ({hint})")


class CommitError(RuntimeError):
    """A sink cannot commit: parts are missing or extra; nothing was committed."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(f"cannot commit output {url}: {detail}; nothing was committed")


class NotARegularFileError(OSError):
    """An input is a FIFO, a device or a socket: it has no size to plan splits by, and reading
    it might never end (``/dev/zero``), so it is refused."""

    def __init__(self, url: str, kind: str) -> None:
        self.url = url
        self.kind = kind
        super().__init__(
            f"input {url} is {kind}, not a regular file: twister2.io reads regular files "
            "only, whose size it knows (write the data to a file and read that)"
        )

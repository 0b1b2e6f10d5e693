"""What a sink's output directory holds, whether it is complete, and undoing a broken commit.

A sink (:mod:`twister2.io.sinks`) leaves these names in its output directory::

    _temporary/<job id>/...   parts waiting for the commit (and, during an overwrite, the
                              previous output under _temporary/<job id>/_previous/)
    _COMMITTING               the commit journal: which job is committing, from which process
    part-00000.csv ...        the committed parts
    _SUCCESS                  the commit marker: job id, format, parts and their sizes

The journal is written (durably) before the first rename of a commit and removed after
``_SUCCESS`` is in place, so a commit killed at any instant leaves either the journal or a
complete output. Readers (:func:`committed_files`) refuse a directory with a journal, with
parts but no ``_SUCCESS``, or whose ``_SUCCESS`` names a part that is missing or of another
size: :class:`~twister2.io.IncompleteOutputError`, naming the job. :func:`recover_output`
finishes or undoes an interrupted commit, putting the previous output back.

Example
-------
>>> import os, tempfile
>>> from twister2.io import Sink
>>> out = os.path.join(tempfile.mkdtemp(), "out")
>>> sink = Sink(out, "text", job_id="job-1")
>>> with sink.open(0) as writer:
...     writer.write("a line")
>>> fs, path = get_filesystem(out)
>>> committed_files(fs, path, fs.list_dir(path, recursive=True))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
twister2.io.errors.IncompleteOutputError: output ... is incomplete: it holds no _SUCCESS ...
>>> _ = sink.commit(1)
>>> [os.path.basename(f.path) for f in committed_files(fs, path, fs.list_dir(path))]
['part-00000.txt']
>>> recover_output(out)
'nothing to recover'
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import psutil

from twister2.io._settings import ConfigLike, resolved
from twister2.io.errors import CommitError, IncompleteOutputError
from twister2.io.filesystem import FileInfo, FileSystem, get_filesystem

__all__ = ["Journal", "committed_files", "read_journal", "read_marker", "recover_output"]

SUCCESS = "_SUCCESS"
TEMPORARY = "_temporary"
COMMITTING = "_COMMITTING"
PREVIOUS = "_previous"
PART_NAME = re.compile(r"part-\d{5,}(\.[A-Za-z0-9]+)?")
"""A sink's part (``part-00003.csv``); other ``part-*`` names may be anyone's data."""

Recovery = Literal["nothing to recover", "rolled forward", "rolled back"]


def base_name(path: str) -> str:
    """The last component of a ``/``-separated path."""
    return path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Journal:
    """The commit journal ``_COMMITTING``: the job that commits, its parts, its process."""

    job_id: str
    parts: tuple[str, ...]
    host: str
    pid: int
    pid_started: float
    started_at: float

    @classmethod
    def for_this_process(cls, job_id: str, parts: Sequence[str]) -> Journal:
        """The journal of a commit that this process is about to run."""
        return cls(
            job_id,
            tuple(parts),
            socket.gethostname(),
            os.getpid(),
            psutil.Process().create_time(),
            time.time(),
        )

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, url: str) -> Journal:
        try:
            raw = json.loads(data)
            return cls(
                str(raw["job_id"]),
                tuple(str(p) for p in raw["parts"]),
                str(raw["host"]),
                int(raw["pid"]),
                float(raw["pid_started"]),
                float(raw["started_at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            msg = f"{url} is not a twister2 commit journal ({exc}); remove it by hand"
            raise IncompleteOutputError(url, "", msg) from exc

    def committer_alive(self) -> bool | None:
        """Whether the committing process still runs (None: it ran on another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return abs(proc.create_time() - self.pid_started) < 1.0
        except psutil.NoSuchProcess:
            return False
        except psutil.Error:
            return None

    def describe(self) -> str:
        return f"job {self.job_id} (pid {self.pid} on {self.host})"


def read_journal(fs: FileSystem, path: str) -> Journal | None:
    """The commit journal of the output directory ``path``, if a commit is under way or was
    interrupted."""
    journal = fs.join(path, COMMITTING)
    if not fs.exists(journal):
        return None
    with fs.open_input(journal) as f:
        return Journal.from_bytes(f.read(), fs.url(journal))


def read_marker(fs: FileSystem, path: str) -> dict[str, Any] | None:
    """The ``_SUCCESS`` marker of the output directory ``path``: None if there is none, an
    empty dict if it is not twister2's (Hadoop and Spark write an empty file)."""
    marker = fs.join(path, SUCCESS)
    if not fs.exists(marker):
        return None
    with fs.open_input(marker) as f:
        data = f.read()
    try:
        found = json.loads(data)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _interrupted(url: str, journal: Journal) -> IncompleteOutputError:
    alive = journal.committer_alive()
    if alive:
        detail = f"{journal.describe()} is committing it now"
        hint = "read it after that job has ended"
    elif alive is None:
        detail = f"{journal.describe()} began a commit that has not finished"
        hint = (
            "read it after that job has ended; if it is dead, "
            f"twister2.io.recover_output({url!r}, force=True) puts the previous output back"
        )
    else:
        detail = f"the commit of {journal.describe()} did not finish"
        hint = (
            f"twister2.io.recover_output({url!r}) puts the previous output back, as the next "
            "job that writes it does; or rerun the job"
        )
    return IncompleteOutputError(url, journal.job_id, detail, hint=hint)


def committed_files(
    fs: FileSystem, path: str, entries: Sequence[FileInfo]
) -> list[FileInfo] | None:
    """The data files a reader of the directory ``path`` may read, checked to be complete.

    ``entries`` is the directory's listing (recursive or not). Returns the parts that
    ``_SUCCESS`` names, or None when ``path`` is no sink's output (no ``_SUCCESS``,
    ``_temporary`` or ``part-NNNNN`` file: the caller reads its files as they are) or its
    ``_SUCCESS`` lists no parts (Hadoop's, Spark's).

    Raises
    ------
    IncompleteOutputError
        A commit is running or was interrupted (``_COMMITTING``), the directory holds parts
        or ``_temporary`` but no ``_SUCCESS``, or a part that ``_SUCCESS`` names is missing
        or has another size.
    """
    base = path.rstrip("/")
    url = fs.url(base)
    top = {base_name(e.path): e for e in entries if e.path.rstrip("/").rpartition("/")[0] == base}
    marker = read_marker(fs, base) if SUCCESS in top else None
    if COMMITTING in top:
        journal = read_journal(fs, base)
        if journal is not None and (marker is None or marker.get("job_id") != journal.job_id):
            raise _interrupted(url, journal)
    if marker is None:
        if TEMPORARY in top or any(PART_NAME.fullmatch(name) for name in top):
            jobs = _temporary_jobs(fs, base) if TEMPORARY in top else []
            by = f"job {', '.join(jobs)} did not commit it" if jobs else "its job did not commit"
            raise IncompleteOutputError(
                url,
                ", ".join(jobs),
                f"it holds no _SUCCESS ({by})",
                hint="rerun the job; to read what is there anyway, read its files by a glob",
            )
        return None
    parts = marker.get("parts")
    if not isinstance(parts, list):
        return None
    sizes = marker.get("sizes") if isinstance(marker.get("sizes"), dict) else {}
    job = str(marker.get("job_id", ""))
    files = []
    for name in parts:
        entry = top.get(str(name))
        if entry is None or entry.is_dir:
            detail = f"{name}, a part of job {job} that _SUCCESS names, is missing"
            raise IncompleteOutputError(url, job, detail, hint="rerun the job")
        want = sizes.get(name) if sizes else None
        if want is not None and int(want) != entry.size:
            detail = f"{name} of job {job} has {entry.size} bytes, _SUCCESS says {want}"
            raise IncompleteOutputError(url, job, detail, hint="rerun the job")
        files.append(entry)
    return files


def check_no_commit(fs: FileSystem, path: str) -> None:
    """Raise :class:`IncompleteOutputError` if a commit into the directory ``path`` is running
    or was interrupted (what a reader of single files or globs checks)."""
    journal = read_journal(fs, path)
    if journal is not None:
        marker = read_marker(fs, path)
        if marker is None or marker.get("job_id") != journal.job_id:
            raise _interrupted(fs.url(path), journal)


def _temporary_jobs(fs: FileSystem, path: str) -> list[str]:
    return [base_name(e.path) for e in fs.list_dir(fs.join(path, TEMPORARY)) if e.is_dir]


def recover(fs: FileSystem, path: str, *, force: bool = False) -> Recovery:
    """Finish or undo an interrupted commit into ``path`` (see :func:`recover_output`)."""
    journal = read_journal(fs, path)
    if journal is None:
        return "nothing to recover"
    url = fs.url(path)
    if not force:
        alive = journal.committer_alive()
        if alive is None or alive:
            why = "is still running" if alive else "ran on another host, so it cannot be checked"
            msg = (
                f"{journal.describe()} began a commit that has not finished, and its process "
                f"{why}; wait for it to end, or if it is dead call "
                f"twister2.io.recover_output({url!r}, force=True)"
            )
            raise CommitError(url, msg)
    temporary = fs.join(path, TEMPORARY, journal.job_id)
    marker = read_marker(fs, path)
    if marker is not None and marker.get("job_id") == journal.job_id:
        outcome: Recovery = "rolled forward"  # the new output is complete: keep it
    else:
        outcome = "rolled back"
        # The new parts go back where they waited. A part is new if it is no longer waiting:
        # the journal is written when all of them wait, and the old output is set aside
        # before the first is placed, so each name is in one place or the other.
        waited = fs.exists(temporary)
        for name in journal.parts if waited else ():
            placed, waiting = fs.join(path, name), fs.join(temporary, name)
            if fs.exists(placed) and not fs.exists(waiting):
                fs.move(placed, waiting)
        previous = fs.join(temporary, PREVIOUS)
        if fs.exists(previous):  # the old output comes back, its _SUCCESS last
            entries = sorted(fs.list_dir(previous), key=lambda e: base_name(e.path) == SUCCESS)
            for entry in entries:
                fs.move(entry.path, fs.join(path, base_name(entry.path)))
            fs.delete(previous)
        fs.sync(path)
    fs.delete(fs.join(path, COMMITTING))
    fs.sync(path)
    if outcome == "rolled forward":
        fs.delete(fs.join(path, TEMPORARY))
    return outcome


def recover_output(url: str, config: ConfigLike = None, *, force: bool = False) -> Recovery:
    """Finish or undo a sink's commit into ``url`` that was interrupted (its process killed).

    If the interrupted commit had written its ``_SUCCESS``, the new output is complete and
    stays ("rolled forward"); else its parts go back under ``_temporary`` and the output that
    was there before (an overwrite keeps it under ``_temporary/<job>/_previous`` until the
    commit ends) comes back ("rolled back"). A sink's commit runs this first, so the next job
    that writes ``url`` recovers it too.

    Parameters
    ----------
    url:
        The output directory.
    config:
        The configuration (None: this process's).
    force:
        Recover even if the committing process may still be running (it ran on another host,
        or its pid is alive): only when you know that it is dead.

    Raises
    ------
    CommitError
        The committing process may still be running (and ``force`` is off).

    Examples
    --------
    >>> import tempfile
    >>> recover_output(tempfile.mkdtemp())
    'nothing to recover'
    """
    fs, path = get_filesystem(url, resolved(config))
    return recover(fs, path.rstrip("/") or path, force=force)

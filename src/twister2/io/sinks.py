"""Sinks that commit atomically: part files under a temporary name, then one commit.

The protocol (Hadoop's ``FileOutputCommitter``, and Twister2's)::

    <output>/_temporary/<job id>/part-00003.csv.inprogress   while task 3 writes
    <output>/_temporary/<job id>/part-00003.csv              when task 3 closed its writer
    <output>/_COMMITTING                                     while the job commits
    <output>/part-00003.csv, ..., then <output>/_SUCCESS     when the job has committed

Each task writes its part through :meth:`Sink.open` (the part is fsynced before it takes its
done name); once every task has closed its writer, one process (worker 0 after a barrier, or
the driver) runs :meth:`Sink.commit`: it checks that every part is there, writes the journal
``_COMMITTING``, sets an old output aside (overwrite), moves the parts into place, writes
``_SUCCESS`` (with each part's size) atomically and durably, and removes the journal. A job
killed before or during that leaves ``_temporary`` or the journal, which readers refuse with
:class:`~twister2.io.IncompleteOutputError` (see :mod:`twister2.io.outputs`): nothing that
looks complete, and the old output is never lost. An output that already exists is an error
unless ``overwrite=True``.

Example
-------
>>> import os, tempfile
>>> out = os.path.join(tempfile.mkdtemp(), "out")
>>> sink = Sink(out, "text", job_id="job-1")
>>> for part in range(2):
...     with sink.open(part) as writer:
...         writer.write(f"hello from part {part}")
>>> sorted(os.listdir(out))
['_temporary']
>>> [os.path.basename(u) for u in sink.commit(2)]
['part-00000.txt', 'part-00001.txt']
>>> sorted(os.listdir(out))
['_SUCCESS', 'part-00000.txt', 'part-00001.txt']
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal, Protocol

from twister2.io._settings import ConfigLike, resolved
from twister2.io.errors import CommitError, OutputExistsError
from twister2.io.filesystem import get_filesystem
from twister2.io.formats.base import Format
from twister2.io.formats.registry import get_format
from twister2.io.outputs import (
    COMMITTING,
    PREVIOUS,
    SUCCESS,
    TEMPORARY,
    Journal,
    base_name,
    recover,
)

__all__ = ["JobEnv", "PartWriter", "Sink"]

IN_PROGRESS = ".inprogress"
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class JobEnv(Protocol):
    """What :meth:`Sink.for_job` and :meth:`Sink.commit_job` use of a ``WorkerEnv``."""

    job_id: str
    worker_id: int
    num_workers: int
    config: Mapping[str, Any]

    def barrier(self, name: str = ..., timeout: float | None = ...) -> None: ...


class Sink:
    """An output directory that tasks write ``part-NNNNN`` files into, committed once.

    Parameters
    ----------
    url:
        The output directory (local path, ``persistent://``, ``s3://``, ``hdfs://``, ...).
    format:
        A format name (``text``, ``csv``, ``parquet``, ``npy``, ``arrow``) or a
        :class:`~twister2.io.formats.Format`.
    job_id:
        The same for every task of one job, different between jobs (``env.job_id``): it names
        the job's temporary directory, so parts of a failed earlier run are never committed.
    overwrite:
        Replace an existing output at commit (else it is an :class:`OutputExistsError`).
    config:
        The configuration (``env.config`` in a job; None: this process's).
    """

    def __init__(
        self,
        url: str,
        format: str | Format = "text",
        *,
        job_id: str,
        overwrite: bool = False,
        config: ConfigLike = None,
    ) -> None:
        if not _JOB_ID.fullmatch(job_id):
            msg = f"job_id must be letters, digits, '_', '.', '-' (got {job_id!r})"
            raise ValueError(msg)
        self.config = resolved(config)
        self.format = get_format(format)
        self.fs, self.path = get_filesystem(url, self.config)
        self.path = self.path.rstrip("/") or self.path
        self.url = self.fs.url(self.path)
        self.job_id = job_id
        self.overwrite = overwrite
        self.temporary = self.fs.join(self.path, TEMPORARY, job_id)

    @classmethod
    def for_job(
        cls, env: JobEnv, url: str, format: str | Format = "text", *, overwrite: bool = False
    ) -> Sink:
        """The sink of ``url`` for the job ``env`` belongs to (its job id and config)."""
        return cls(url, format, job_id=env.job_id, overwrite=overwrite, config=env.config)

    def part_name(self, part: int) -> str:
        """The file name of part ``part``: ``part-00003.csv``."""
        return f"part-{part:05d}{self.format.extension}"

    def state(self) -> Literal["absent", "complete", "incomplete", "interrupted"]:
        """``complete`` (it holds ``_SUCCESS``), ``incomplete`` (it holds other data),
        ``interrupted`` (a commit is running or was cut short: the commit decides, after
        :func:`~twister2.io.recover_output`) or ``absent`` (nothing, or only ``_temporary``)."""
        if not self.fs.exists(self.path):
            return "absent"
        info = self.fs.info(self.path)
        if not info.is_dir:
            return "incomplete"
        names = {base_name(e.path) for e in self.fs.list_dir(self.path)}
        names.discard(TEMPORARY)
        if COMMITTING in names:
            return "interrupted"
        if SUCCESS in names:
            return "complete"
        return "incomplete" if names else "absent"

    def check_output(self) -> None:
        """Raise :class:`OutputExistsError` if the output exists and overwrite is off."""
        if not self.overwrite:
            state = self.state()
            if state in ("complete", "incomplete"):
                raise OutputExistsError(self.url, complete=state == "complete")

    def open(self, part: int) -> PartWriter:
        """A writer of part ``part`` (use it in a ``with`` block; one per task)."""
        if part < 0:
            msg = f"a part number is 0 or more, got {part}"
            raise ValueError(msg)
        self.check_output()
        return PartWriter(self, part)

    def commit(self, num_parts: int) -> list[str]:
        """Commit parts ``0 .. num_parts - 1``: move them into place, then write ``_SUCCESS``.

        Run it once, after every task closed its writer. Raises :class:`CommitError`, with
        nothing committed, if a part is missing (or one beyond ``num_parts`` is there), and
        :class:`OutputExistsError` if the output exists and overwrite is off.

        A commit killed at any instant leaves the journal ``_COMMITTING`` (readers refuse the
        output, :func:`~twister2.io.recover_output` or the next commit puts the previous
        output back) or a complete output; an overwritten output waits under ``_temporary``
        until the new one is complete.

        Returns
        -------
        list of str
            The URLs of the committed parts.
        """
        fs = self.fs
        expected = [self.part_name(i) for i in range(num_parts)]
        self._check_parts(expected)
        recover(fs, self.path)  # an earlier commit that was killed: finish or undo it
        state = self.state()
        if state != "absent" and not self.overwrite:
            raise OutputExistsError(self.url, complete=state == "complete")
        journal = Journal.for_this_process(self.job_id, expected)
        fs.write_atomic(fs.join(self.path, COMMITTING), journal.to_bytes(), staging=self.temporary)
        if state != "absent":
            self._set_old_output_aside()
        for name in expected:
            fs.move(fs.join(self.temporary, name), fs.join(self.path, name))
        fs.sync(self.path)
        marker = {
            "job_id": self.job_id,
            "format": self.format.name,
            "parts": expected,
            "sizes": {name: fs.info(fs.join(self.path, name)).size for name in expected},
            "committed_at": time.time(),
        }
        marker_bytes = json.dumps(marker).encode() + b"\n"
        fs.write_atomic(fs.join(self.path, SUCCESS), marker_bytes, staging=self.temporary)
        fs.delete(fs.join(self.path, COMMITTING))
        fs.sync(self.path)
        fs.delete(fs.join(self.path, TEMPORARY))
        return [fs.url(fs.join(self.path, name)) for name in expected]

    def _check_parts(self, expected: list[str]) -> None:
        """Raise :class:`CommitError` unless exactly the ``expected`` parts wait to commit."""
        fs = self.fs
        present: set[str] = set()
        if fs.exists(self.temporary):
            present = {base_name(e.path) for e in fs.list_dir(self.temporary) if not e.is_dir}
        missing = [name for name in expected if name not in present]
        extra = sorted(
            n
            for n in present
            if n.startswith("part-") and n not in expected and IN_PROGRESS not in n
        )
        if missing or extra:
            problems = []
            if missing:
                shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                problems.append(f"{len(missing)} of {len(expected)} parts are missing ({shown})")
            if extra:
                problems.append(f"parts beyond {len(expected)} are there ({', '.join(extra[:5])})")
            hint = "every task must close its writer before the commit runs"
            raise CommitError(
                self.url, "; ".join(problems) + f" in {fs.url(self.temporary)}; {hint}"
            )

    def _set_old_output_aside(self) -> None:
        """Move the old output under ``_temporary/<job>/_previous``, ``_SUCCESS`` first: it
        stays there, whole, until the new output is complete."""
        fs = self.fs
        previous = fs.join(self.temporary, PREVIOUS)
        fs.make_dirs(previous)
        entries = [
            e for e in fs.list_dir(self.path) if base_name(e.path) not in (TEMPORARY, COMMITTING)
        ]
        entries.sort(key=lambda e: base_name(e.path) != SUCCESS)
        for entry in entries:
            fs.move(entry.path, fs.join(previous, base_name(entry.path)))
        fs.sync(self.path)

    def abort(self) -> None:
        """Remove this job's temporary files (what a failed job would leave)."""
        self.fs.delete(self.temporary)

    def commit_job(self, env: JobEnv, *, timeout: float | None = None) -> None:
        """In a job: wait for every worker, commit on worker 0 (part per worker), wait again.

        Every worker calls it after closing its writer of part ``env.worker_id``.
        """
        env.barrier(f"twister2.io.sink {self.url}", timeout)
        if env.worker_id == 0:
            self.commit(env.num_workers)
        env.barrier(f"twister2.io.sink {self.url} committed", timeout)


class PartWriter:
    """Writes one part of a :class:`Sink` under a temporary name.

    :meth:`close` (the end of a ``with`` block) completes the file and renames it from
    ``part-N.ext.inprogress`` to ``part-N.ext`` in the job's temporary directory; an
    exception in the block removes it instead.
    """

    def __init__(self, sink: Sink, part: int) -> None:
        fs = sink.fs
        self.sink = sink
        self.part = part
        self.name = sink.part_name(part)
        self.done_path = fs.join(sink.temporary, self.name)
        self.path = self.done_path + IN_PROGRESS
        self.closed = False
        self.stream = fs.open_output(self.path)
        try:
            self.writer = sink.format.writer(self.stream, fs.url(self.path), sink.config)
        except BaseException:
            self.stream.close()
            raise

    @property
    def rows(self) -> int:
        """Records written so far."""
        return self.writer.rows

    def write(self, record: Any) -> None:
        """Write one record (a ``str`` line, a dict of a row, a NumPy row)."""
        self.writer.write(record)

    def write_batch(self, batch: Any) -> None:
        """Write many records: a ``pyarrow`` batch or table, a NumPy array, a list."""
        self.writer.write_batch(batch)

    def close(self) -> None:
        """Complete the part (it waits, under its final name, for the commit)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.writer.finish()
            self.stream.close()
            fs = self.sink.fs
            fs.sync(self.path)  # the bytes are on disk before the name says the part is done
            fs.move(self.path, self.done_path)
            fs.sync(self.sink.temporary)
        except BaseException:
            self._remove()
            self.sink.fs.delete(self.done_path)
            raise

    def abort(self) -> None:
        """Abandon the part: remove what was written."""
        if self.closed:
            return
        self.closed = True
        self.writer.discard()
        self._remove()

    def _remove(self) -> None:
        if not self.stream.closed:
            self.stream.close()
        self.sink.fs.delete(self.path)

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

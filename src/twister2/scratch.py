"""Private scratch directories: the job's and each worker's, 0700, under a base nobody else owns.

The base is ``job.scratch_dir``, by default ``<system temp>/twister2-<uid>``. A base that another
user owns, or that others may write without the sticky bit (``/tmp`` has it), is refused: who
controls the base could read the job's spill files or swap its directories for links. Job and
worker directories are made 0700 (files in them come from ``mkstemp``: 0600).

Example
-------
>>> import tempfile
>>> base = Path(tempfile.mkdtemp())
>>> job = job_scratch(base, "demo-1")
>>> oct(job.stat().st_mode & 0o777), oct(worker_scratch(job, 0).stat().st_mode & 0o777)
('0o700', '0o700')
>>> remove_scratch(job); job.exists()
False
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import psutil

from twister2.errors import JobStartError

__all__ = [
    "ScratchError",
    "default_base",
    "job_scratch",
    "reclaim_dead_jobs",
    "remove_scratch",
    "scratch_base",
    "worker_scratch",
]

OWNER_FILE = "owner.json"
"""In a job's scratch directory: the submitting process (pid and start time) that owns it."""


class ScratchError(JobStartError, PermissionError):
    """A scratch directory cannot be used safely; the message names it and the fix."""


def default_base() -> Path:
    """``<system temp>/twister2-<uid>``: one base per user, so users never share one."""
    return Path(tempfile.gettempdir()) / f"twister2-{os.geteuid()}"


def scratch_base(configured: str | os.PathLike[str] | None) -> Path:
    """The base of the job scratch directories: ``configured`` (``job.scratch_dir``) or the
    default.

    >>> scratch_base("/data/scratch")
    PosixPath('/data/scratch')
    """
    return Path(configured) if configured else default_base()


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_base(base: Path) -> None:
    """Create ``base`` (0700) if it is missing; refuse one that is not safe to use.

    Raises :class:`ScratchError` when ``base`` is not a directory, belongs to another user (root
    counts as trusted), or is writable by others without the sticky bit.
    """
    with contextlib.suppress(FileExistsError):
        base.mkdir(parents=True, mode=0o700)
    fix = "set job.scratch_dir to a directory of your own (e.g. ~/.twister2/scratch)"
    try:
        info = base.lstat()
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in (os.geteuid(), 0):
                msg = f"the scratch base {base} is a link owned by {_owner(info.st_uid)}; {fix}"
                raise ScratchError(msg)
            info = base.stat()
    except FileNotFoundError as exc:
        msg = f"the scratch base {base} is a dangling link; {fix}"
        raise ScratchError(msg) from exc
    if not stat.S_ISDIR(info.st_mode):
        msg = f"the scratch base {base} is not a directory; {fix}"
        raise ScratchError(msg)
    if info.st_uid not in (os.geteuid(), 0):
        msg = (
            f"the scratch base {base} is owned by {_owner(info.st_uid)}, not by you: they could "
            f"read or replace the job's scratch files; {fix}"
        )
        raise ScratchError(msg)
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        msg = (
            f"the scratch base {base} is writable by every user and has no sticky bit "
            f"(mode {oct(info.st_mode & 0o7777)}): others could replace the job's directories; "
            f"run `chmod o-w {base}` (or `chmod +t`), or {fix}"
        )
        raise ScratchError(msg)


def _private_dir(path: Path) -> Path:
    """Make ``path`` a directory of ours with mode 0700 (creating it if missing)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        msg = (
            f"the scratch directory {path} exists but is not a directory of yours "
            f"(owned by {_owner(info.st_uid)}); remove it or set job.scratch_dir elsewhere"
        )
        raise ScratchError(msg)
    if info.st_mode & 0o777 != 0o700:
        path.chmod(0o700)
    return path


def job_scratch(base: Path, job_id: str) -> Path:
    """Check ``base``, then create the job's directory ``base/job_id`` (0700) and record this
    process as its owner (so a later command can reclaim it if this process dies)."""
    check_base(base)
    folder = _private_dir(base / job_id)
    proc = psutil.Process()
    fd = os.open(folder / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": proc.pid, "create_time": proc.create_time()}, f)
    return folder


def worker_scratch(job_folder: Path, worker_id: int) -> Path:
    """The private directory of worker ``worker_id`` in ``job_folder`` (0700, created if missing:
    on another host the job's directory is made here, with the same checks)."""
    check_base(job_folder.parent)
    _private_dir(job_folder)
    return _private_dir(job_folder / f"worker-{worker_id}")


def remove_scratch(job_folder: Path) -> None:
    """Remove a job's scratch directory and everything in it (missing is fine)."""
    shutil.rmtree(job_folder, ignore_errors=True)


def _owner_alive(job_folder: Path) -> bool:
    try:
        owner = json.loads((job_folder / OWNER_FILE).read_text(encoding="utf-8"))
        proc = psutil.Process(int(owner["pid"]))
        return abs(proc.create_time() - float(owner["create_time"])) < 1.0
    except psutil.NoSuchProcess:
        return False
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return True  # no owner file (yet) or unreadable: not provably dead, keep it


def reclaim_dead_jobs(base: Path) -> list[Path]:
    """Remove the scratch directories under ``base`` whose submitting process is gone.

    A submitter killed with SIGKILL cannot clean up; the next job on this host does it.
    Returns the directories removed.
    """
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for folder in entries:
        if folder.is_dir() and not folder.is_symlink() and not _owner_alive(folder):
            remove_scratch(folder)
            removed.append(folder)
    return removed

"""File systems behind one interface, chosen by the URL's scheme.

=================================  ===============================================================
URL                                file system
=================================  ===============================================================
``/data/x.csv``, ``file:///data``  the local file system (an NFS mount is a local path)
``persistent://ckpt/job1``         under ``storage.persistent_root`` (a shared dir or a URL)
``volatile://spill/w0``            under ``storage.volatile_root`` (each worker's local disk)
``s3://bucket/key``                S3 or an S3-compatible store (``io.s3.*`` keys)
``hdfs://namenode:8020/path``      HDFS through ``pyarrow.fs.HadoopFileSystem`` (needs libhdfs)
=================================  ===============================================================

Each backend is a :class:`FileSystem` (an ABC over a ``pyarrow.fs`` file system) and knows
where a byte range's blocks live (:meth:`FileSystem.block_locations`), which is what the input
splits' hosts come from. New schemes are added with :func:`register_filesystem`.

Example
-------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> fs, path = get_filesystem(os.path.join(folder, "a.txt"))
>>> fs.write_atomic(path, b"hello\\n")
>>> fs.info(path).size, fs.scheme
(6, 'file')
>>> hosts_for_range([BlockLocation(0, 10, ("h1",)), BlockLocation(10, 10, ("h2",))], 5, 10)
('h1', 'h2')
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import socket
import stat
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import psutil
import pyarrow as pa
import pyarrow.fs as pafs

from twister2.config import Config
from twister2.io import storage
from twister2.io._settings import ConfigLike, resolved
from twister2.io.errors import NotARegularFileError

__all__ = [
    "BlockLocation",
    "FileInfo",
    "FileSystem",
    "LocalFileSystem",
    "get_filesystem",
    "hosts_for_range",
    "register_filesystem",
]

NETWORK_FS_TYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smbfs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "glusterfs"}
)
"""Mount types whose files every host sees (their splits name no host)."""


@dataclass(frozen=True)
class FileInfo:
    """A file or directory: its URL, its path on its file system, size and kind."""

    url: str
    path: str
    size: int
    is_dir: bool = False


@dataclass(frozen=True)
class BlockLocation:
    """A byte range of a file and the hosts that hold a copy of it."""

    offset: int
    length: int
    hosts: tuple[str, ...]


def hosts_for_range(
    blocks: Sequence[BlockLocation], start: int, length: int, *, max_hosts: int = 3
) -> tuple[str, ...]:
    """Return the hosts holding the most bytes of ``[start, start + length)``, most first.

    Like Hadoop's split hosts: each host is weighed by the bytes of the range that its blocks
    hold; ties go by name, so every process computes the same answer.

    Parameters
    ----------
    blocks:
        The file's blocks (any order), as :meth:`FileSystem.block_locations` gives them.
    start, length:
        The byte range (a zero length counts as the one byte at ``start``).
    max_hosts:
        Most hosts to return.

    Examples
    --------
    >>> blocks = [BlockLocation(0, 100, ("a", "b")), BlockLocation(100, 100, ("b", "c"))]
    >>> hosts_for_range(blocks, 50, 100)
    ('b', 'a', 'c')
    >>> hosts_for_range(blocks, 150, 10, max_hosts=1)
    ('b',)
    """
    end = start + max(length, 1)
    held: dict[str, int] = {}
    for block in blocks:
        overlap = min(end, block.offset + block.length) - max(start, block.offset)
        if overlap > 0:
            for host in block.hosts:
                held[host] = held.get(host, 0) + overlap
    return tuple(sorted(held, key=lambda host: (-held[host], host))[:max_hosts])


class FileSystem(ABC):
    """One file system: a ``pyarrow.fs`` file system, its URLs and its block locations.

    Paths are the file system's own (``/data/x`` locally and on HDFS, ``bucket/key`` on S3);
    :meth:`url` turns a path back into the URL a user would write. Every method raises
    errors that name the URL: :class:`FileNotFoundError`, :class:`PermissionError`,
    :class:`twister2.io.StorageUnavailableError` and :class:`OSError`.
    """

    scheme: ClassVar[str]

    def __init__(self, arrow: pafs.FileSystem, url_prefix: str) -> None:
        self.arrow = arrow
        """The ``pyarrow.fs`` file system, for pyarrow's readers and writers."""
        self.url_prefix = url_prefix

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, config: Config) -> tuple[FileSystem, str]:
        """The file system a URL of this scheme names, and the path within it."""

    @abstractmethod
    def block_locations(self, path: str, size: int) -> list[BlockLocation]:
        """The file's blocks and their hosts (empty when the file system knows none)."""

    # ----------------------------------------------------------------------- naming

    def url(self, path: str) -> str:
        """The URL of ``path`` on this file system."""
        return self.url_prefix + path

    def join(self, path: str, *names: str) -> str:
        """``path`` with ``names`` appended, ``/``-separated."""
        return "/".join([path.rstrip("/"), *names])

    # ---------------------------------------------------------------------- queries

    def info(self, path: str) -> FileInfo:
        """Size and kind of ``path``; :class:`FileNotFoundError` naming it if it is absent."""
        with self.translate_errors(path, "read"):
            found = self.arrow.get_file_info(path)
        if found.type == pafs.FileType.NotFound:
            raise self.not_found(path)
        return self._file_info(found)

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists (a file or a directory)."""
        with self.translate_errors(path, "read"):
            return bool(self.arrow.get_file_info(path).type != pafs.FileType.NotFound)

    def list_dir(self, path: str, *, recursive: bool = False) -> list[FileInfo]:
        """Every file and directory under ``path``, sorted by path."""
        with self.translate_errors(path, "list"):
            found = self.arrow.get_file_info(pafs.FileSelector(path, recursive=recursive))
        infos = [self._file_info(item) for item in found]
        return sorted(infos, key=lambda info: info.path)

    def _file_info(self, found: pafs.FileInfo) -> FileInfo:
        """A :class:`FileInfo` of a file or directory; a FIFO, device or socket is refused."""
        if found.type == pafs.FileType.Directory:
            return FileInfo(self.url(found.path), found.path, 0, True)
        if found.type != pafs.FileType.File or found.size is None:
            raise NotARegularFileError(self.url(found.path), self.special_kind(found.path))
        return FileInfo(self.url(found.path), found.path, int(found.size), False)

    def special_kind(self, path: str) -> str:
        """What ``path`` is when it is neither a file nor a directory (for error messages)."""
        return "not a file or directory"

    def hosts(self, path: str, start: int, length: int, size: int) -> tuple[str, ...]:
        """The hosts that hold the most of bytes ``[start, start + length)`` of ``path``."""
        return hosts_for_range(self.block_locations(path, size), start, length)

    # ------------------------------------------------------------------ reads, writes

    def open_input(self, path: str) -> pa.NativeFile:
        """A random-access reader of the file ``path``."""
        with self.translate_errors(path, "read"):
            return self.arrow.open_input_file(path)

    def open_output(self, path: str) -> pa.NativeFile:
        """A writer of the file ``path`` (its parent directories are made first)."""
        parent = path.rstrip("/").rpartition("/")[0]
        if parent:
            self.make_dirs(parent)
        with self.translate_errors(path, "write"):
            return self.arrow.open_output_stream(path)

    def make_dirs(self, path: str) -> None:
        """Make the directory ``path`` and its parents (no error if it exists)."""
        with self.translate_errors(path, "write"):
            self.arrow.create_dir(path, recursive=True)

    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` (a file replaces ``dst``)."""
        with self.translate_errors(src, "move"):
            self.arrow.move(src, dst)

    def delete(self, path: str) -> None:
        """Remove the file or directory tree ``path``; nothing happens if it is absent."""
        with self.translate_errors(path, "delete"):
            found = self.arrow.get_file_info(path)
            if found.type == pafs.FileType.Directory:
                self.arrow.delete_dir(path)
            elif found.type != pafs.FileType.NotFound:
                self.arrow.delete_file(path)

    def sync(self, path: str) -> None:
        """Make the file or directory ``path`` durable: what was written to it, or renamed in
        or out of it, survives a crash of the machine.

        Nothing to do here: object stores and HDFS make a file durable when it is closed.
        The local file system fsyncs.
        """
        return

    def write_atomic(self, path: str, data: bytes, *, staging: str | None = None) -> None:
        """Write ``data`` to ``path`` so that readers see all of it or nothing, durably.

        This writes a hidden file in ``staging`` (default: beside ``path``; it must be on the
        same file system), syncs it, renames it over ``path`` (renames are atomic on local,
        NFS and HDFS file systems) and syncs the directory; object stores override it with one
        upload. A process killed meanwhile leaves the hidden file in ``staging``.
        """
        head, _, name = path.rpartition("/")
        temporary = f"{staging or head}/.{name}.{uuid.uuid4().hex}.tmp"
        try:
            with self.open_output(temporary) as out:
                out.write(data)
            self.sync(temporary)
            self.move(temporary, path)
            self.sync(head or "/")
        except BaseException:
            with contextlib.suppress(OSError):
                self.delete(temporary)
            raise

    # ------------------------------------------------------------------------ errors

    def not_found(self, path: str) -> FileNotFoundError:
        """The error for a missing ``path``."""
        return FileNotFoundError(f"no such file or directory: {self.url(path)} (check the path)")

    @contextlib.contextmanager
    def translate_errors(self, path: str, action: str) -> Iterator[None]:
        """Re-raise pyarrow's errors as ones that name the URL and say what to do."""
        try:
            yield
        except OSError as exc:
            raise self.translate(exc, path, action) from exc

    def translate(self, exc: OSError, path: str, action: str) -> OSError:
        """The error to raise for ``exc`` from ``action`` on ``path``."""
        url = self.url(path)
        if isinstance(exc, FileNotFoundError):
            return self.not_found(path)
        if isinstance(exc, PermissionError):
            return PermissionError(
                f"permission denied to {action} {url} (check the owner and mode of the file "
                f"and its directories, and the user the workers run as): {exc}"
            )
        if isinstance(exc, NotADirectoryError):
            return NotADirectoryError(
                f"cannot {action} {url}: a component of the path is a file, not a directory"
            )
        if isinstance(exc, IsADirectoryError) or "is a directory" in str(exc):
            return IsADirectoryError(f"cannot {action} {url}: it is a directory, not a file")
        return OSError(f"cannot {action} {url}: {exc}")


# ---------------------------------------------------------------------------- local


class LocalFileSystem(FileSystem):
    """The local file system; an NFS (or other shared) mount is part of it.

    A file's one block is on this host, except on a shared file system (under a local
    ``storage.persistent_root`` with ``storage.persistent_shared``, or on an NFS, Lustre, GPFS
    ... mount), whose files every host sees, so they name no host.
    """

    scheme = "file"

    def __init__(self, shared_roots: Sequence[str] = ()) -> None:
        super().__init__(pafs.LocalFileSystem(), "")
        self.shared_roots = tuple(os.path.join(os.path.realpath(r), "") for r in shared_roots)

    @classmethod
    def from_url(cls, url: str, config: Config) -> tuple[FileSystem, str]:
        path = urlsplit(url).path if url.startswith("file:") else url
        root = storage.persistent_root(config)
        shared = (root,) if bool(config["storage.persistent_shared"]) and "://" not in root else ()
        return _cached(cls, shared), os.path.abspath(os.path.expanduser(path))

    def sync(self, path: str) -> None:
        with self.translate_errors(path, "sync"):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def special_kind(self, path: str) -> str:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return "not a file or directory"
        kinds = [
            (stat.S_ISFIFO, "a FIFO (named pipe)"),
            (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"),
            (stat.S_ISSOCK, "a socket"),
        ]
        return next((name for test, name in kinds if test(mode)), "not a file or directory")

    def block_locations(self, path: str, size: int) -> list[BlockLocation]:
        if self.is_shared(path):
            return [BlockLocation(0, size, ())]
        return [BlockLocation(0, size, (socket.gethostname(),))]

    def is_shared(self, path: str) -> bool:
        """Whether every host sees ``path`` (a shared root or a network file system mount)."""
        real = os.path.realpath(path)
        if any(real.startswith(root) or real + "/" == root for root in self.shared_roots):
            return True
        return _mount_type(real) in NETWORK_FS_TYPES


def _mount_type(path: str) -> str:
    """The file system type of the mount ``path`` is on ('' if unknown)."""
    best, kind = "", ""
    for mount, fstype in _mounts():
        prefix = os.path.join(mount, "")
        if (path == mount or path.startswith(prefix)) and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


@functools.lru_cache(maxsize=1)
def _mounts() -> tuple[tuple[str, str], ...]:
    try:
        return tuple((p.mountpoint, p.fstype) for p in psutil.disk_partitions(all=True))
    except (OSError, psutil.Error):
        return ()


# ------------------------------------------------------------------------- registry

_lock = threading.Lock()
_registry: dict[str, type[FileSystem] | str] = {
    "file": LocalFileSystem,
    "s3": "twister2.io.s3:S3FileSystem",
    "hdfs": "twister2.io.hdfs:HdfsFileSystem",
}
_instances: dict[tuple[Any, ...], FileSystem] = {}


def register_filesystem(scheme: str, cls: type[FileSystem]) -> None:
    """Make URLs ``scheme://...`` open with ``cls`` (replacing what served it before).

    Examples
    --------
    >>> class MemoryFileSystem(LocalFileSystem):
    ...     scheme = "mem"
    >>> register_filesystem("mem", MemoryFileSystem)
    >>> "mem" in registered_schemes()
    True
    """
    with _lock:
        _registry[scheme] = cls
        for key in [k for k in _instances if k[0] == scheme]:
            del _instances[key]


def registered_schemes() -> list[str]:
    """The URL schemes :func:`get_filesystem` opens, beside ``persistent`` and ``volatile``."""
    return sorted(_registry)


def _cached(cls: type[FileSystem], *key: Any) -> Any:
    """One instance of ``cls`` per ``key`` in this process (``cls(*key)`` makes it)."""
    full = (cls.scheme, cls, *key)
    with _lock:
        found = _instances.get(full)
        if found is None:
            found = cls(*key)
            _instances[full] = found
        return found


def get_filesystem(url: str, config: ConfigLike = None) -> tuple[FileSystem, str]:
    """Open the file system a URL names, and return it with the path within it.

    Parameters
    ----------
    url:
        A local path, or ``file://``, ``persistent://``, ``volatile://``, ``s3://``,
        ``hdfs://`` (or a registered scheme) URL.
    config:
        The configuration to read (``env.config`` in a job; None: this process's).

    Examples
    --------
    >>> fs, path = get_filesystem("file:///tmp/data.csv")
    >>> type(fs).__name__, path
    ('LocalFileSystem', '/tmp/data.csv')
    >>> get_filesystem("ftp://host/x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: no file system for URL 'ftp://host/x' (known schemes: file, hdfs, s3, ...)
    """
    cfg = resolved(config)
    url = storage.resolve_storage_url(url, cfg)
    scheme = urlsplit(url).scheme if "://" in url else "file"
    with _lock:
        entry = _registry.get(scheme)
    if entry is None:
        known = ", ".join([*registered_schemes(), "persistent", "volatile"])
        msg = f"no file system for URL {url!r} (known schemes: {known})"
        raise ValueError(msg)
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
        assert isinstance(entry, type) and issubclass(entry, FileSystem)
    return entry.from_url(url, cfg)

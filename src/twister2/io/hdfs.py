"""HDFS through ``pyarrow.fs.HadoopFileSystem``, with block locations from libhdfs.

``hdfs://namenode:8020/path`` opens the namenode at that address; ``hdfs:///path`` the
``fs.defaultFS`` of the Hadoop configuration. pyarrow needs a Hadoop installation: libhdfs
(``ARROW_LIBHDFS_DIR`` or ``$HADOOP_HOME/lib/native``), ``JAVA_HOME`` and a ``CLASSPATH`` that
holds Hadoop's jars (``export CLASSPATH=$(hadoop classpath --glob)``).

pyarrow does not expose where a file's blocks live, so :class:`HdfsFileSystem` asks libhdfs
itself (``hdfsGetHosts``, the C counterpart of Hadoop's ``getFileBlockLocations``), through
the same library pyarrow loads.

Not tested against a real namenode: HDFS cannot run where this package is tested. The URL
handling and the split hosts are tested through the :class:`~twister2.io.FileSystem` interface
with a fake HDFS (see ``docs/io.md``).

Example
-------
>>> HdfsFileSystem.parse_url("hdfs://namenode:9000/data/logs")
('namenode', 9000, '/data/logs')
>>> HdfsFileSystem.parse_url("hdfs:///data/logs")
('default', 0, '/data/logs')
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from twister2.config import Config
from twister2.io.errors import StorageUnavailableError
from twister2.io.filesystem import BlockLocation, FileSystem, _cached

__all__ = ["HdfsFileSystem"]

_SETUP_HINT = (
    "HDFS needs libhdfs (ARROW_LIBHDFS_DIR or $HADOOP_HOME/lib/native), JAVA_HOME, and "
    "CLASSPATH=$(hadoop classpath --glob); check them and that the namenode is up"
)


class HdfsFileSystem(FileSystem):
    """One HDFS namespace: paths are absolute (``/data/x``), URLs ``hdfs://nn:port/data/x``."""

    scheme = "hdfs"

    def __init__(self, host: str, port: int, user: str) -> None:
        self.host, self.port, self.user = host, port, user
        prefix = f"hdfs://{host}:{port}" if host != "default" else "hdfs://"
        try:
            arrow = pafs.HadoopFileSystem(host, port, user=user or None)
        except (OSError, RuntimeError) as exc:
            raise StorageUnavailableError(
                f"{prefix}/",
                f"HDFS namenode {host}:{port}",
                (str(exc).strip().splitlines() or ["no detail"])[0],
                hint=_SETUP_HINT,
            ) from exc
        super().__init__(arrow, prefix)
        self._locator: _LibHdfs | None = None
        self._locator_lock = threading.Lock()

    @staticmethod
    def parse_url(url: str) -> tuple[str, int, str]:
        """``(host, port, path)`` of an ``hdfs://`` URL (host ``default``: fs.defaultFS)."""
        parts = urlsplit(url)
        if parts.scheme != "hdfs":
            msg = f"not an HDFS URL: {url!r} (write hdfs://namenode:port/path)"
            raise ValueError(msg)
        try:
            port = parts.port or 0
        except ValueError:
            msg = f"HDFS URL {url!r} has a bad port (write hdfs://namenode:8020/path)"
            raise ValueError(msg) from None
        return parts.hostname or "default", port, parts.path or "/"

    @classmethod
    def from_url(cls, url: str, config: Config) -> tuple[FileSystem, str]:
        host, port, path = cls.parse_url(url)
        user = str(config["io.hdfs.user"])
        return _cached(cls, host, port, user), path

    def block_locations(self, path: str, size: int) -> list[BlockLocation]:
        with self._locator_lock:
            if self._locator is None:
                self._locator = _LibHdfs(self.host, self.port, self.user)
        with self.translate_errors(path, "locate blocks of"):
            return self._locator.blocks(path, size)


class _FileInfo(ctypes.Structure):
    """libhdfs's ``hdfsFileInfo`` (hdfs.h)."""

    _fields_ = [
        ("mKind", ctypes.c_int),
        ("mName", ctypes.c_char_p),
        ("mLastMod", ctypes.c_long),
        ("mSize", ctypes.c_int64),
        ("mReplication", ctypes.c_short),
        ("mBlockSize", ctypes.c_int64),
        ("mOwner", ctypes.c_char_p),
        ("mGroup", ctypes.c_char_p),
        ("mPermissions", ctypes.c_short),
        ("mLastAccess", ctypes.c_long),
    ]


def _find_libhdfs() -> str:
    candidates = []
    if os.environ.get("ARROW_LIBHDFS_DIR"):
        candidates.append(os.path.join(os.environ["ARROW_LIBHDFS_DIR"], "libhdfs.so"))
    if os.environ.get("HADOOP_HOME"):
        candidates.append(os.path.join(os.environ["HADOOP_HOME"], "lib", "native", "libhdfs.so"))
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return ctypes.util.find_library("hdfs") or "libhdfs.so"


class _LibHdfs:
    """Block locations through libhdfs: ``hdfsGetPathInfo`` and ``hdfsGetHosts``."""

    def __init__(self, host: str, port: int, user: str) -> None:
        try:
            lib: Any = ctypes.CDLL(_find_libhdfs())
        except OSError as exc:
            raise OSError(f"cannot load libhdfs for block locations: {exc}") from exc
        lib.hdfsConnectAsUser.restype = ctypes.c_void_p
        lib.hdfsConnectAsUser.argtypes = [ctypes.c_char_p, ctypes.c_uint16, ctypes.c_char_p]
        lib.hdfsGetPathInfo.restype = ctypes.POINTER(_FileInfo)
        lib.hdfsGetPathInfo.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.hdfsFreeFileInfo.argtypes = [ctypes.POINTER(_FileInfo), ctypes.c_int]
        lib.hdfsGetHosts.restype = ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p))
        lib.hdfsGetHosts.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int64,
            ctypes.c_int64,
        ]
        lib.hdfsFreeHosts.argtypes = [ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p))]
        handle = lib.hdfsConnectAsUser(host.encode(), port, user.encode() if user else None)
        if not handle:
            raise OSError(f"libhdfs cannot connect to {host}:{port}")
        self.lib, self.handle = lib, handle

    def blocks(self, path: str, size: int) -> list[BlockLocation]:
        """Every block of ``path``: block ``i`` covers ``[i * block_size, ...)``."""
        lib, raw = self.lib, path.encode()
        info = lib.hdfsGetPathInfo(self.handle, raw)
        if not info:
            raise FileNotFoundError(path)
        block_size = int(info.contents.mBlockSize) or max(size, 1)
        lib.hdfsFreeFileInfo(info, 1)
        hosts = lib.hdfsGetHosts(self.handle, raw, 0, max(size, 1))
        if not hosts:
            return []
        found: list[BlockLocation] = []
        try:
            index = 0
            while hosts[index]:
                names = []
                j = 0
                while hosts[index][j]:
                    names.append(hosts[index][j].decode())
                    j += 1
                offset = index * block_size
                length = max(0, min(block_size, size - offset))
                found.append(BlockLocation(offset, length, tuple(names)))
                index += 1
        finally:
            lib.hdfsFreeHosts(hosts)
        return found

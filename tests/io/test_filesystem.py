"""File systems by URL, storage roots, and split hosts.

HDFS cannot run here (no Hadoop, no JVM): ``FakeHdfsFileSystem`` below stands in for it. It
is a test double, not HDFS: it serves ``hdfs://`` URLs from a local folder and invents block
locations, so the URL handling and the locations logic are tested through the same
:class:`FileSystem` interface the real :class:`HdfsFileSystem` implements. The real one is only
tested for its URL parsing and its error when libhdfs is missing.
"""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from twister2.config import Config
from twister2.io import (
    BlockLocation,
    FileSystem,
    LocalFileSystem,
    StorageUnavailableError,
    get_filesystem,
    hosts_for_range,
    persistent_root,
    plan_splits,
    read_split,
    register_filesystem,
    storage_url,
    volatile_root,
)
from twister2.io import filesystem as filesystem_module
from twister2.io.hdfs import HdfsFileSystem
from twister2.io.s3 import S3FileSystem

BLOCK = 64
"""The fake HDFS block size, in bytes."""


class FakeHdfsFileSystem(FileSystem):
    """A FAKE HDFS for tests: ``hdfs://host:port/path`` served from a local folder, with
    ``BLOCK``-byte blocks, each "replicated" on three made-up datanodes."""

    scheme = "hdfs"
    root: Path

    def __init__(self, host: str, port: int) -> None:
        local = pafs.SubTreeFileSystem(str(self.root), pafs.LocalFileSystem())
        super().__init__(local, f"hdfs://{host}:{port}")

    @classmethod
    def from_url(cls, url: str, config: Config) -> tuple[FileSystem, str]:
        host, port, path = HdfsFileSystem.parse_url(url)  # the real URL handling
        return cls(host, port), path

    def url(self, path: str) -> str:
        return f"{self.url_prefix}/{path.lstrip('/')}"  # SubTreeFileSystem paths are relative

    def block_locations(self, path: str, size: int) -> list[BlockLocation]:
        return [
            BlockLocation(i * BLOCK, min(BLOCK, size - i * BLOCK), _datanodes(i))
            for i in range((size + BLOCK - 1) // BLOCK)
        ]


def _datanodes(block: int) -> tuple[str, ...]:
    return tuple(f"dn{(block + k) % 5}" for k in range(3))


@pytest.fixture
def fake_hdfs(tmp_path: Path) -> Iterator[Path]:
    """``hdfs://`` served by :class:`FakeHdfsFileSystem` from ``tmp_path/hdfs``."""
    root = tmp_path / "hdfs"
    root.mkdir()
    FakeHdfsFileSystem.root = root
    register_filesystem("hdfs", FakeHdfsFileSystem)
    yield root
    register_filesystem("hdfs", HdfsFileSystem)


def test_urls_select_the_file_system(tmp_path: Path) -> None:
    cfg = {"io.s3.endpoint": "http://127.0.0.1:1", "storage.persistent_root": str(tmp_path)}
    fs, path = get_filesystem(str(tmp_path / "a.txt"), cfg)
    assert isinstance(fs, LocalFileSystem) and path == str(tmp_path / "a.txt")
    fs, path = get_filesystem(f"file://{tmp_path}/b.txt", cfg)
    assert isinstance(fs, LocalFileSystem) and path == str(tmp_path / "b.txt")
    fs, path = get_filesystem("s3://bucket/dir/c.csv", cfg)
    assert isinstance(fs, S3FileSystem) and path == "bucket/dir/c.csv"
    assert fs.url(path) == "s3://bucket/dir/c.csv"
    fs, path = get_filesystem("persistent://ckpt/1", cfg)
    assert isinstance(fs, LocalFileSystem) and path == str(tmp_path / "ckpt" / "1")
    with pytest.raises(ValueError, match="names no bucket"):
        get_filesystem("s3:///key", cfg)
    with pytest.raises(ValueError, match="no file system for URL 'gopher://x'"):
        get_filesystem("gopher://x", cfg)


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.txt").write_text("a\nb\n")
    splits = plan_splits("r.txt", 1)
    assert splits[0].url == str(tmp_path / "r.txt")


def test_storage_roots_come_from_config(tmp_path: Path) -> None:
    cfg = {
        "storage.persistent_root": "s3://bucket/t2/",
        "storage.volatile_root": str(tmp_path / "vol"),
    }
    assert persistent_root(cfg) == "s3://bucket/t2"
    assert volatile_root(cfg) == str(tmp_path / "vol")
    assert storage_url("persistent", "ckpt", "job-1", config=cfg) == "s3://bucket/t2/ckpt/job-1"
    assert get_filesystem("volatile://spill/w0", cfg)[1] == str(tmp_path / "vol" / "spill" / "w0")
    home = persistent_root(Config.from_dict({}))
    assert home == os.path.expanduser("~/.twister2/storage")
    with pytest.raises(ValueError, match="unknown storage 'scratch'"):
        storage_url("scratch", "x")  # type: ignore[arg-type]


def test_storage_roots_follow_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWISTER2_STORAGE__PERSISTENT_ROOT", str(tmp_path / "nfs"))
    assert persistent_root() == str(tmp_path / "nfs")


def test_local_files_name_this_host_and_shared_ones_none(tmp_path: Path) -> None:
    shared, local = tmp_path / "nfs", tmp_path / "disk"
    for folder in (shared, local):
        folder.mkdir()
        (folder / "a.txt").write_text("x\n" * 100)
    cfg = {"storage.persistent_root": str(shared)}
    [on_disk] = plan_splits(str(local / "a.txt"), 1, config=cfg)
    assert on_disk.hosts == (socket.gethostname(),)
    [on_nfs] = plan_splits(str(shared / "a.txt"), 1, config=cfg)
    assert on_nfs.hosts == ()
    [not_shared] = plan_splits(
        str(shared / "a.txt"), 1, config={**cfg, "storage.persistent_shared": False}
    )
    assert not_shared.hosts == (socket.gethostname(),)


def test_network_mounts_are_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filesystem_module, "_mounts", lambda: (("/", "ext4"), ("/mnt/n", "nfs4")))
    fs = LocalFileSystem()
    assert fs.is_shared("/mnt/n/data/x.csv")
    assert not fs.is_shared("/mnt/nx/data.csv")
    assert not fs.is_shared("/home/x.csv")


def test_hosts_weigh_the_bytes_each_host_holds() -> None:
    blocks = [
        BlockLocation(0, 100, ("a", "b")),
        BlockLocation(100, 100, ("b", "c")),
        BlockLocation(200, 50, ("d",)),
    ]
    assert hosts_for_range(blocks, 0, 250) == ("b", "a", "c")
    assert hosts_for_range(blocks, 180, 70) == ("d", "b", "c")
    assert hosts_for_range(blocks, 220, 0) == ("d",)
    assert hosts_for_range([], 0, 10) == ()


def test_fake_hdfs_splits_carry_block_hosts(fake_hdfs: Path) -> None:
    lines = [f"record {i:04d}" for i in range(100)]  # 12 bytes a line, 1200 bytes
    (fake_hdfs / "logs").mkdir()
    (fake_hdfs / "logs" / "a.txt").write_text("".join(line + "\n" for line in lines))
    splits = plan_splits("hdfs://namenode:9000/logs", 4)
    assert [s.url for s in splits] == ["hdfs://namenode:9000/logs/a.txt"] * 4
    assert [(s.start, s.length) for s in splits] == [(0, 300), (300, 300), (600, 300), (900, 300)]
    # bytes 0..299 lie in blocks 0-4; dn2 and dn3 hold 192 of them each, dn0 172 (ties by name)
    assert splits[0].hosts == ("dn2", "dn3", "dn0")
    # bytes 900..1199 lie in blocks 14-18: dn2 holds 192, dn1 188, dn3 176
    assert splits[3].hosts == ("dn2", "dn1", "dn3")
    assert [x for s in splits for x in read_split(s)] == lines
    assert pickle.loads(pickle.dumps(splits)) == splits


def test_real_hdfs_url_parsing_and_a_clear_error_without_hadoop() -> None:
    assert HdfsFileSystem.parse_url("hdfs://nn.example.com:8020/a/b") == (
        "nn.example.com",
        8020,
        "/a/b",
    )
    assert HdfsFileSystem.parse_url("hdfs:///a") == ("default", 0, "/a")
    assert HdfsFileSystem.parse_url("hdfs://nn") == ("nn", 0, "/")
    with pytest.raises(ValueError, match="bad port"):
        HdfsFileSystem.parse_url("hdfs://nn:port/a")
    with pytest.raises(StorageUnavailableError) as info:
        get_filesystem("hdfs://127.0.0.1:1/data")
    text = str(info.value)
    assert "hdfs://127.0.0.1:1/" in text and "HDFS namenode 127.0.0.1:1" in text
    assert "CLASSPATH" in text and len(text) < 600

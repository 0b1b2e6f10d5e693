"""Fixtures of the io tests: a real S3-compatible server (moto) and its client config.

``moto_server`` starts ``moto_server`` (from ``moto[server]``) as a child process on
127.0.0.1 and a free port, waits until it answers, and at the end stops it by its PID and
checks that the process and its listening socket are gone.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except OSError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a moto S3 server that lives as long as the test module."""
    pytest.importorskip("moto", reason="the S3 tests need moto[server] (the test extra)")
    exe = Path(sys.executable).with_name("moto_server")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(f"{endpoint}/moto-api/"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == "zombie"
    assert not _port_open(port), f"moto_server left port {port} listening"


@pytest.fixture(autouse=True)
def storage_roots(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Persistent and volatile storage under a temporary folder, never the real ones."""
    base = tmp_path_factory.mktemp("storage")
    monkeypatch.setenv("TWISTER2_STORAGE__PERSISTENT_ROOT", str(base / "persistent"))
    monkeypatch.setenv("TWISTER2_STORAGE__VOLATILE_ROOT", str(base / "volatile"))
    return base


def s3_config(endpoint: str, **extra: Any) -> dict[str, Any]:
    """Config keys that point twister2.io at ``endpoint``."""
    return {
        "io.s3.endpoint": endpoint,
        "io.s3.access_key": "test",
        "io.s3.secret_key": "test",
        "io.s3.region": "us-east-1",
        **extra,
    }


@pytest.fixture
def bucket(moto_server: str) -> str:
    """A new, empty bucket on the moto server."""
    import pyarrow.fs as pafs

    name = f"t2-{uuid.uuid4().hex[:12]}"
    admin = pafs.S3FileSystem(
        endpoint_override=moto_server.removeprefix("http://"),
        scheme="http",
        access_key="test",
        secret_key="test",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    with contextlib.suppress(FileExistsError):
        admin.create_dir(name)
    return name

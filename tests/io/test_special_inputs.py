"""A FIFO, a device or a socket as input: a clear error naming the path, never a hang or a
``TypeError`` (their size is unknown, and ``/dev/zero`` never ends)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from twister2.io import NotARegularFileError, plan_splits

ROOT = Path(__file__).resolve().parents[2]
WORD_COUNT = str(ROOT / "examples" / "word_count.py")


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "input.fifo"
    os.mkfifo(path)
    return path


def test_a_character_device_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotARegularFileError) as info:
        plan_splits("/dev/zero", 2)
    assert str(info.value).startswith(
        "input /dev/zero is a character device, not a regular file: twister2.io reads "
        "regular files only"
    )
    assert info.value.url == "/dev/zero"


def test_a_fifo_is_named_not_opened(fifo: Path) -> None:
    with pytest.raises(NotARegularFileError, match=f"input {fifo} is a FIFO .named pipe."):
        plan_splits(str(fifo), 2)  # opening it would block: it must not be opened


def test_a_fifo_or_socket_inside_an_input_directory_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    os.mkfifo(folder / "b.txt")
    with pytest.raises(NotARegularFileError, match=f"{folder / 'b.txt'} is a FIFO"):
        plan_splits(str(folder), 2)
    os.unlink(folder / "b.txt")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "c.txt"))
        with pytest.raises(NotARegularFileError, match=f"{folder / 'c.txt'} is a socket"):
            plan_splits(str(folder / "*.txt"), 2)


@pytest.mark.parametrize("workers", ["2", "3"])
@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_twister2_submit_says_what_the_input_is(kind: str, workers: str, fifo: Path) -> None:
    path = "/dev/zero" if kind == "device" else str(fifo)
    what = "a character device" if kind == "device" else "a FIFO (named pipe)"
    command = ["submit", "local", WORD_COUNT, "--workers", workers, "--", path]
    proc = subprocess.run(
        [sys.executable, "-m", "twister2.cli", *command],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("twister2: error:")]
    assert len(errors) == 1, proc.stderr
    assert f"NotARegularFileError: input {path} is {what}, not a regular file" in errors[0]
    assert "TypeError" not in proc.stderr

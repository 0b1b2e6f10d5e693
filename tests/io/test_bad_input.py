"""What bad input gets: a clear error naming the path (and line), and nothing committed."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from twister2.config import Config
from twister2.io import (
    CsvFormat,
    MalformedRecordError,
    ReadStats,
    SchemaMismatchError,
    Sink,
    StorageUnavailableError,
    plan_splits,
    read_split,
)


def read_all(url: str, n: int = 1, **options: object) -> list[object]:
    return [r for s in plan_splits(url, n, **options) for r in read_split(s)]  # type: ignore[arg-type]


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "data.csv"
    with pytest.raises(FileNotFoundError, match=f"no such file or directory: {missing}"):
        plan_splits(str(missing), 2)
    with pytest.raises(FileNotFoundError, match=r"no files match .*\*\.csv"):
        plan_splits(str(tmp_path / "*.csv"), 2)
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "_SUCCESS").write_text("")
    with pytest.raises(FileNotFoundError, match="directory without data files"):
        plan_splits(str(tmp_path / "only"), 2)


def test_a_path_under_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x\n")
    under = tmp_path / "file.txt" / "child.txt"
    with pytest.raises(NotADirectoryError, match=f"{tmp_path / 'file.txt'}"):
        Sink(str(under), "text", job_id="j").open(0)
    with pytest.raises((NotADirectoryError, FileNotFoundError), match=str(under)):
        plan_splits(str(under), 1)


@pytest.fixture
def unreadable() -> Iterator[Path]:
    """A world-traversable folder with a mode-000 file and a mode-000 folder in it."""
    folder = Path(tempfile.mkdtemp(prefix="t2-perm-"))
    folder.chmod(0o755)
    (folder / "secret.txt").write_text("hidden\n")
    (folder / "secret.txt").chmod(0)
    (folder / "locked").mkdir()
    (folder / "locked" / "a.txt").write_text("a\n")
    (folder / "locked").chmod(0)
    yield folder
    (folder / "locked").chmod(0o755)
    shutil.rmtree(folder)


DEFAULTS = Config.from_dict({})
"""Defaults only: the config files of the test run are not readable by ``nobody``."""


def probe(targets: list[str]) -> list[str]:
    """Try to read each target: "READ" or the PermissionError's message."""
    found = []
    for target in targets:
        try:
            for split in plan_splits(target, 1, config=DEFAULTS):
                list(read_split(split, DEFAULTS))
            found.append(f"READ {target}")
        except PermissionError as exc:
            found.append(f"PermissionError: {exc}")
    return found


def probe_as_nobody(targets: list[str]) -> list[str]:
    """:func:`probe` in a forked child that dropped root for ``nobody``: a real EACCES.

    (A fresh ``nobody`` process cannot start this Python, which lives under /root.)
    """
    nobody = pwd.getpwnam("nobody")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as warm:  # load lazy modules now
        warm.write("x\n")
        warm.flush()
        assert probe([warm.name]) == [f"READ {warm.name}"]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.write(write_end, "\n".join(probe(targets)).encode())
            code = 0
        except BaseException:
            os.write(write_end, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    return output.splitlines()


def test_a_permission_error_names_the_path(unreadable: Path) -> None:
    """Root reads everything, so as root the reads run as ``nobody``."""
    targets = [str(unreadable / "secret.txt"), str(unreadable / "locked")]
    lines = probe_as_nobody(targets) if os.geteuid() == 0 else probe(targets)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"PermissionError: permission denied to read {targets[0]} ")
    assert lines[1].startswith(f"PermissionError: permission denied to list {targets[1]} ")
    assert "check the owner and mode" in lines[0]


def test_a_malformed_csv_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    rows = [f"{i},name {i},{i * 1.5}" for i in range(200)]
    rows[150] = "150,only two"
    path.write_text("id,name,score\n" + "\n".join(rows) + "\n")
    with pytest.raises(MalformedRecordError) as info:
        read_all(str(path), 3)
    assert str(info.value).startswith(f"{path}, line 152: expected 3 fields, got 2: '150,only two'")
    assert info.value.line == 152
    assert "io.csv.bad_rows" in str(info.value)


def test_bad_csv_rows_can_be_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rows.csv"
    lines = [f"{i},x" for i in range(100)]
    for bad in (10, 55, 90):
        lines[bad] = "1,2,3"
    path.write_text("a,b\r\n" + "\r\n".join(lines) + "\r\n")
    stats = ReadStats()
    config = {"io.csv.bad_rows": "skip"}
    with caplog.at_level(logging.WARNING, logger="twister2.io"):
        got = [
            r
            for s in plan_splits(str(path), 4, config=config)
            for r in read_split(s, config, stats=stats)
        ]
    assert len(got) == 97 and stats.records == 97
    assert stats.bad_rows == 3
    assert stats.bad_lines == [f"{path}:12", f"{path}:57", f"{path}:92"]
    assert "skipped bad rows" in caplog.text
    splits = plan_splits(str(path), 1, format=CsvFormat(bad_rows="skip"))
    assert len(list(read_split(splits[0]))) == 97


def test_a_csv_value_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    path.write_text("n\n" + "1\n" * 10 + "oops\n")
    schema = pa.schema([("n", pa.int64())])
    with pytest.raises(MalformedRecordError, match=rf"{path}: .*invalid value 'oops'"):
        read_all(str(path), format=CsvFormat(schema=schema))


def test_csv_files_with_different_headers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "b.csv").write_text("x,z\n1,2\n")
    with pytest.raises(SchemaMismatchError, match=r"b\.csv does not match .*a\.csv.*\['x', 'z'\]"):
        plan_splits(str(tmp_path), 2)


def test_a_parquet_file_of_another_schema_in_a_directory_is_named(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1, 2], "y": ["a", "b"]}), tmp_path / "part-0.parquet")
    pq.write_table(pa.table({"x": ["1"], "y": ["a"]}), tmp_path / "part-1.parquet")
    with pytest.raises(SchemaMismatchError) as info:
        plan_splits(str(tmp_path), 2)
    text = str(info.value)
    assert str(tmp_path / "part-1.parquet") in text and str(tmp_path / "part-0.parquet") in text
    assert "column 'x' is string, not int64" in text
    pq.write_table(pa.table({"x": [1], "z": [1.0]}), tmp_path / "part-1.parquet")
    with pytest.raises(SchemaMismatchError, match=r"columns \['z'\] are not in the other file"):
        plan_splits(str(tmp_path), 2)


def test_npy_files_of_another_dtype_are_named(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((3, 2)))
    np.save(tmp_path / "b.npy", np.zeros((3, 2), np.int32))
    with pytest.raises(SchemaMismatchError, match=r"b\.npy.*int32 of shape \(2,\)"):
        plan_splits(str(tmp_path), 2)
    np.save(tmp_path / "b.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(MalformedRecordError, match=r"b\.npy: it holds Python objects"):
        plan_splits(str(tmp_path / "b.npy"), 1)


def test_not_a_parquet_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "fake.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(MalformedRecordError, match=r"fake\.parquet: not a readable Parquet"):
        plan_splits(str(tmp_path / "fake.parquet"), 1)


def test_invalid_utf8_in_text_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\n" * 30 + b"caf\xe9\n" + b"fine\n" * 5)
    with pytest.raises(MalformedRecordError, match=rf"{path}, line 31: invalid UTF-8"):
        read_all(str(path), 3, config={"io.text.block_bytes": 16})


def test_an_unknown_extension_asks_for_a_format(tmp_path: Path) -> None:
    (tmp_path / "data.xyz").write_text("x\n")
    with pytest.raises(ValueError, match=r"cannot tell the format of .*data\.xyz.*pass format="):
        plan_splits(str(tmp_path / "data.xyz"), 1)
    assert read_all(str(tmp_path / "data.xyz"), format="text") == ["x"]


def test_an_unreachable_s3_endpoint_is_named() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = {
        "io.s3.endpoint": f"http://127.0.0.1:{port}",
        "io.s3.access_key": "k",
        "io.s3.secret_key": "s",
        "io.s3.max_attempts": 1,
        "io.s3.connect_timeout": 1.0,
    }
    with pytest.raises(StorageUnavailableError) as info:
        plan_splits("s3://bucket/data/*.csv", 2, config=config)
    text = str(info.value)
    assert text.startswith(f"cannot reach S3 endpoint http://127.0.0.1:{port} for s3://bucket/")
    assert "check io.s3.endpoint" in text
    with pytest.raises(StorageUnavailableError):
        Sink("s3://bucket/out", "text", job_id="j", config=config).open(0)


def test_bad_input_while_writing_commits_nothing(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("a,b\n1,2\n3\n")
    sink = Sink(str(tmp_path / "out"), "csv", job_id="j")
    with pytest.raises(MalformedRecordError), sink.open(0) as writer:
        for split in plan_splits(str(source), 1):
            for row in read_split(split):
                writer.write(row)
    assert not list((tmp_path / "out").rglob("part-*"))
    assert not (tmp_path / "out" / "_SUCCESS").exists()

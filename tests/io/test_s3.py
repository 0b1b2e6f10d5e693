"""S3 against a real S3-compatible server: moto_server, started by the ``moto_server`` fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import twister2
from tests.io import io_jobs
from tests.io.conftest import s3_config
from twister2.io import (
    IncompleteOutputError,
    SchemaMismatchError,
    Sink,
    get_filesystem,
    plan_splits,
    read_batches,
    read_split,
    recover_output,
)


def test_text_splits_over_s3_read_every_line_once(moto_server: str, bucket: str) -> None:
    cfg = s3_config(moto_server, **{"io.text.block_bytes": 256})
    fs, path = get_filesystem(f"s3://{bucket}/logs/a.txt", cfg)
    lines = [f"line {i} 日本 ü" for i in range(300)]
    with fs.open_output(path) as out:
        out.write("\r\n".join(lines).encode())
    for readers in (1, 3, 7):
        splits = plan_splits(f"s3://{bucket}/logs/*.txt", readers, config=cfg)
        assert all(s.url == f"s3://{bucket}/logs/a.txt" and s.hosts == () for s in splits)
        assert [x for s in splits for x in read_split(s, cfg)] == lines


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow", "npy"])
def test_a_sink_commits_to_s3_and_reads_back(moto_server: str, bucket: str, fmt: str) -> None:
    cfg = s3_config(moto_server)
    out = f"s3://{bucket}/out/{fmt}"
    table = pa.table({"k": list(range(50)), "v": [i * 0.5 for i in range(50)]})
    sink = Sink(out, fmt, job_id="s3-job", config=cfg)
    for part in range(2):
        with sink.open(part) as writer:
            piece = table.slice(part * 25, 25)
            if fmt == "npy":
                writer.write_batch(_matrix(piece))
            else:
                writer.write_batch(piece)
    ext = sink.format.extension
    assert sink.commit(2) == [f"{out}/part-00000{ext}", f"{out}/part-00001{ext}"]
    fs, path = get_filesystem(out, cfg)
    names = sorted(i.path.rsplit("/", 1)[-1] for i in fs.list_dir(path, recursive=True))
    assert names == ["_SUCCESS", f"part-00000{ext}", f"part-00001{ext}"]
    batches = [b for s in plan_splits(out, 3, config=cfg) for b in read_batches(s, cfg)]
    if fmt == "npy":
        assert sum(len(b) for b in batches) == 50
    else:
        assert pa.Table.from_batches(batches).equals(table)


def _matrix(table: pa.Table) -> np.ndarray[Any, Any]:
    return np.column_stack([c.to_numpy() for c in table.columns])


def test_s3_errors_name_the_url(moto_server: str, bucket: str, tmp_path: Path) -> None:
    cfg = s3_config(moto_server)
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/nothing/here.csv"):
        plan_splits(f"s3://{bucket}/nothing/here.csv", 2, config=cfg)
    fs, path = get_filesystem(f"s3://{bucket}/mixed", cfg)
    pq.write_table(pa.table({"x": [1]}), f"{path}/a.parquet", filesystem=fs.arrow)
    pq.write_table(pa.table({"x": ["1"]}), f"{path}/b.parquet", filesystem=fs.arrow)
    with pytest.raises(SchemaMismatchError, match=f"s3://{bucket}/mixed/b.parquet"):
        plan_splits(f"s3://{bucket}/mixed", 2, config=cfg)


def test_a_job_commits_to_s3(moto_server: str, bucket: str) -> None:
    cfg = s3_config(moto_server)
    out = f"s3://{bucket}/job-out"
    twister2.run(io_jobs.write_and_commit, workers=2, args=[out, "text"], config=cfg)
    lines = [x for s in plan_splits(out, 2, config=cfg) for x in read_split(s, cfg)]
    assert lines == [io_jobs.record("text", w, i) for w in range(2) for i in range(io_jobs.ROWS)]
    fs, path = get_filesystem(out, cfg)
    assert fs.exists(f"{path}/_SUCCESS")
    assert not fs.exists(f"{path}/_temporary")


class CommitStopped(Exception):
    """Stands in for a kill of the committer (a simulated crash, named as such): the commit to
    S3 is stopped by an exception from its k-th rename, which the commit does not clean up,
    so it leaves what a kill at that moment would."""


@pytest.mark.parametrize("k", [0, 1, 2, 3])  # renames: old _SUCCESS, old part, 2 new parts
def test_an_interrupted_overwrite_on_s3_is_refused_then_rolled_back(
    moto_server: str, bucket: str, k: int
) -> None:
    cfg = s3_config(moto_server)
    out = f"s3://{bucket}/over/{k}"
    old = Sink(out, "text", job_id="old-job", config=cfg)
    with old.open(0) as writer:
        writer.write("old line")
    old.commit(1)
    new = Sink(out, "text", job_id="new-job", overwrite=True, config=cfg)
    for part in range(2):
        with new.open(part) as writer:
            writer.write(f"new line {part}")
    count = iter(range(100))
    real_move = new.fs.move

    def move(src: str, dst: str) -> None:
        if next(count) == k:
            raise CommitStopped(f"commit stopped before change {k}")
        real_move(src, dst)

    new.fs.move = move  # type: ignore[method-assign]
    try:
        with pytest.raises(CommitStopped):
            new.commit(2)
    finally:
        del new.fs.move  # the cached file system's own method again
    with pytest.raises(IncompleteOutputError, match=r"job new-job \(pid"):
        plan_splits(out, 1, config=cfg)
    assert recover_output(out, cfg, force=True) == "rolled back"  # its process is this one
    assert [x for s in plan_splits(out, 1, config=cfg) for x in read_split(s, cfg)] == ["old line"]
    assert new.commit(2)  # the parts waited under _temporary: the commit can run again
    assert [x for s in plan_splits(out, 1, config=cfg) for x in read_split(s, cfg)] == [
        "new line 0",
        "new line 1",
    ]

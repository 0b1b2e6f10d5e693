"""Atomic sinks: the commit protocol in one process, then real jobs that commit, fail or are
killed before the commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import twister2
from tests.io import io_jobs
from twister2 import JobFailedError
from twister2.io import (
    CommitError,
    IncompleteOutputError,
    OutputExistsError,
    Sink,
    plan_splits,
    read_split,
)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def looks_final(out: Path) -> list[str]:
    """Files that a reader would take as committed output: _SUCCESS, or a part outside
    _temporary."""
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file()
        and "_temporary" not in p.relative_to(out).parts
        and (p.name == "_SUCCESS" or p.name.startswith("part-"))
    )


def test_parts_wait_under_temporary_names_until_the_commit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sink = Sink(str(out), "csv", job_id="job-7")
    writer = sink.open(3)
    writer.write({"a": 1})
    assert names(out / "_temporary" / "job-7") == ["part-00003.csv.inprogress"]
    writer.close()
    assert names(out / "_temporary" / "job-7") == ["part-00003.csv"]
    assert looks_final(out) == []


def test_commit_moves_every_part_then_writes_success(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sink = Sink(str(out), "text", job_id="j1")
    for part in range(3):
        with sink.open(part) as writer:
            writer.write(f"part {part}")
    urls = sink.commit(3)
    assert urls == [str(out / f"part-0000{i}.txt") for i in range(3)]
    assert names(out) == ["_SUCCESS", "part-00000.txt", "part-00001.txt", "part-00002.txt"]
    marker = json.loads((out / "_SUCCESS").read_text())
    assert marker["job_id"] == "j1"
    assert marker["parts"] == ["part-00000.txt", "part-00001.txt", "part-00002.txt"]
    assert [x for s in plan_splits(str(out), 2) for x in read_split(s)] == [
        "part 0",
        "part 1",
        "part 2",
    ]


def test_a_missing_part_commits_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sink = Sink(str(out), "text", job_id="j1")
    with sink.open(0) as writer:
        writer.write("only part 0")
    unfinished = sink.open(1)
    unfinished.write("never closed")
    with pytest.raises(CommitError, match=r"1 of 2 parts are missing \(part-00001.txt\)"):
        sink.commit(2)
    with pytest.raises(CommitError, match="parts beyond 0"):
        sink.commit(0)
    assert looks_final(out) == []
    unfinished.abort()


def test_an_exception_in_the_writer_block_removes_the_part(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sink = Sink(str(out), "parquet", job_id="j1")
    with pytest.raises(RuntimeError, match="task failed"), sink.open(0) as writer:
        writer.write({"a": 1})
        raise RuntimeError("task failed")
    assert names(out / "_temporary" / "j1") == []
    with pytest.raises(CommitError, match="missing"):
        sink.commit(1)


def test_existing_output_is_an_error_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = Sink(str(out), "text", job_id="first")
    with first.open(0) as writer:
        writer.write("old")
    first.commit(1)
    second = Sink(str(out), "text", job_id="second")
    with pytest.raises(OutputExistsError, match=r"holds a committed output.*overwrite=True"):
        second.open(0)
    third = Sink(str(out), "text", job_id="third", overwrite=True)
    with third.open(0) as writer:
        writer.write("new")
    with third.open(1) as writer:
        writer.write("newer")
    third.commit(2)
    assert names(out) == ["_SUCCESS", "part-00000.txt", "part-00001.txt"]
    assert [x for s in plan_splits(str(out), 1) for x in read_split(s)] == ["new", "newer"]


def test_output_left_by_a_failed_job_is_named_as_such(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-00000.txt").write_text("stray\n")
    with pytest.raises(OutputExistsError, match="no _SUCCESS"):
        Sink(str(out), "text", job_id="j").open(0)
    empty = tmp_path / "empty"
    (empty / "_temporary" / "old-job").mkdir(parents=True)
    sink = Sink(str(empty), "text", job_id="j")  # only leftovers of a failed job: writable
    with sink.open(0) as writer:
        writer.write("x")
    sink.commit(1)
    assert names(empty) == ["_SUCCESS", "part-00000.txt"]


def test_a_bad_job_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="job_id must be"):
        Sink(str(tmp_path / "out"), "text", job_id="../escape")


# ----------------------------------------------------------------------------- real jobs


@pytest.mark.parametrize(("fmt", "workers"), [("text", 2), ("parquet", 3)])
def test_a_job_writes_and_commits(tmp_path: Path, workers: int, fmt: str) -> None:
    out = tmp_path / "out"
    result = twister2.run(io_jobs.write_and_commit, workers=workers, args=[str(out), fmt])
    assert result.values == [str(out)] * workers
    ext = ".txt" if fmt == "text" else ".parquet"
    assert names(out) == ["_SUCCESS", *(f"part-{i:05d}{ext}" for i in range(workers))]
    records = [r for s in plan_splits(str(out), workers) for r in read_split(s)]
    expected = [io_jobs.record(fmt, w, i) for w in range(workers) for i in range(io_jobs.ROWS)]
    assert records == expected


def test_a_second_job_on_a_committed_output_fails_and_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    twister2.run(io_jobs.write_and_commit, workers=2, args=[str(out), "text"])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(JobFailedError, match="OutputExistsError"):
        twister2.run(io_jobs.write_and_commit, workers=2, args=[str(out), "text"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("sigkill", "exited by SIGKILL"),
        ("raise", "failing before the commit"),
        ("sigkill-mid-write", "exited by SIGKILL"),
    ],
)
def test_a_job_that_fails_before_the_commit_leaves_nothing_that_looks_complete(
    tmp_path: Path, how: str, message: str, workers: int
) -> None:
    out = tmp_path / "out"
    with pytest.raises(JobFailedError, match=message) as failed:
        twister2.run(io_jobs.fail_before_commit, workers=workers, args=[str(out), "text", how])
    assert looks_final(out) == []
    leftovers = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert leftovers  # the parts were written, under temporary names
    assert all(p.name != "_SUCCESS" for p in out.rglob("*"))
    if how == "sigkill-mid-write":
        assert any(name.endswith(".inprogress") for name in leftovers)
    with pytest.raises(IncompleteOutputError, match="holds no _SUCCESS") as refused:
        plan_splits(str(out), 1)  # readers get a clear error naming the job, and no data
    assert refused.value.job_id == failed.value.job_id
    assert f"job {failed.value.job_id} did not commit it" in str(refused.value)
    if how == "sigkill":  # what the failed job left does not stop a new one
        twister2.run(io_jobs.write_and_commit, workers=2, args=[str(out), "text"])
        assert names(out) == ["_SUCCESS", "part-00000.txt", "part-00001.txt"]


def test_workers_read_their_share_through_text_splits(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    lines = [f"line {i} ü" for i in range(1000)]
    path.write_text("\r\n".join(lines))
    result = twister2.run(io_jobs.read_share, workers=3, args=[str(path)])
    assert [len(v) for v in result.values] != [0, 0, 0]
    assert [line for share in result.values for line in share] == lines

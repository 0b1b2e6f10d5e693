"""Losing the event log (a full disk) costs the events, with one warning, never the job.

The full disk is real: ``events.jsonl`` is a symbolic link to ``/dev/full``, on which every
write fails with ``ENOSPC`` (``[Errno 28] No space left on device``), as on a full file system.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import twister2
import twister2.submit
from tests.master import event_jobs
from twister2.master.events import EVENTS_FILE, MASTER_FILE, EventLog, read_events

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")

WARNING = "cannot write the job's event log"


def full_disk_folder(folder: Path) -> Path:
    """A job's log folder whose event log sits on a 'disk' that is always full."""
    folder.mkdir(parents=True)
    (folder / EVENTS_FILE).symlink_to("/dev/full")
    return folder


def test_a_full_disk_costs_the_events_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="twister2.master.events")
    log = EventLog(full_disk_folder(tmp_path / "job-1"))
    for state in ("STARTING", "RUNNING", "COMPLETED"):
        log.append("job", state=state)  # does not raise
    log.close()
    log.close()
    warnings = [r for r in caplog.records if WARNING in r.getMessage()]
    assert len(warnings) == 1
    assert "No space left on device" in warnings[0].getMessage()
    assert str(tmp_path / "job-1" / EVENTS_FILE) in warnings[0].getMessage()
    assert log.lost == "No space left on device"
    assert list(read_events(tmp_path / "job-1")) == []  # /dev/full is not read forever


def test_an_event_log_that_cannot_be_opened_is_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="twister2.master.events")
    (tmp_path / "job-3" / EVENTS_FILE).mkdir(parents=True)  # a directory: open() fails
    log = EventLog(tmp_path / "job-3")
    log.append("job", state="STARTING")
    log.close()
    assert log.lost is not None and "directory" in log.lost
    assert len([r for r in caplog.records if WARNING in r.getMessage()]) == 1


def test_a_healthy_log_loses_nothing(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "job-2")
    log.append("job", state="STARTING")
    log.close()
    assert log.lost is None
    assert [e["state"] for e in read_events(tmp_path / "job-2")] == ["STARTING"]


@pytest.mark.parametrize("workers", [2, 3])
def test_a_job_whose_event_log_is_on_a_full_disk_completes(
    workers: int,
    jobs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job_id = f"full-disk-{workers}"
    # the job id is fixed (not a mock of the failure) so that its log folder can be prepared
    monkeypatch.setattr(twister2.submit, "new_job_id", lambda name: job_id)
    folder = full_disk_folder(jobs_dir / job_id)
    caplog.set_level(logging.WARNING, logger="twister2.master.events")
    result = twister2.run(event_jobs.report_and_sum, workers=workers)
    assert result.values == [sum(range(w * 10, w * 10 + 10)) for w in range(workers)]
    assert str(result.state.value) == "COMPLETED"
    assert len([r for r in caplog.records if WARNING in r.getMessage()]) == 1
    assert not (folder / MASTER_FILE).exists()
    assert not (jobs_dir.parent / "scratch" / job_id).exists()
    assert (folder / EVENTS_FILE).is_symlink()


# ------------------------------------------------------------- an event over the frame limit


@pytest.mark.parametrize("workers", [2, 3])
def test_an_event_over_the_message_limit_names_the_limit(workers: int) -> None:
    with pytest.raises(twister2.JobFailedError) as failed:
        twister2.run(event_jobs.huge_event, workers=workers)
    text = str(failed.value)
    assert "MessageTooLargeError" in text
    assert f"worker {workers - 1}" in text
    assert "event 'blob' is 20.0 MiB as JSON, over the 16 MiB limit" in text
    assert "send the data itself through env.comm or write it to a file" in text
    assert "exited with code 3" not in text

"""The mesos launcher against a FAKE Mesos master (tests/resource/fake_mesos.py).

Mesos cannot run here: nothing in this file was run against a real Mesos. The fake speaks the
v1 scheduler API (RecordIO event stream, stream ids, acknowledgements), checks every call
against our transcription of Mesos' protobuf messages, and runs launched tasks as local
processes, so real workers run real jobs through the framework.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import twister2
from tests import jobs
from tests.resource import remote_jobs
from tests.resource.fake_mesos import FakeMesos
from tests.resource.netns_hosts import ROOT
from twister2.errors import JobFailedError
from twister2.resource import PlacementError
from twister2.resource.mesos import encode_record, fits, read_records, scalar

HELLO = "examples/hello_world.py"


@pytest.fixture
def mesos() -> Iterator[FakeMesos]:
    fake = FakeMesos(
        agents=[
            ("a1", "localhost", 2.0, 2048.0),
            ("a2", "localhost", 2.0, 2048.0),
            ("tiny", "localhost", 0.5, 128.0),
        ],
        principal="twister2",
        secret="pa55",
    )
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def config(fake: FakeMesos, tmp_path: Path, secret: str = "pa55") -> dict[str, Any]:
    secret_file = tmp_path / "mesos-secret"
    secret_file.write_text(secret)
    return {
        "resource.mesos.master": fake.url,
        "resource.mesos.principal": "twister2",
        "resource.mesos.secret_file": str(secret_file),
    }


def test_recordio_and_offers() -> None:
    stream = io.BytesIO(encode_record({"type": "HEARTBEAT"}) + encode_record({"a": "é"}))
    assert list(read_records(stream)) == [{"type": "HEARTBEAT"}, {"a": "é"}]
    offer = {"resources": [scalar("cpus", 3.0), scalar("mem", 1000.0)]}
    assert fits(offer, cpu=1.0, memory_mb=512) == 1
    assert fits(offer, cpu=0.5, memory_mb=100) == 6


@pytest.mark.slow
def test_a_job_through_the_framework(mesos: FakeMesos, tmp_path: Path) -> None:
    result = twister2.run(
        remote_jobs.where, workers=3, cluster="mesos", config=config(mesos, tmp_path)
    )
    assert [v["id"] for v in result.values] == [0, 1, 2]
    kinds = [c["type"] for c in mesos.calls]
    assert kinds[0] == "SUBSCRIBE" and kinds[-1] == "TEARDOWN"
    assert (
        kinds.count("ACCEPT") == 2 and kinds.count("DECLINE") == 1
    )  # 2 + 1 workers, tiny declined
    assert kinds.count("ACKNOWLEDGE") == 6  # RUNNING and FINISHED of each task
    assert not mesos.unacknowledged
    assert not [p for p in mesos.tasks.procs.values() if p.poll() is None]


@pytest.mark.slow
def test_hello_world_example(mesos: FakeMesos, tmp_path: Path) -> None:
    args = [f"--config={k}={v}" for k, v in config(mesos, tmp_path).items()]
    done = subprocess.run(
        [sys.executable, "-m", "twister2.cli", "submit", "mesos", HELLO, "--workers", "2", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert "COMPLETED: ['received', 'sent']" in done.stdout  # the tasks' own output is the fake's


@pytest.mark.slow
def test_worker_failure_tears_the_framework_down(mesos: FakeMesos, tmp_path: Path) -> None:
    with pytest.raises(JobFailedError, match="worker 1 raised ValueError"):
        twister2.run(jobs.raise_in_last, workers=2, cluster="mesos", config=config(mesos, tmp_path))
    assert mesos.calls[-1]["type"] == "TEARDOWN"
    assert not [p for p in mesos.tasks.procs.values() if p.poll() is None]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"secret": "wrong"}, r"refused the framework's credentials \(401\): set resource\.mesos"),
        ({"resource.mesos.master": "http://127.0.0.1:9"}, r"cannot reach the Mesos master at"),
        (
            {"resource.cpu": 3.0, "resource.mesos.offer_timeout": 1.0},
            r"Mesos offered no room for 2 of 2 workers .*resource\.mesos\.offer_timeout",
        ),
    ],
)
def test_bad_input_is_one_clear_error(
    mesos: FakeMesos, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    secret = change.pop("secret", "pa55")
    with pytest.raises(PlacementError, match=message) as info:
        twister2.run(
            jobs.hello,
            workers=2,
            cluster="mesos",
            config={**config(mesos, tmp_path, secret), **change},
        )
    assert "\n" not in str(info.value)
    assert not [p for p in mesos.tasks.procs.values() if p.poll() is None]

"""The nomad launcher against a FAKE Nomad agent (tests/resource/fake_nomad.py).

Nomad cannot run here: nothing in this file was run against a real Nomad. The fake checks each
job against our transcription of Nomad's documented job fields and runs its tasks as local
processes, so real workers run real jobs through the launcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import twister2
from tests import jobs
from tests.resource import remote_jobs
from tests.resource.fake_nomad import JOB_SCHEMA, FakeNomad
from tests.resource.netns_hosts import ROOT
from twister2.errors import JobFailedError
from twister2.resource import PlacementError
from twister2.resource.nomad import nomad_job

HELLO = "examples/hello_world.py"


@pytest.fixture
def nomad() -> Iterator[FakeNomad]:
    fake = FakeNomad(token="s3cret-token")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def config(fake: FakeNomad, tmp_path: Path, token: str = "s3cret-token") -> dict[str, Any]:
    token_file = tmp_path / "nomad-token"
    token_file.write_text(token)
    return {
        "resource.nomad.address": fake.url,
        "resource.nomad.token_file": str(token_file),
        "resource.nomad.poll_interval": 0.2,
    }


@pytest.mark.parametrize(
    "changes",
    [{}, {"driver": "docker", "image": "me/job:1"}, {"namespace": "ml", "region": "eu"}],
)
def test_the_job_spec_has_nomads_shape(changes: dict[str, Any]) -> None:
    job = nomad_job("hello-1", 3, python="/py", master_address="10.0.0.2:4000", **changes)
    jsonschema.validate(job, JOB_SCHEMA)
    task = job["TaskGroups"][0]["Tasks"][0]
    assert job["Type"] == "batch" and job["TaskGroups"][0]["Count"] == 3
    assert "TWISTER2_JOB_SECRET" not in task["Env"]
    assert 'nomadVar "nomad/jobs/hello-1"' in task["Templates"][0]["EmbeddedTmpl"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**job, "Typo": 1}, JOB_SCHEMA)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 3])
def test_jobs_run_through_nomad(nomad: FakeNomad, tmp_path: Path, workers: int) -> None:
    result = twister2.run(
        remote_jobs.where, workers=workers, cluster="nomad", config=config(nomad, tmp_path)
    )
    assert [v["id"] for v in result.values] == list(range(workers))
    calls = [(m, p) for m, p in nomad.requests if "/allocations" not in p]
    job = result.job_id
    assert calls == [
        ("GET", "/v1/agent/self"),
        ("PUT", f"/v1/var/nomad/jobs/{job}"),
        ("POST", "/v1/jobs"),
        ("DELETE", f"/v1/job/{job}"),
        ("DELETE", f"/v1/var/nomad/jobs/{job}"),
    ]
    assert nomad.jobs == {} and nomad.variables == {}


@pytest.mark.slow
def test_hello_world_example(nomad: FakeNomad, tmp_path: Path) -> None:
    args = [f"--config={k}={v}" for k, v in config(nomad, tmp_path).items()]
    done = subprocess.run(
        [sys.executable, "-m", "twister2.cli", "submit", "nomad", HELLO, "--workers", "2", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert "COMPLETED: ['received', 'sent']" in done.stdout  # the tasks' own output is the fake's


@pytest.mark.slow
def test_worker_failure(nomad: FakeNomad, tmp_path: Path) -> None:
    with pytest.raises(JobFailedError, match="worker 1 raised ValueError"):
        twister2.run(jobs.raise_in_last, workers=2, cluster="nomad", config=config(nomad, tmp_path))
    assert nomad.jobs == {} and not [p for p in nomad.tasks.procs.values() if p.poll() is None]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token": "expired"}, r"refused the ACL token \(403"),
        ({"resource.nomad.address": "http://127.0.0.1:9"}, r"cannot reach Nomad at .*: set resou"),
        ({"resource.nomad.token_file": "/no/such/token"}, r"cannot read resource\.nomad\.token_f"),
        ({"resource.nomad.driver": "docker"}, r"needs an image: set resource\.nomad\.image"),
        (
            {"resource.memory_mb": 100000, "master.join_timeout": 3.0},
            r"could not place the workers of job .*memory \(1 nodes\)",
        ),
    ],
)
def test_bad_input_is_one_clear_error(
    nomad: FakeNomad, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    token = change.pop("token", "s3cret-token")
    with pytest.raises(PlacementError, match=message) as info:
        twister2.run(
            jobs.hello,
            workers=2,
            cluster="nomad",
            config={**config(nomad, tmp_path, token), **change},
        )
    assert "\n" not in str(info.value)
    assert nomad.jobs == {} and nomad.variables == {}

"""The Harp examples (examples/harp), run through the real ``twister2`` command: at 1 and 3 local
workers and at 2 and 4 MPI ranks; their own checks must fail the job when a result is wrong; and
the MPI message-level example must refuse, clearly, to run anywhere but the mpi cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.run_examples import submit_script

ROOT = Path(__file__).resolve().parents[2]
HARP = ROOT / "examples" / "harp"
SIZES = [
    ("local", 1),
    ("local", 3),
    pytest.param("mpi", 2, marks=pytest.mark.mpi),
    pytest.param("mpi", 4, marks=pytest.mark.mpi),
]
REPORTS = {
    "kmeans": "centres match the single-process K-Means",
    "mf_rotate": "decreasing and equal to the single-process ALS",
    "hello_world": "received the broadcast",
}


def submit(
    cluster: str, example: str, workers: int, *args: str
) -> subprocess.CompletedProcess[str]:
    return submit_script(cluster, HARP / f"{example}.py", workers, *args)


def test_every_example_is_tested() -> None:
    assert sorted(p.stem for p in HARP.glob("*.py")) == sorted([*REPORTS, "mpi_message_level"])


@pytest.mark.parametrize(("cluster", "workers"), SIZES)
@pytest.mark.parametrize("example", sorted(REPORTS))
def test_example_runs_and_checks_its_result(example: str, cluster: str, workers: int) -> None:
    proc = submit(cluster, example, workers)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = proc.stdout.strip().splitlines()[-1]
    assert REPORTS[example] in report, report


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ("kmeans", "the centres differ from the single-process K-Means by up to 1"),
        ("mf_rotate", "W differs from the single-process ALS"),
    ],
)
def test_a_wrong_result_fails_the_job(example: str, message: str) -> None:
    proc = submit("local", example, 1, "--corrupt")
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr


@pytest.mark.mpi
@pytest.mark.parametrize("workers", [2, 4])
def test_mpi_message_level_on_the_mpi_cluster(workers: int) -> None:
    proc = submit("mpi", "mpi_message_level", workers)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"mpi message level: {workers} ranks mixed" in proc.stdout
    assert "all results agree" in proc.stdout


def test_mpi_message_level_elsewhere_says_it_needs_the_mpi_cluster() -> None:
    proc = submit("local", "mpi_message_level", 1)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "env.mpi_comm needs the mpi cluster, but this job runs on 'local'" in proc.stderr
    assert "twister2 submit mpi" in proc.stderr

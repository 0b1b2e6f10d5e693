"""The communication examples (examples/comms), run through the real ``twister2`` command.

Every operator's example at 1, 2 and 3 local workers and at 2 and 4 MPI ranks, with small
sizes and plans whose sources and targets do not match the workers (the examples' defaults,
workers + 1 sources and max(1, workers - 1) targets, or explicit ones); and the examples' own
check, which must fail the job when a value is wrong.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.run_examples import run_python, submit_script

ROOT = Path(__file__).resolve().parents[1]
COMMS = ROOT / "examples" / "comms"
OPERATORS = [
    "reduce",
    "allreduce",
    "gather",
    "allgather",
    "broadcast",
    "direct",
    "partition",
    "keyed_reduce",
    "keyed_gather",
    "keyed_partition",
    "join",
]
SMALL = ["--size", "16", "--itr", "2", "--records", "6"]
# Per world size: the plan (the defaults, or sources and targets that do not divide evenly) and
# which join runs, so that every join kind and algorithm runs once without extra jobs.
SHAPES = {
    ("local", 1): ([], ["--how", "inner"]),
    ("local", 2): (["--sources", "3", "--targets", "5"], ["--how", "outer", "--algorithm", "sort"]),
    ("local", 3): ([], ["--how", "left"]),
    ("mpi", 2): ([], ["--how", "right", "--algorithm", "sort"]),
    ("mpi", 4): (["--sources", "7", "--targets", "3"], ["--how", "outer"]),
}


def submit(
    cluster: str, example: str, workers: int, *args: str
) -> subprocess.CompletedProcess[str]:
    return submit_script(cluster, COMMS / f"{example}.py", workers, *args)


def assert_verified(proc: subprocess.CompletedProcess[str], example: str, workers: int) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = proc.stdout.strip().splitlines()[-1]
    assert report.startswith(f"{example.replace('_', ' ')}: {workers} worker"), report
    assert "ms per iteration, verified" in report, report


def test_every_batch_example_is_tested() -> None:
    names = [p.stem for p in COMMS.glob("*.py") if not p.stem.startswith("stream_")]
    assert sorted(names) == sorted([*OPERATORS, "comms_example"])


@pytest.mark.parametrize("example", OPERATORS)
@pytest.mark.parametrize("workers", [1, 2, 3])
def run_example(cluster: str, example: str, workers: int) -> None:
    plan, join = SHAPES[cluster, workers]
    if example == "direct":  # one to one: as many targets as sources
        plan = plan[:2]
    extra = join if example == "join" else []
    assert_verified(submit(cluster, example, workers, *SMALL, *plan, *extra), example, workers)


@pytest.mark.parametrize("example", OPERATORS)
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_example_on_local(example: str, workers: int) -> None:
    run_example("local", example, workers)


@pytest.mark.mpi
@pytest.mark.parametrize("example", OPERATORS)
@pytest.mark.parametrize("workers", [2, 4])
def test_example_on_mpi(example: str, workers: int) -> None:
    run_example("mpi", example, workers)


def test_python_runs_an_example_on_four_local_workers() -> None:
    proc = run_python(str(COMMS / "allreduce.py"), *SMALL)
    assert_verified(proc, "allreduce", 4)
    assert "3 targets" in proc.stdout and "5 sources" in proc.stdout


def test_a_wrong_value_fails_the_job() -> None:
    proc = submit("local", "keyed_reduce", 2, *SMALL, "--corrupt")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "VerificationError: keyed reduce on worker " in proc.stderr
    assert "differs from the reference" in proc.stderr


def test_usage_errors_exit_2_before_the_job() -> None:
    proc = submit("local", "join", 2, "--how", "sideways")
    assert proc.returncode == 2
    assert "invalid choice: 'sideways'" in proc.stderr
    proc = submit("local", "direct", 2, "--sources", "3", "--targets", "2")
    assert proc.returncode == 2
    assert "one to one" in proc.stderr

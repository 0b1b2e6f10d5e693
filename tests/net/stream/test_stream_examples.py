"""The streaming examples (examples/comms/stream_*.py), run through the real ``twister2`` command.

Every operator's example at 1 and 3 local workers and at 2 and 4 MPI ranks, with small counts
and plans whose sources and targets do not match the workers (the examples' defaults, workers + 1
sources and max(1, workers - 1) targets, or explicit ones); and the examples' own check, which
must fail the job when a value is wrong.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.run_examples import run_python, submit_script

ROOT = Path(__file__).resolve().parents[3]
COMMS = ROOT / "examples" / "comms"
OPERATORS = [
    "reduce",
    "allreduce",
    "gather",
    "allgather",
    "broadcast",
    "direct",
    "partition",
    "keyed_partition",
    "keyed_reduce",
    "keyed_gather",
]
SMALL = ["--count", "150", "--size", "4"]
SHAPES = {  # per world size: the examples' default plan, or one that does not divide evenly
    ("local", 1): [],
    ("local", 3): ["--sources", "5", "--targets", "4"],
    ("mpi", 2): [],
    ("mpi", 4): ["--sources", "3", "--targets", "6"],
}


def submit(
    cluster: str, example: str, workers: int, *args: str
) -> subprocess.CompletedProcess[str]:
    return submit_script(cluster, COMMS / f"stream_{example}.py", workers, *args)


def assert_verified(proc: subprocess.CompletedProcess[str], example: str, workers: int) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = proc.stdout.strip().splitlines()[-1]
    noun = "worker" if workers == 1 else "workers"
    assert report.startswith(f"stream {example.replace('_', ' ')}: {workers} {noun}"), report
    assert report.endswith("match the reference)") and ", verified (" in report, report
    return report


def run_example(cluster: str, example: str, workers: int) -> None:
    plan = SHAPES[cluster, workers]
    if example == "direct" and plan:  # one to one: as many targets as sources
        plan = ["--sources", plan[1], "--targets", plan[1]]
    report = assert_verified(submit(cluster, example, workers, *SMALL, *plan), example, workers)
    if plan:
        assert f"{plan[1]} sources" in report and f"{plan[3]} targets" in report, report


def test_every_stream_example_is_tested() -> None:
    found = sorted(p.stem for p in COMMS.glob("stream_*.py") if p.stem != "stream_common")
    assert found == sorted(f"stream_{op}" for op in OPERATORS)


@pytest.mark.parametrize("example", OPERATORS)
@pytest.mark.parametrize("workers", [1, 3])
def test_stream_example_on_local(example: str, workers: int) -> None:
    run_example("local", example, workers)


@pytest.mark.mpi
@pytest.mark.parametrize("example", OPERATORS)
@pytest.mark.parametrize("workers", [2, 4])
def test_stream_example_on_mpi(example: str, workers: int) -> None:
    run_example("mpi", example, workers)


def test_python_runs_a_stream_example_on_four_local_workers() -> None:
    proc = run_python(str(COMMS / "stream_allreduce.py"), *SMALL)
    report = assert_verified(proc, "allreduce", 4)
    assert "5 sources, 3 targets" in report


@pytest.mark.parametrize("example", ["partition", "reduce", "keyed_gather"])
def test_a_wrong_value_fails_the_job(example: str) -> None:
    proc = submit("local", example, 2, *SMALL, "--corrupt")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    name = example.replace("_", " ")
    assert f"VerificationError: stream {name} on worker " in proc.stderr
    assert "differs from the reference" in proc.stderr


def test_usage_errors_exit_2_before_the_job() -> None:
    proc = submit("local", "direct", 2, "--sources", "3", "--targets", "2")
    assert proc.returncode == 2
    assert "one to one" in proc.stderr
    proc = submit("local", "partition", 2, "--count", "0")
    assert proc.returncode == 2
    assert "must be at least 1" in proc.stderr

"""Launchers: the registry, placement checks and the mpi hostfile, with real jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

import twister2
from tests import jobs
from twister2.job import Job
from twister2.resource import PlacementError, available_launchers, get_launcher
from twister2.resource.mpi import MpiLauncher


def test_registry_knows_local_and_mpi() -> None:
    assert {"local", "mpi", "slurm", "kubernetes", "nomad", "mesos"} <= set(available_launchers())
    with pytest.raises(ValueError, match=r"unknown cluster 'slurmm' \(known: kubernetes, local, "):
        get_launcher("slurmm", {})


@pytest.mark.parametrize("cluster", ["local", pytest.param("mpi", marks=pytest.mark.mpi)])
def test_more_workers_than_cores(cluster: str) -> None:
    result = twister2.run(jobs.hello, workers=6, cluster=cluster)
    assert [v["id"] for v in result.values] == list(range(6))


@pytest.mark.mpi
@pytest.mark.parametrize("workers", [2, 3])
def test_mpi_hostfile(tmp_path: Path, workers: int) -> None:
    hostfile = tmp_path / "hosts"
    hostfile.write_text("localhost:2\n")
    result = twister2.run(
        jobs.hello, workers=workers, cluster="mpi", config={"resource.mpi.hostfile": str(hostfile)}
    )
    assert [v["id"] for v in result.values] == list(range(workers))


def test_mpi_placement_errors(tmp_path: Path) -> None:
    job = Job.create(jobs.hello, workers=2)
    missing = MpiLauncher(
        {"resource.mpi.mpiexec": "", "resource.mpi.hostfile": str(tmp_path / "x")}
    )
    with pytest.raises(PlacementError, match="does not exist"):
        missing.check(job)
    bad = MpiLauncher({"resource.mpi.mpiexec": "no-such-mpiexec", "resource.mpi.hostfile": None})
    with pytest.raises(PlacementError, match=r"resource\.mpi\.mpiexec"):
        bad.check(job)
    with pytest.raises(PlacementError, match="more memory than this machine has"):
        twister2.run(jobs.hello, workers=2, cluster="mpi", config={"resource.memory_mb": 10**9})

"""The slurm launcher against real Slurm clusters: one node, and three nodes on test hosts.

The clusters (munged, slurmctld, slurmd) are started once per test process by the project's
scripts and stopped by their PID files at the end. Tests that need them are skipped, with the
reason, where Slurm cannot run (not root, or slurm-wlm not installed).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import twister2
from tests import jobs
from tests.resource import remote_jobs
from tests.resource.slurm_cluster import (
    ROOT,
    SlurmCluster,
    missing_netns,
    missing_slurm,
    start_single_node,
    start_test_hosts,
)
from twister2 import config as config_mod
from twister2.errors import JobFailedError
from twister2.job import Job, Resources
from twister2.resource import PlacementError, get_launcher
from twister2.resource.slurm import SlurmLauncher, batch_script, exit_code, parse_record

TAG = f"{os.getpid()}"


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def single_node() -> Iterator[SlurmCluster]:
    reason = missing_slurm()
    if reason:
        pytest.skip(reason)
    cluster = start_single_node(TAG)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def test_hosts() -> Iterator[SlurmCluster]:
    reason = missing_slurm() or missing_netns()
    if reason:
        pytest.skip(reason)
    cluster = start_test_hosts(TAG)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm(single_node: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The single-node cluster, as this process's Slurm client sees it (SLURM_CONF)."""
    monkeypatch.setenv("SLURM_CONF", str(single_node.conf))
    return single_node


def slurm_id(job_id: str, jobs_dir: Path) -> str:
    return (jobs_dir / job_id / "slurm" / "jobid").read_text().strip()


def wait_state(cluster: SlurmCluster, sid: str, timeout: float = 30.0) -> str:
    """The state of a Slurm job once it has ended (COMPLETING is not an end)."""
    deadline = time.monotonic() + timeout
    state = cluster.job_state(sid)
    while state in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
        state = cluster.job_state(sid)
    return state


def job_processes(job_id: str) -> list[psutil.Process]:
    """Processes of this machine whose environment names the twister2 job."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("TWISTER2_JOB_ID") == job_id:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def twister2_cli(
    *args: str, cluster: SlurmCluster, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cluster.env(), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*cluster.client_prefix, sys.executable, "-m", "twister2.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


# ------------------------------------------------------------------------------- no cluster


def test_parsing_and_the_batch_script() -> None:
    record = parse_record("JobId=3 JobState=FAILED Reason=NonZeroExitCode ExitCode=1:0")
    assert record["JobState"] == "FAILED"
    assert exit_code(record["ExitCode"]) == 1
    assert exit_code("0:15") == 143
    script = batch_script(
        {"TWISTER2_JOB_ID": "j 1", "TWISTER2_JOB_SECRET": "s3cret"},
        Path("/logs/secret"),
        ["srun", "-K"],
        ["/py", "-m", "twister2.worker"],
    )
    assert "s3cret" not in script
    assert "export TWISTER2_JOB_ID='j 1'" in script
    assert script.rstrip().endswith("exec srun -K /py -m twister2.worker")


def test_sbatch_and_srun_arguments() -> None:
    cfg = dict(config_mod.resolve("slurm"))
    cfg.update(
        {
            "resource.slurm.partition": "big",
            "resource.slurm.time_limit": "0:10:00",
            "resource.slurm.nodes": 2,
            "resource.slurm.account": "proj",
            "resource.slurm.sbatch_args": ["--qos=low"],
            "network.channel": "mpi",
        }
    )
    launcher = SlurmLauncher(cfg)
    job = Job.create(jobs.hello, workers=6, resources=Resources(cpu=1.5, memory_mb=1000))
    args = launcher.sbatch_command(job, "hello-1", Path("/l"))
    for expected in (
        "--ntasks=6",
        "--cpus-per-task=2",
        "--mem-per-cpu=500M",
        "--partition=big",
        "--time=0:10:00",
        "--nodes=2",
        "--account=proj",
        "--job-name=hello-1",
        "--qos=low",
    ):
        assert expected in args
    assert "--mpi=pmi2" in launcher.srun_command(Path("/l"))
    cfg["network.channel"] = "tcp"
    assert not any(a.startswith("--mpi") for a in SlurmLauncher(cfg).srun_command(Path("/l")))
    cfg["resource.slurm.mpi"] = "pmix"
    assert "--mpi=pmix" in SlurmLauncher(cfg).srun_command(Path("/l"))


def test_no_slurm_client(tmp_path: Path) -> None:
    with pytest.raises(PlacementError, match=r"no sbatch in resource\.slurm\.bin_dir"):
        twister2.run(
            jobs.hello,
            cluster="slurm",
            config={"resource.slurm.bin_dir": str(tmp_path)},
        )


def test_unknown_cluster_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"unknown cluster 'slurmm' \(known: .*slurm"):
        get_launcher("slurmm", {})


# ------------------------------------------------------------------------------- one node


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_jobs_on_one_node(
    slurm: SlurmCluster, jobs_dir: Path, workers: int, capfd: pytest.CaptureFixture[str]
) -> None:
    result = twister2.run(remote_jobs.where, workers=workers, cluster="slurm")
    assert [v["id"] for v in result.values] == list(range(workers))
    assert [v["slurm_procid"] for v in result.values] == [str(i) for i in range(workers)]
    assert [v["left"] for v in result.values] == [(i - 1) % workers for i in range(workers)]
    assert {v["channel"] for v in result.values} == {"tcp"}
    sid = slurm_id(result.job_id, jobs_dir)
    assert wait_state(slurm, sid) == "COMPLETED"
    err = capfd.readouterr().err
    for i in range(workers):
        assert f"worker {i} of {workers} on" in err  # the workers' log lines came back
    assert not (jobs_dir / result.job_id / "slurm" / "secret").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("entry", "state", "message"),
    [
        (jobs.raise_in_last, "FAILED", "worker 1 raised ValueError: boom from worker 1"),
        (jobs.sigkill_last, "FAILED", "worker 1 lost its connection"),
    ],
)
def test_worker_failure_fails_the_slurm_job(
    slurm: SlurmCluster, jobs_dir: Path, entry: object, state: str, message: str
) -> None:
    with pytest.raises(JobFailedError, match=message) as info:
        twister2.run(entry, workers=2, cluster="slurm")  # type: ignore[arg-type]
    assert wait_state(slurm, slurm_id(info.value.job_id, jobs_dir)) == state
    assert not job_processes(info.value.job_id)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["twister2 kill", "SIGINT"])
def test_cancel(slurm: SlurmCluster, jobs_dir: Path, how: str) -> None:
    script = str(ROOT / "tests" / "scripts" / "sleepy.py")
    env = {**os.environ, **slurm.env(), "PYTHONPATH": str(ROOT)}
    submit = subprocess.Popen(
        [sys.executable, "-m", "twister2.cli", "submit", "slurm", script],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = None
        deadline = time.monotonic() + 60
        while job_id is None and time.monotonic() < deadline:
            listed = subprocess.run(
                [sys.executable, "-m", "twister2.cli", "jobs", "--json", "--state", "RUNNING"],
                capture_output=True,
                text=True,
                env=env,
            )
            running = json.loads(listed.stdout or "[]")
            job_id = running[0]["job_id"] if running else None
            time.sleep(0.2)
        assert job_id is not None, "the job never reached RUNNING"
        sid = slurm_id(job_id, jobs_dir)
        assert slurm.job_state(sid) == "RUNNING"
        assert len(job_processes(job_id)) >= 2
        if how == "SIGINT":
            submit.send_signal(signal.SIGINT)
        else:
            killed = subprocess.run(
                [sys.executable, "-m", "twister2.cli", "kill", job_id],
                capture_output=True,
                text=True,
                env=env,
            )
            assert killed.returncode == 0, killed.stderr
        _, err = submit.communicate(timeout=60)
        assert submit.returncode == 130, err
        assert f"job {job_id} was killed" in err
        assert wait_state(slurm, sid) == "CANCELLED"
        assert not job_processes(job_id)
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.communicate()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("example", "args", "expected"),
    [
        ("hello_world.py", [], "worker 0 received 1 greetings"),
        ("word_count.py", ["--", "examples/data/sample.txt"], "COMPLETED"),
    ],
)
def test_examples(slurm: SlurmCluster, example: str, args: list[str], expected: str) -> None:
    done = twister2_cli(
        "submit", "slurm", f"examples/{example}", "--workers", "2", *args, cluster=slurm
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.mpi
def test_mpi_inside_a_slurm_job(slurm: SlurmCluster) -> None:
    pytest.importorskip("mpi4py")
    result = twister2.run(
        remote_jobs.mpi_allreduce,
        workers=3,
        cluster="slurm",
        config={"resource.slurm.mpi": "pmi2"},
    )
    assert result.values == [(i, 3, 3) for i in range(3)]


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("config", "workers", "message"),
    [
        (
            {"resource.slurm.partition": "nope"},
            1,
            r"Slurm partition 'nope' does not exist \(partitions: debug\): "
            r"set resource\.slurm\.partition",
        ),
        ({"resource.cpu": 8}, 1, r"asks for 8 CPUs \(resource\.cpu\) but no node"),
        ({"resource.memory_mb": 10**6}, 1, r"\(resource\.memory_mb\) but no node"),
        ({}, 5, r"Slurm rejected the job: .*More processors requested than permitted"),
    ],
)
def test_bad_input_is_one_clear_error(
    slurm: SlurmCluster, config: dict[str, object], workers: int, message: str
) -> None:
    before = slurm.slurm("squeue", "-h", "-o", "%i").split()
    with pytest.raises(PlacementError, match=message):
        twister2.run(jobs.hello, workers=workers, cluster="slurm", config=config)
    assert slurm.slurm("squeue", "-h", "-o", "%i").split() == before


def test_unreachable_controller(
    slurm: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = slurm.conf.read_text()
    lines = [
        "SlurmctldPort=9" if line.startswith("SlurmctldPort=") else line
        for line in text.splitlines()
    ]
    dead = tmp_path / "slurm.conf"
    dead.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("SLURM_CONF", str(dead))
    with pytest.raises(PlacementError, match="cannot reach the Slurm controller"):
        twister2.run(jobs.hello, cluster="slurm")


# ------------------------------------------------------------------------------- test hosts


@pytest.mark.slow
def test_three_workers_on_three_hosts(test_hosts: SlurmCluster) -> None:
    done = twister2_cli(
        "submit",
        "slurm",
        "examples/hello_world.py",
        "--workers",
        "3",
        "-c",
        "master.interface=0.0.0.0",
        "-c",
        "network.interface=0.0.0.0",
        "-c",
        "resource.slurm.nodes=3",
        cluster=test_hosts,
    )
    assert done.returncode == 0, done.stderr
    for i, host in enumerate(test_hosts.hosts):
        assert f"Hello from worker {i} of 3 on {host}" in done.stdout
    assert "worker 0 received 2 greetings" in done.stdout


@pytest.mark.slow
def test_pending_for_ever_is_reported_with_slurms_reason(test_hosts: SlurmCluster) -> None:
    common = ["-c", "master.interface=0.0.0.0", "-c", "network.interface=0.0.0.0"]
    done = twister2_cli(
        "submit",
        "slurm",
        "examples/hello_world.py",
        "--workers",
        "4",
        *common,
        "-c",
        "resource.slurm.nodes=4",
        cluster=test_hosts,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert re.search(r"pending with reason Partition(NodeLimit|Config) ", done.stderr), done.stderr
    assert test_hosts.slurm("squeue", "-h", "-o", "%i").split() == []


def test_loopback_master_with_remote_nodes(test_hosts: SlurmCluster) -> None:
    done = twister2_cli("submit", "slurm", "examples/hello_world.py", cluster=test_hosts)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "but the job master listens on 127.0.0.1: set master.interface" in lines[0]

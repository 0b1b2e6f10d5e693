"""Reliability of the runtime: a dying submitter, private scratch, deadlines, signals.

Real processes throughout: submitters are subprocesses that the tests kill; workers, their
children and mpiexec are real; scratch directories are real folders on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import twister2
from tests import jobs, reliability_jobs
from twister2 import JobKilledError, JobState
from twister2.master import read_events
from twister2.scratch import ScratchError, default_base, job_scratch, reclaim_dead_jobs

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).parent / "scripts"
CLUSTERS = ["local", pytest.param("mpi", marks=pytest.mark.mpi)]


def _wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _start_orphans_job(workers: int, cluster: str, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "orphans.py"), str(workers), cluster, str(out)],
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )


def _workers_ready(out: Path, workers: int) -> list[dict[str, object]]:
    """The workers' reports, once every worker wrote one and the last one stopped itself."""
    _wait_for(lambda: len(list(out.glob("w*.json"))) == workers, 90, "every worker starting")
    infos = [json.loads((out / f"w{i}.json").read_text()) for i in range(workers)]
    last = int(infos[-1]["pid"])  # type: ignore[call-overload]
    _wait_for(lambda: psutil.Process(last).status() == psutil.STATUS_STOPPED, 30, "SIGSTOP")
    return infos


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", [2, 3])
def test_sigkilled_submitter_leaves_no_process_and_no_scratch(
    cluster: str, workers: int, tmp_path: Path, jobs_dir: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    submitter = _start_orphans_job(workers, cluster, out)
    try:
        infos = _workers_ready(out, workers)
        job_id = next(iter(jobs_dir.iterdir())).name
        assert (jobs_dir / job_id / "master.json").exists()
        pids = [int(i["pid"]) for i in infos] + [int(i["child"]) for i in infos]  # type: ignore[call-overload]
        scratch = Path(str(infos[0]["scratch"])).parent
        assert scratch.is_dir()
        os.kill(submitter.pid, signal.SIGKILL)
        submitter.wait()
        _wait_for(lambda: all(_gone(p) for p in pids), 15, "every worker and child ending")
        _wait_for(lambda: not scratch.exists(), 15, "the scratch folder's removal")
        _wait_for(lambda: not (jobs_dir / job_id / "master.json").exists(), 15, "master.json gone")
        states = [e["state"] for e in read_events(jobs_dir / job_id) if e["type"] == "job"]
        assert states[-1] == "KILLED"
    finally:
        if submitter.poll() is None:
            submitter.kill()
            submitter.wait()


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", [2, 3])
def test_sighup_on_the_submitter_kills_the_job_like_sigterm(
    cluster: str, workers: int, tmp_path: Path, jobs_dir: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    submitter = _start_orphans_job(workers, cluster, out)
    try:
        infos = _workers_ready(out, workers)
        job_id = next(iter(jobs_dir.iterdir())).name
        pids = [int(i["pid"]) for i in infos] + [int(i["child"]) for i in infos]  # type: ignore[call-overload]
        os.kill(submitter.pid, signal.SIGHUP)
        assert submitter.wait(timeout=30) != 0
        _wait_for(lambda: all(_gone(p) for p in pids), 10, "every process ending")
        events = [e for e in read_events(jobs_dir / job_id) if e["type"] == "job"]
        assert events[-1]["state"] == "KILLED"
        assert "SIGHUP" in events[-1]["reason"]
        assert not (jobs_dir / job_id / "master.json").exists()
        assert not Path(str(infos[0]["scratch"])).parent.exists()
    finally:
        if submitter.poll() is None:
            submitter.kill()
            submitter.wait()


# ---------------------------------------------------------------------------------- deadline


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", [1, 3])
def test_job_deadline_kills_a_job_that_never_returns(
    cluster: str, workers: int, jobs_dir: Path
) -> None:
    start = time.monotonic()
    with pytest.raises(JobKilledError) as info:
        twister2.run(reliability_jobs.never_returns, workers=workers, cluster=cluster, timeout=2)
    assert time.monotonic() - start < 60
    assert "time limit of 2 s (job.timeout)" in str(info.value)
    job_id = info.value.job_id
    states = [e["state"] for e in read_events(jobs_dir / job_id) if e["type"] == "job"]
    assert states[-1] == "KILLED"
    assert not (jobs_dir / job_id / "master.json").exists()


def test_job_deadline_from_config_and_a_job_that_makes_it(jobs_dir: Path) -> None:
    with pytest.raises(JobKilledError, match=r"time limit of 1\.5 s"):
        twister2.run(reliability_jobs.never_returns, workers=2, config={"job.timeout": 1.5})
    result = twister2.run(jobs.hello, workers=2, timeout=120)
    assert result.state is JobState.COMPLETED


def test_job_deadline_must_be_positive() -> None:
    with pytest.raises(twister2.config.ConfigError, match=r"'job.timeout' .* must be a float > 0"):
        twister2.run(jobs.hello, workers=1, timeout=0)


# ----------------------------------------------------------------------------------- scratch


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", [1, 2])
def test_scratch_is_private(cluster: str, workers: int) -> None:
    result = twister2.run(reliability_jobs.scratch_modes, workers=workers, cluster=cluster)
    for modes in result.values:
        assert modes["job"] == 0o700
        assert modes["worker"] == 0o700
        assert modes["files"] > 0
        assert modes["file_modes"] == [0o600]


def test_default_base_is_per_user() -> None:
    assert default_base().name == f"twister2-{os.geteuid()}"


def test_base_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "theirs"
    base.mkdir(mode=0o755)
    os.chown(base, 54321, 54321)
    with pytest.raises(ScratchError, match=r"is owned by uid 54321, not by you.*job\.scratch_dir"):
        job_scratch(base, "job-1")
    assert not (base / "job-1").exists()


def test_world_writable_base_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "open"
    base.mkdir()
    base.chmod(0o777)
    with pytest.raises(ScratchError, match=r"writable by every user and has no sticky bit"):
        job_scratch(base, "job-1")
    base.chmod(0o1777)  # like /tmp: allowed, the job's own folder is private
    assert job_scratch(base, "job-1").stat().st_mode & 0o777 == 0o700


def test_refused_base_is_one_error_line_from_the_cli(tmp_path: Path) -> None:
    base = tmp_path / "open"
    base.mkdir()
    base.chmod(0o777)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TWISTER2_JOB__SCRATCH_DIR": str(base)}
    proc = subprocess.run(
        [sys.executable, "-m", "twister2.cli", "submit", "local", "examples/hello_world.py"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("twister2: error: the scratch base"), lines


def test_a_dead_jobs_scratch_is_reclaimed(tmp_path: Path) -> None:
    base = tmp_path / "base"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = job_scratch(base, "dead-job")
    owner = json.loads((folder / "owner.json").read_text())
    owner["pid"] = dead.pid
    (folder / "owner.json").write_text(json.dumps(owner))
    (folder / "worker-0").mkdir()
    alive = job_scratch(base, "live-job")  # owned by this (living) process
    assert reclaim_dead_jobs(base) == [folder]
    assert not folder.exists() and alive.exists()


def test_submit_timeout_flag_kills_the_job(jobs_dir: Path) -> None:
    sleepy = str(SCRIPTS / "sleepy.py")
    proc = subprocess.run(
        [sys.executable, "-m", "twister2.cli", "submit", "local", sleepy, "--timeout", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 130, proc.stderr
    assert "was killed: the job ran past its time limit of 2 s (job.timeout)" in proc.stderr
    (job,) = list(jobs_dir.iterdir())
    assert [e["state"] for e in read_events(job) if e["type"] == "job"][-1] == "KILLED"
    assert not (job / "master.json").exists()


# ------------------------------------------------------------------------------ the headline


@pytest.mark.parametrize(
    ("cluster", "channel"),
    [
        ("local", "tcp"),
        pytest.param("mpi", "tcp", marks=pytest.mark.mpi),
        pytest.param("mpi", "mpi", marks=pytest.mark.mpi),
    ],
)
@pytest.mark.parametrize("workers", [2, 3])
def test_headline_names_the_worker_that_died_first(
    cluster: str, channel: str, workers: int
) -> None:
    victim = workers - 1
    for _ in range(3):  # the race the headline used to lose in about half of the runs
        with pytest.raises(twister2.JobFailedError) as info:
            twister2.run(
                reliability_jobs.victim_dies_mid_exchange,
                workers=workers,
                cluster=cluster,
                config={"network.channel": channel},
            )
        err = info.value
        headline = str(err).splitlines()[0]
        assert err.worker_id == victim, headline
        assert headline.startswith(f"job {err.job_id} failed: worker {victim} "), headline
        if cluster == "local":
            assert f"worker {victim} exited by SIGKILL" in headline


# ----------------------------------------------------------------------------- mpi loopback


@pytest.mark.mpi
@pytest.mark.parametrize("channel", ["mpi", "tcp"])
@pytest.mark.parametrize("workers", [1, 3])
def test_one_host_mpi_job_listens_on_loopback_only(channel: str, workers: int) -> None:
    result = twister2.run(
        reliability_jobs.listening_addresses,
        workers=workers,
        cluster="mpi",
        args=[str(os.getpid())],
        config={"network.channel": channel},
    )
    for addresses in result.values:
        assert addresses, "the test saw no listening socket at all"
        assert all(a.startswith("127.") or a == "::1" for a in addresses), addresses


def test_mpi_interface_goes_to_hydra_with_a_hostfile(tmp_path: Path) -> None:
    from twister2.config import resolve
    from twister2.job import Job
    from twister2.resource.mpi import MpiLauncher

    hosts = tmp_path / "hosts"
    hosts.write_text("localhost:4\n")
    job = Job.create(jobs.hello, workers=2)
    one_host = MpiLauncher(resolve("mpi"))
    one_host.check(job)
    assert Path(one_host.command(job)[0]).name == "mpiexec.gforker"
    several = MpiLauncher(
        resolve("mpi", {"resource.mpi.hostfile": str(hosts), "resource.mpi.interface": "eth7"})
    )
    several.check(job)
    cmd = several.command(job)
    assert Path(cmd[0]).name == "mpiexec" and cmd[cmd.index("-iface") + 1] == "eth7"


# ------------------------------------------------------------------------- a stopped worker


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", [2, 3])
def test_stopped_worker_is_found_and_killed(cluster: str, workers: int, tmp_path: Path) -> None:
    cfg = {"master.failure_timeout": 2.0, "master.heartbeat_interval": 0.2}
    start = time.monotonic()
    with pytest.raises(twister2.JobFailedError) as info:
        twister2.run(
            reliability_jobs.children_then_wait,
            workers=workers,
            cluster=cluster,
            args=[str(tmp_path)],
            config=cfg,
        )
    assert time.monotonic() - start < 60
    assert info.value.worker_id == workers - 1
    assert f"worker {workers - 1} sent no heartbeat" in str(info.value)
    infos = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(workers)]
    pids = [int(i["pid"]) for i in infos] + [int(i["child"]) for i in infos]
    _wait_for(lambda: all(_gone(p) for p in pids), 10, "the stopped worker and every child ending")

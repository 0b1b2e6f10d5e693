"""The slurm cluster: the job is one ``sbatch`` job whose ``srun`` starts every worker.

The client (``twister2 submit slurm job.py``) keeps the job master and submits a batch script
that runs ``srun ... python -m twister2.worker``: each Slurm task is a worker, its id the task's
rank (``SLURM_PROCID``). The client follows the job with ``scontrol show job``, copies the
workers' output (``--output`` files in the job's log folder) to its own, and ends the job with
``scancel`` when the job is killed (``twister2 kill``, Ctrl-C) or fails. A job that Slurm rejects,
or that pends for a reason that cannot clear (it asks for more than the partition has), fails at
once with Slurm's own reason.

Nodes reach the job master at ``master.interface``: ``0.0.0.0`` makes the client tell the workers
its address on the route to the cluster's nodes. Workers on several nodes need
``network.interface: 0.0.0.0`` too. The log folder and the Python must be on a shared file system.

Example
-------
>>> line = "JobId=7 JobName=hi JobState=PENDING Reason=PartitionNodeLimit ExitCode=0:0"
>>> fields = parse_record(line)
>>> fields["JobState"], fields["Reason"], exit_code(fields["ExitCode"])
('PENDING', 'PartitionNodeLimit', 0)
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from twister2.job import Job
from twister2.master.events import summarize
from twister2.resource._remote import advertised_address, is_local_host, is_loopback
from twister2.resource.base import (
    WHOLE_JOB,
    Launcher,
    LaunchHandle,
    PlacementError,
    register_launcher,
)

__all__ = ["SlurmHandle", "SlurmLauncher", "batch_script", "exit_code", "parse_record"]

log = logging.getLogger(__name__)

ENDED = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
        "REVOKED",
        "GONE",
    }
)
"""Slurm job states after which nothing of the job runs (``GONE``: slurmctld forgot the job)."""

HOPELESS = frozenset(
    {
        "BadConstraints",
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "InvalidAccount",
        "InvalidQOS",
        "DependencyNeverSatisfied",
        "JobHeldAdmin",
        "JobHeldUser",
    }
)
"""Pending reasons that do not clear by waiting: the job would pend for ever."""

_COMMAND_TIMEOUT = 30.0
_FIELD = re.compile(r"(\S+?)=(\S*)")


def parse_record(line: str) -> dict[str, str]:
    """The ``Key=Value`` fields of one line of ``scontrol show ... -o``.

    >>> parse_record("NodeName=n1 CPUTot=4 RealMemory=2048")["CPUTot"]
    '4'
    """
    return dict(_FIELD.findall(line))


def exit_code(text: str) -> int:
    """A job's return code from Slurm's ``ExitCode=code:signal`` (a signal counts as 128+sig).

    >>> exit_code("1:0"), exit_code("0:9"), exit_code("")
    (1, 137, 0)
    """
    code, _, signal = text.partition(":")
    if signal.isdigit() and int(signal):
        return 128 + int(signal)
    return int(code) if code.isdigit() else 0


def batch_script(
    env: Mapping[str, str], secret_file: Path, srun: list[str], worker: list[str]
) -> str:
    """The batch script: export the job's environment, then ``exec srun`` the workers.

    The job's secret stays out of Slurm's job records: the script reads it from an owner-only file.

    >>> print(batch_script({"TWISTER2_JOB_ID": "j"}, Path("/s"), ["srun"], ["python"]), end="")
    #!/bin/sh
    # twister2 job j: every Slurm task is one worker
    export TWISTER2_JOB_ID=j
    TWISTER2_JOB_SECRET=$(cat /s) || exit 2
    export TWISTER2_JOB_SECRET
    unset TWISTER2_WORKER_INDEX PMI_RANK OMPI_COMM_WORLD_RANK PMIX_RANK
    exec srun python
    """
    lines = [
        "#!/bin/sh",
        f"# twister2 job {env.get('TWISTER2_JOB_ID', '')}: every Slurm task is one worker",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items() if k != "TWISTER2_JOB_SECRET"]
    lines += [
        f"TWISTER2_JOB_SECRET=$(cat {shlex.quote(str(secret_file))}) || exit 2",
        "export TWISTER2_JOB_SECRET",
        "unset TWISTER2_WORKER_INDEX PMI_RANK OMPI_COMM_WORLD_RANK PMIX_RANK",
        "exec " + shlex.join([*srun, *worker]),
    ]
    return "\n".join(lines) + "\n"


class SlurmError(PlacementError):
    """A Slurm command failed; the message holds Slurm's own words."""


class SlurmLauncher(Launcher):
    """Runs a job's workers as the tasks of one Slurm job (``sbatch`` + ``srun``)."""

    name = "slurm"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.partition = ""
        self._remote_nodes: list[str] = []
        self._node_addresses: list[str] = []

    # -- Slurm commands --------------------------------------------------------------------------
    def command(self, name: str) -> str:
        """The path of Slurm command ``name`` (``resource.slurm.bin_dir`` or the PATH)."""
        folder = self.config.get("resource.slurm.bin_dir")
        found = shutil.which(name, path=str(folder)) if folder else shutil.which(name)
        if found is None:
            where = f"in resource.slurm.bin_dir {str(folder)!r}" if folder else "on the PATH"
            msg = (
                f"the slurm cluster needs the Slurm client, but there is no {name} {where} "
                "(install Slurm's client or set resource.slurm.bin_dir)"
            )
            raise SlurmError(msg)
        return found

    def run_slurm(self, *args: str, stdin: str | None = None) -> str:
        """Run a Slurm command; its stdout, or :class:`SlurmError` with its own error lines."""
        cmd = [self.command(args[0]), *args[1:]]
        try:
            done = subprocess.run(
                cmd, input=stdin, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            msg = f"{args[0]} did not answer within {_COMMAND_TIMEOUT:g} s (is slurmctld up?)"
            raise SlurmError(msg) from None
        if done.returncode != 0:
            raise SlurmError(_slurm_words(done.stderr or done.stdout, args[0]))
        return done.stdout

    # -- placement -------------------------------------------------------------------------------
    def check(self, job: Job) -> None:
        self.command("sbatch")
        try:
            partitions = [
                parse_record(line)
                for line in self.run_slurm("scontrol", "show", "partition", "-o").splitlines()
                if line.strip()
            ]
        except SlurmError as exc:
            msg = (
                f"cannot reach the Slurm controller: {exc} (is SLURM_CONF right, "
                "and slurmctld running?)"
            )
            raise SlurmError(msg) from None
        self.partition = self._partition(partitions)
        nodes = self._nodes(next(p for p in partitions if p["PartitionName"] == self.partition))
        cpus = self.cpus_per_task(job)
        if nodes and cpus > max(int(n.get("CPUTot", "0") or 0) for n in nodes):
            most = max(int(n.get("CPUTot", "0") or 0) for n in nodes)
            msg = (
                f"each worker asks for {cpus} CPUs (resource.cpu) but no node of Slurm partition "
                f"{self.partition!r} has more than {most}: lower resource.cpu or choose another "
                "resource.slurm.partition"
            )
            raise SlurmError(msg)
        memory = self.mem_per_cpu(job) * cpus
        most_memory = max((int(n.get("RealMemory", "0") or 0) for n in nodes), default=0)
        if nodes and most_memory and memory > most_memory:
            msg = (
                f"each worker asks for {memory} MB (resource.memory_mb) but no node of Slurm "
                f"partition {self.partition!r} has more than {most_memory} MB: lower "
                "resource.memory_mb or choose another resource.slurm.partition"
            )
            raise SlurmError(msg)
        self._node_addresses = [n.get("NodeAddr") or n["NodeName"] for n in nodes]
        self._remote_nodes = [
            n["NodeName"] for n in nodes if not is_local_host(n.get("NodeAddr") or n["NodeName"])
        ]
        self._check_interfaces(job)

    def _partition(self, partitions: list[dict[str, str]]) -> str:
        names = [p.get("PartitionName", "") for p in partitions]
        wanted = str(self.config.get("resource.slurm.partition") or "")
        if wanted:
            if wanted not in names:
                msg = (
                    f"Slurm partition {wanted!r} does not exist (partitions: {', '.join(names)}): "
                    "set resource.slurm.partition to one of them"
                )
                raise SlurmError(msg)
            return wanted
        default = [p["PartitionName"] for p in partitions if p.get("Default") == "YES"]
        if not default:
            msg = (
                f"the Slurm cluster has no default partition (partitions: {', '.join(names)}): "
                "set resource.slurm.partition"
            )
            raise SlurmError(msg)
        return default[0]

    def _nodes(self, partition: Mapping[str, str]) -> list[dict[str, str]]:
        expression = partition.get("Nodes", "")
        if not expression or expression == "(null)":
            return []
        names = set(self.run_slurm("scontrol", "show", "hostnames", expression).split())
        lines = self.run_slurm("scontrol", "show", "node", "-o").splitlines()
        return [r for r in map(parse_record, lines) if r.get("NodeName") in names]

    def _check_interfaces(self, job: Job) -> None:
        if not self._remote_nodes:
            return
        master = str(self.config["master.interface"])
        if is_loopback(master):
            msg = (
                f"Slurm partition {self.partition!r} has nodes on other hosts "
                f"({', '.join(self._remote_nodes[:3])}) but the job master listens on {master}: "
                "set master.interface to 0.0.0.0 or an address of this host they reach"
            )
            raise SlurmError(msg)
        single_node = int(self.config.get("resource.slurm.nodes") or 0) == 1
        interface = str(self.config["network.interface"])
        if job.workers > 1 and not single_node and is_loopback(interface):
            msg = (
                f"the workers may run on several nodes of Slurm partition {self.partition!r} but "
                f"the tcp channel listens on {interface}: set network.interface to 0.0.0.0 "
                "(or resource.slurm.nodes to 1)"
            )
            raise SlurmError(msg)

    def cpus_per_task(self, job: Job) -> int:
        return max(1, math.ceil(job.resources.cpu))

    def mem_per_cpu(self, job: Job) -> int:
        return max(1, math.ceil(job.resources.memory_mb / self.cpus_per_task(job)))

    # -- launch ----------------------------------------------------------------------------------
    def mpi_plugin(self) -> str | None:
        """The ``srun --mpi`` value, or None for the cluster's ``MpiDefault``."""
        chosen = str(self.config.get("resource.slurm.mpi", "auto"))
        if chosen == "auto":
            return "pmi2" if self.config.get("network.channel") == "mpi" else None
        return chosen

    def sbatch_command(self, job: Job, job_id: str, folder: Path) -> list[str]:
        """The ``sbatch`` arguments (the script comes on standard input)."""
        cfg = self.config
        args = [
            "sbatch",
            "--parsable",
            f"--job-name={job_id}",
            f"--ntasks={job.workers}",
            f"--cpus-per-task={self.cpus_per_task(job)}",
            f"--mem-per-cpu={self.mem_per_cpu(job)}M",
            f"--output={folder / 'slurm-%j.out'}",
            f"--chdir={os.getcwd()}",
        ]
        if self.partition or cfg.get("resource.slurm.partition"):
            args.append(f"--partition={self.partition or cfg['resource.slurm.partition']}")
        if cfg.get("resource.slurm.time_limit"):
            args.append(f"--time={cfg['resource.slurm.time_limit']}")
        if int(cfg.get("resource.slurm.nodes") or 0) > 0:
            args.append(f"--nodes={int(cfg['resource.slurm.nodes'])}")
        if cfg.get("resource.slurm.account"):
            args.append(f"--account={cfg['resource.slurm.account']}")
        return [*args, *(str(a) for a in cfg.get("resource.slurm.sbatch_args", ()))]

    def srun_command(self, folder: Path) -> list[str]:
        """The ``srun`` line of the batch script: one task per worker, each with its log files."""
        args = ["srun", "--kill-on-bad-exit=1", "--unbuffered"]
        plugin = self.mpi_plugin()
        if plugin:
            args.append(f"--mpi={plugin}")
        args += [f"--output={folder / 'worker-%t.out'}", f"--error={folder / 'worker-%t.err'}"]
        return [*args, *(str(a) for a in self.config.get("resource.slurm.srun_args", ()))]

    def launch(self, job: Job, env: dict[str, str]) -> SlurmHandle:
        if not self.partition:
            self.check(job)
        job_id = env["TWISTER2_JOB_ID"]
        folder = Path(self.config["job.log_dir"]) / job_id / "slurm"
        folder.mkdir(parents=True, exist_ok=True)
        secret_file = folder / "secret"
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(env["TWISTER2_JOB_SECRET"])
        toward = (self._node_addresses or ["127.0.0.1"])[-1]
        worker_env = {
            **env,
            "TWISTER2_MASTER_ADDRESS": advertised_address(env["TWISTER2_MASTER_ADDRESS"], toward),
        }
        python = str(self.config.get("resource.slurm.python") or sys.executable)
        script = batch_script(
            worker_env, secret_file, self.srun_command(folder), [python, "-m", "twister2.worker"]
        )
        (folder / "batch.sh").write_text(script)
        try:
            out = self.run_slurm(*self.sbatch_command(job, job_id, folder), stdin=script)
        except SlurmError as exc:
            secret_file.unlink(missing_ok=True)
            msg = (
                f"Slurm rejected the job: {exc} ({job.workers} tasks x "
                f"{self.cpus_per_task(job)} CPUs x {self.mem_per_cpu(job)} MB per CPU on "
                f"partition {self.partition!r}): lower --workers, resource.cpu or "
                "resource.memory_mb, or set resource.slurm.partition"
            )
            raise SlurmError(msg) from None
        slurm_id = out.strip().split(";")[0]
        (folder / "jobid").write_text(slurm_id + "\n")
        log.info("job %s is Slurm job %s (partition %s)", job_id, slurm_id, self.partition)
        join_timeout = float(self.config.get("master.join_timeout", 60.0))
        return SlurmHandle(self, slurm_id, folder, join_timeout)


def _slurm_words(text: str, command: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    words = [re.sub(rf"^{command}: (error: |fatal: )?", "", ln) for ln in lines]
    return "; ".join(words[-3:]) or f"{command} failed"


class _Tail:
    """New complete lines of a file, read without blocking each time it is asked."""

    def __init__(self, path: Path, out: TextIO) -> None:
        self.path = path
        self.out = out
        self.offset = 0
        self.partial = b""

    def pump(self, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        self.offset += len(data)
        data = self.partial + data
        if final:
            complete, self.partial = data, b""
        else:
            cut = data.rfind(b"\n") + 1
            complete, self.partial = data[:cut], data[cut:]
        if complete:
            self.out.write(complete.decode(errors="replace"))
            self.out.flush()


class SlurmHandle(LaunchHandle):
    """One submitted Slurm job: followed by ``scontrol``, ended by ``scancel``."""

    def __init__(
        self, launcher: SlurmLauncher, slurm_id: str, folder: Path, join_timeout: float
    ) -> None:
        self.launcher = launcher
        self.slurm_id = slurm_id
        self.folder = folder
        self.state = "PENDING"
        self.reason = ""
        self.exit = ""
        self._started = time.monotonic()
        self._pending_deadline = self._started + max(1.0, join_timeout - 2.0)
        self._next_query = 0.0
        self._reported = False
        self._tails: dict[Path, _Tail] = {}
        self._interval = float(launcher.config.get("resource.slurm.poll_interval", 1.0))

    # -- following -------------------------------------------------------------------------------
    def query(self) -> str:
        """Ask Slurm for the job's state now; returns it."""
        try:
            out = self.launcher.run_slurm("scontrol", "show", "job", "-o", self.slurm_id)
        except SlurmError as exc:
            if "Invalid job id" not in str(exc):
                log.debug("scontrol show job %s: %s", self.slurm_id, exc)
                return self.state
            fields = {"JobState": "GONE"}
        else:
            fields = parse_record(out)
        self.state = fields.get("JobState", self.state)
        self.reason = fields.get("Reason", "")
        self.exit = fields.get("ExitCode", self.exit)
        self._next_query = time.monotonic() + self._interval
        return self.state

    def _maybe_query(self) -> None:
        if self.state not in ENDED and time.monotonic() >= self._next_query:
            self.query()

    def pump_output(self, final: bool = False) -> None:
        """Copy new lines of the batch script's and the workers' output to this process's."""
        for path in sorted(self.folder.glob("*.out")) + sorted(self.folder.glob("*.err")):
            if path not in self._tails:
                to_stderr = path.suffix == ".err" or path.name.startswith("slurm-")
                self._tails[path] = _Tail(path, sys.stderr if to_stderr else sys.stdout)
        for tail in self._tails.values():
            tail.pump(final)

    def poll(self) -> list[tuple[int, int]]:
        self.pump_output()
        self._maybe_query()
        if self.state == "PENDING":
            self._check_pending()
        if self.state in ENDED and not self._reported:
            self._reported = True
            self.pump_output(final=True)
            if self.state != "COMPLETED":
                log.warning(
                    "Slurm job %s ended %s (exit code %s); its output: %s",
                    self.slurm_id,
                    self.state,
                    self.exit or "?",
                    self.folder,
                )
            return [(WHOLE_JOB, exit_code(self.exit) or (0 if self.state == "COMPLETED" else 1))]
        return []

    def _check_pending(self) -> None:
        reason = self.reason
        if reason in HOPELESS or (reason.startswith(("QOSMax", "AssocMax")) and "PerJob" in reason):
            msg = (
                f"Slurm job {self.slurm_id} cannot start: it is pending with reason {reason} "
                f"on partition {self.launcher.partition!r} (more than the partition allows?): "
                "lower --workers, resource.cpu, resource.memory_mb or resource.slurm.time_limit, "
                "or set resource.slurm.partition"
            )
            raise SlurmError(msg)
        if time.monotonic() > self._pending_deadline:
            waited = time.monotonic() - self._started
            msg = (
                f"Slurm job {self.slurm_id} was still pending after {waited:.0f} s "
                f"(reason {reason or 'unknown'}): raise master.join_timeout to wait longer"
            )
            raise SlurmError(msg)

    def alive(self) -> bool:
        self._maybe_query()
        return self.state not in ENDED

    # -- ending ----------------------------------------------------------------------------------
    def stop(self, grace: float) -> None:
        """Let a completed or failed job end by itself (its state then says so); else cancel."""
        try:
            if self.state not in ENDED:
                outcome = summarize(self.folder.parent).state
                if outcome in ("COMPLETED", "FAILED"):
                    self._wait_end(grace + 2.0)
                if self.state not in ENDED:
                    with contextlib.suppress(SlurmError):
                        self.launcher.run_slurm("scancel", self.slurm_id)
                    self._wait_end(grace + 10.0)
                if self.state not in ENDED:
                    log.warning("Slurm job %s still %s after scancel", self.slurm_id, self.state)
        finally:
            self.pump_output(final=True)
            (self.folder / "secret").unlink(missing_ok=True)

    def _wait_end(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.query() not in ENDED and time.monotonic() < deadline:
            self.pump_output()
            time.sleep(0.2)


register_launcher("slurm", SlurmLauncher)

"""Real Slurm clusters for the tests, from the project's scripts (scripts/slurm, scripts/netns).

A single-node cluster on loopback, and a cluster of test hosts (network namespaces), each node
its own host. Every daemon is started by the scripts and stopped by its PID file. Names, ports,
folders and subnets are unique per test process, so parallel test processes (pytest -n) each get
their own clusters.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.resource.netns_hosts import TestHosts, make_test_hosts, missing_netns

ROOT = Path(__file__).resolve().parents[2]
SLURM_SCRIPTS = ROOT / "scripts" / "slurm"
INFRA = Path("/tmp/twister2-infra")


__all__ = [
    "SlurmCluster",
    "missing_netns",
    "missing_slurm",
    "start_single_node",
    "start_test_hosts",
]


def missing_slurm() -> str | None:
    """Why a real Slurm cluster cannot start here, or None when it can."""
    if os.geteuid() != 0:
        return "real Slurm clusters need root (they run slurmctld, slurmd and munged)"
    for tool in ("slurmctld", "slurmd", "sbatch", "munged", "python3"):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            return f"{tool} is not installed (scripts/system_deps.sh installs slurm-wlm and munge)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


@dataclass
class SlurmCluster:
    """A running Slurm cluster: its ``slurm.conf`` and how to run commands where clients run."""

    base: Path
    conf: Path
    client_prefix: list[str] = field(default_factory=list)
    """Prefix of a client command: ``ip netns exec <node 1>`` on the test-host cluster."""
    hosts: list[str] = field(default_factory=list)
    test_hosts: TestHosts | None = None

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def slurm(self, *args: str) -> str:
        """Run a Slurm client command on the cluster; its stdout."""
        done = _run([*self.client_prefix, *args], self.env())
        return done.stdout

    def job_state(self, slurm_id: str) -> str:
        out = self.slurm("scontrol", "show", "job", "-o", slurm_id)
        for token in out.split():
            if token.startswith("JobState="):
                return token.split("=", 1)[1]
        return "GONE"

    def stop(self) -> None:
        env = {"SLURM_DOWN_RUN": " ".join(self.client_prefix)}
        _run([str(SLURM_SCRIPTS / "slurm_down.sh"), str(self.base)], env)
        if self.test_hosts is not None:
            self.test_hosts.remove()
        shutil.rmtree(self.base, ignore_errors=True)


def start_single_node(tag: str, cpus: int = 4) -> SlurmCluster:
    """One node on 127.0.0.1 with ``cpus`` CPUs; sbatch rejects what it cannot run."""
    base = INFRA / f"pytest-{tag}-slurm"
    env = {
        "SLURM_TEST_DIR": str(base),
        "SLURM_TEST_CPUS": str(cpus),
        "SLURM_TEST_CTLD_PORT": str(_free_port()),
        "SLURM_TEST_SLURMD_PORT": str(_free_port()),
        "SLURM_TEST_ENFORCE": "1",
    }
    cluster = SlurmCluster(base=base, conf=base / "slurm.conf")
    done = _run([str(SLURM_SCRIPTS / "slurm_up.sh")], env)
    if done.returncode != 0:
        cluster.stop()
        msg = f"slurm_up.sh failed ({done.returncode}): {done.stderr[-2000:]}"
        raise RuntimeError(msg)
    return cluster


def start_test_hosts(tag: str, nodes: int = 3) -> SlurmCluster:
    """``nodes`` test hosts, each a Slurm node with 2 CPUs; clients run on the first host.

    This cluster does not enforce partition limits, so a job asking for too much pends with a
    reason (as on many real clusters) instead of being rejected.
    """
    hosts = make_test_hosts(nodes)
    base = INFRA / f"pytest-{tag}-slurm-hosts"
    cluster = SlurmCluster(
        base=base,
        conf=base / "slurm.conf",
        client_prefix=hosts.run_on(0),
        hosts=hosts.names,
        test_hosts=hosts,
    )
    env = {**hosts.env, "SLURM_MN_DIR": str(base), "SLURM_TEST_ENFORCE": "0"}
    done = _run([str(SLURM_SCRIPTS / "slurm_netns_up.sh"), str(nodes)], env)
    if done.returncode != 0:
        cluster.stop()
        msg = f"slurm_netns_up.sh failed ({done.returncode}): {done.stderr[-2000:]}"
        raise RuntimeError(msg)
    return cluster

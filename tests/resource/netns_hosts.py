"""Test hosts: network namespaces made and removed by scripts/netns, unique per test process."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NETNS_SCRIPTS = ROOT / "scripts" / "netns"


def missing_netns() -> str | None:
    """Why test hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "test hosts (network namespaces) need root"
    for tool in ("ip", "unshare"):
        if not shutil.which(tool):
            return f"{tool} is not installed (iproute2, util-linux)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"network namespaces are not available: {probe.stderr.strip()}"
    return None


@dataclass
class TestHosts:
    """Hosts ``names[i]`` with address ``addresses[i]``; ``env`` names them for the scripts."""

    __test__ = False  # not a test class

    names: list[str]
    addresses: list[str]
    env: dict[str, str]

    def run_on(self, index: int) -> list[str]:
        """The prefix of a command that runs on host ``index``."""
        return ["ip", "netns", "exec", self.names[index]]

    def remove(self) -> None:
        subprocess.run(
            [str(NETNS_SCRIPTS / "netns_down.sh"), str(len(self.names))],
            env={**os.environ, **self.env},
            capture_output=True,
            timeout=60,
        )


def make_test_hosts(count: int) -> TestHosts:
    """``count`` new test hosts, on the first free prefix ``t2s<k>h`` and subnet 10.213.<100+k>."""
    for k in range(100):
        prefix = f"t2s{k}h"
        subnet = f"10.213.{100 + k}"
        env = {"T2_NETNS_PREFIX": prefix, "T2_NETNS_SUBNET": subnet}
        made = subprocess.run(
            [str(NETNS_SCRIPTS / "netns_up.sh"), str(count)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if made.returncode == 0:
            return TestHosts(
                names=[f"{prefix}{i}" for i in range(1, count + 1)],
                addresses=[f"{subnet}.{i}" for i in range(1, count + 1)],
                env=env,
            )
        if "File exists" not in made.stderr and "already in use" not in made.stderr:
            msg = f"netns_up.sh failed ({made.returncode}): {made.stderr[-2000:]}"
            raise RuntimeError(msg)
    msg = "no free test-host prefix t2s0h..t2s99h"
    raise RuntimeError(msg)

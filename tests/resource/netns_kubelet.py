"""A FAKE kubelet for the fake Kubernetes API server: it runs each pod on a test host.

Each pod's container command runs on one test host (a network namespace made by
scripts/netns/netns_up.sh), with the pod's name as its hostname, exactly the environment the pod
would have (and nothing of the caller's), and the cluster's DNS replaced by the test host's
/etc/hosts: the job master's Service name maps to its EndpointSlice address, and each worker
pod's name to its host's address (what the pods' DNS search list resolves in a real cluster).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.resource.fake_kube_api import FakeKubeApi, Kubelet
from twister2.resource.kubernetes.pod import ordinal


class NetnsKubelet(Kubelet):
    """Pod ``i`` of a StatefulSet runs on test host ``i % len(hosts)``."""

    def __init__(self, hosts: list[tuple[str, str]]) -> None:
        self.hosts = hosts  # (namespace name, address)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.names: dict[str, str] = {}  # DNS name -> address
        self.logs: dict[str, Path] = {}

    def _host(self, pod: dict[str, Any]) -> tuple[str, str]:
        return self.hosts[ordinal(pod["metadata"]["name"]) % len(self.hosts)]

    def pod_ip(self, pod: dict[str, Any]) -> str:
        return self._host(pod)[1]

    def _write_hosts(self, server: FakeKubeApi) -> None:
        for (plural, ns, _), obj in server.objects.items():
            if plural == "endpointslices":
                service = obj["metadata"]["labels"]["kubernetes.io/service-name"]
                address = obj["endpoints"][0]["addresses"][0]
                for alias in (service, f"{service}.{ns}", f"{service}.{ns}.svc"):
                    self.names[alias] = address
        lines = ["127.0.0.1 localhost"] + [f"{ip} {host}" for host, ip in self.hosts]
        lines += [f"{ip} {name}" for name, ip in sorted(self.names.items())]
        for host, _ in self.hosts:
            path = Path("/etc/netns") / host / "hosts"
            with open(path, "r+") as f:  # in place: running pods see the bind-mounted file change
                f.write("\n".join(lines) + "\n")
                f.truncate()

    def start(self, pod: dict[str, Any], env: dict[str, str], server: FakeKubeApi) -> None:
        name = pod["metadata"]["name"]
        host, ip = self._host(pod)
        self.names[name] = ip
        self._write_hosts(server)
        container = pod["spec"]["containers"][0]
        pod_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/root", **env}
        log = Path(os.environ.get("FAKE_KUBELET_LOGS", "/tmp")) / f"{name}.log"
        self.logs[name] = log
        cmd = [
            "ip", "netns", "exec", host, "unshare", "--uts", "sh", "-c",
            'hostname "$0" && exec "$@"', name,
            "env", "-i", *(f"{k}={v}" for k, v in pod_env.items()), *container["command"],
        ]  # fmt: skip
        with open(log, "wb") as out:
            self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def exit_code(self, pod_name: str) -> int | None:
        proc = self.procs.get(pod_name)
        return None if proc is None else proc.poll()

    def stop(self, pod_name: str, grace: float) -> None:
        proc = self.procs.pop(pod_name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=max(grace, 0.5))
            except subprocess.TimeoutExpired:
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

"""Run one twister2 job through the kubernetes launcher, the FAKE API server and a FAKE kubelet.

Runs on the first test host (inside its network namespace), where the client and its job master
run; the fake kubelet starts the worker pods on the test hosts. Prints one JSON line: the job's
values or error, the requests the API server saw, and the objects left afterwards.

    ip netns exec HOST1 python -m tests.resource.kube_pods_e2e JOB WORKERS HOST1=IP1 HOST2=IP2 ...
"""

from __future__ import annotations

import json
import sys
from typing import Any

import twister2
from tests import jobs
from tests.resource import remote_jobs
from tests.resource.fake_kube_api import FakeKubeApi
from tests.resource.netns_kubelet import NetnsKubelet

ENTRIES = {"where": remote_jobs.where, "fail": jobs.raise_in_last}


def main() -> None:
    entry, workers = ENTRIES[sys.argv[1]], int(sys.argv[2])
    hosts = [tuple(arg.split("=", 1)) for arg in sys.argv[3:]]
    kubelet = NetnsKubelet([(h, ip) for h, ip in hosts])
    api = FakeKubeApi(token="t0ken", kubelet=kubelet)
    url = api.start(host=hosts[0][1])
    token_file = f"/tmp/fake-kube-token-{hosts[0][0]}"
    with open(token_file, "w") as f:
        f.write("t0ken\n")
    outcome: dict[str, Any] = {}
    try:
        result = twister2.run(
            entry,
            workers=workers,
            cluster="kubernetes",
            config={
                "resource.kubernetes.api_server": url,
                "resource.kubernetes.token_file": token_file,
                "resource.kubernetes.image": "registry.example/twister2-job:1",
                "resource.kubernetes.python": sys.executable,
                "resource.kubernetes.poll_interval": 0.3,
                "master.interface": "0.0.0.0",
                "network.interface": "0.0.0.0",
            },
        )
        outcome["values"] = result.values
    except Exception as exc:  # the test reads the error
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        api.stop()
    outcome["requests"] = api.requests
    outcome["left"] = sorted(f"{k[0]}/{k[2]}" for k in api.objects)
    outcome["logs"] = {name: path.read_text()[-3000:] for name, path in kubelet.logs.items()}
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()

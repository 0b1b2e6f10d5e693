"""A worker pod's entry point: from the pod's environment to a twister2 worker.

``python -m twister2.resource.kubernetes.pod`` is the command of every worker container. The pod
gives it ``POD_NAME`` (``<name>-worker-<ordinal>``, from the downward API), the job's id and the
job master's address (``<name>-master:<port>``, from the job's ConfigMap) and the job's secret
(from the job's Secret). The ordinal becomes the worker's id; the worker then runs as under any
launcher.

A worker that completed stays (idle) until the job's objects are deleted, so the StatefulSet
does not start it again; one that failed exits with its code.

Example
-------
>>> ordinal("hello-20261124-1a2b-worker-12")
12
>>> ordinal("no-ordinal")
Traceback (most recent call last):
...
ValueError: POD_NAME 'no-ordinal' does not end in a StatefulSet ordinal (-0, -1, ...)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

__all__ = ["main", "ordinal", "worker_environment"]

REQUIRED = ("POD_NAME", "TWISTER2_JOB_ID", "TWISTER2_MASTER_ADDRESS", "TWISTER2_JOB_SECRET")


def ordinal(pod_name: str) -> int:
    """The StatefulSet ordinal at the end of a pod's name."""
    _, _, tail = pod_name.rpartition("-")
    if not tail.isdigit():
        msg = f"POD_NAME {pod_name!r} does not end in a StatefulSet ordinal (-0, -1, ...)"
        raise ValueError(msg)
    return int(tail)


def worker_environment(environ: dict[str, str]) -> dict[str, str]:
    """The worker's environment: the pod's, with ``TWISTER2_WORKER_INDEX`` from the ordinal."""
    missing = [name for name in REQUIRED if not environ.get(name)]
    if missing:
        msg = (
            f"the pod's environment lacks {', '.join(missing)}: worker pods are made by "
            "`twister2 submit kubernetes`, which sets them"
        )
        raise ValueError(msg)
    return {**environ, "TWISTER2_WORKER_INDEX": str(ordinal(environ["POD_NAME"]))}


def main() -> int:
    """Run the worker; the container's exit code."""
    try:
        env = worker_environment(dict(os.environ))
    except ValueError as exc:
        print(f"twister2 pod: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    worker = subprocess.Popen([sys.executable, "-m", "twister2.worker"], env=env)

    def forward(signum: int, frame: object) -> None:
        stop.set()
        if worker.poll() is None:
            worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = worker.wait()
    if code == 0 and not stop.is_set():
        print(f"twister2 pod: worker {env['TWISTER2_WORKER_INDEX']} completed", file=sys.stderr)
        stop.wait()  # until the pod is deleted
    return code


if __name__ == "__main__":
    sys.exit(main())

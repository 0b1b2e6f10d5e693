"""The nomad cluster: the job's workers are the allocations of one Nomad batch job.

The client keeps the job master and registers, through Nomad's HTTP API, a batch job with one
task group of ``count = workers`` tasks (``raw_exec`` or ``docker`` driver). A worker's id is its
allocation index (``${NOMAD_ALLOC_INDEX}``, interpolated by Nomad). The job's secret goes into a
Nomad variable under ``nomad/jobs/<job id>``, which only the job's own tasks read (a template
turns it into an environment variable), not into the job's spec. The client follows the job's
allocations and evaluations, and stops and purges the job (and its variable) at the end.

Example
-------
>>> job = nomad_job("hello-1", 2, python="/usr/bin/python3", master_address="10.0.0.2:4000")
>>> group = job["TaskGroups"][0]
>>> group["Count"], group["Tasks"][0]["Driver"], group["Tasks"][0]["Env"]["TWISTER2_WORKER_INDEX"]
(2, 'raw_exec', '${NOMAD_ALLOC_INDEX}')
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from twister2.job import Job
from twister2.resource._remote import (
    HttpError,
    advertised_address,
    http_json,
    is_local_host,
    is_loopback,
)
from twister2.resource.base import Launcher, LaunchHandle, PlacementError, register_launcher

__all__ = ["NomadHandle", "NomadLauncher", "nomad_job"]

log = logging.getLogger(__name__)

GROUP = "workers"
TASK = "worker"
_TERMINAL = frozenset({"complete", "failed", "lost"})


def variable_path(job_id: str) -> str:
    """Where the job's secret lives: a path only the job's own tasks may read."""
    return f"nomad/jobs/{job_id}"


def nomad_job(
    job_id: str,
    workers: int,
    *,
    python: str,
    master_address: str,
    cpu: float = 1.0,
    memory_mb: int = 512,
    driver: str = "raw_exec",
    image: str = "",
    datacenters: list[str] | None = None,
    namespace: str = "",
    region: str = "",
    kill_grace: float = 3.0,
) -> dict[str, Any]:
    """The Nomad job (the ``Job`` object of ``POST /v1/jobs``) that runs the workers."""
    config: dict[str, Any] = {"command": python, "args": ["-m", "twister2.worker"]}
    if driver == "docker":
        config.update(image=image, network_mode="host")
    secret_template = (
        f'{{{{ with nomadVar "{variable_path(job_id)}" }}}}'
        "TWISTER2_JOB_SECRET={{ .secret }}{{ end }}\n"
    )
    task = {
        "Name": TASK,
        "Driver": driver,
        "Config": config,
        "Env": {
            "TWISTER2_JOB_ID": job_id,
            "TWISTER2_MASTER_ADDRESS": master_address,
            "TWISTER2_WORKER_INDEX": "${NOMAD_ALLOC_INDEX}",
        },
        "Templates": [
            {
                "EmbeddedTmpl": secret_template,
                "DestPath": "secrets/twister2.env",
                "Envvars": True,
                "ChangeMode": "noop",
            }
        ],
        "Resources": {"CPU": max(1, math.ceil(cpu * 1000)), "MemoryMB": memory_mb},
        "KillTimeout": int(kill_grace * 1e9),
    }
    job: dict[str, Any] = {
        "ID": job_id,
        "Name": job_id,
        "Type": "batch",
        "Datacenters": list(datacenters or ["*"]),
        "Meta": {"twister2": "job"},
        "TaskGroups": [
            {
                "Name": GROUP,
                "Count": workers,
                "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
                "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
                "Tasks": [task],
            }
        ],
    }
    if namespace:
        job["Namespace"] = namespace
    if region:
        job["Region"] = region
    return job


class NomadLauncher(Launcher):
    """Registers the job with Nomad, follows its allocations, stops and purges it."""

    name = "nomad"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.address = str(config.get("resource.nomad.address") or "http://127.0.0.1:4646")
        self.address = self.address.rstrip("/")
        self._token: str | None = None

    def token(self) -> str:
        """The ACL token: ``resource.nomad.token_file``, else ``$NOMAD_TOKEN``, else none."""
        if self._token is None:
            path = self.config.get("resource.nomad.token_file")
            if path:
                try:
                    self._token = Path(path).read_text().strip()
                except OSError as exc:
                    msg = f"cannot read resource.nomad.token_file {str(path)!r}: {exc.strerror}"
                    raise PlacementError(msg) from None
            else:
                self._token = os.environ.get("NOMAD_TOKEN", "")
        return self._token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One call to Nomad's HTTP API; :class:`PlacementError` saying what to fix."""
        headers = {"X-Nomad-Token": self.token()} if self.token() else {}
        query = []
        if self.config.get("resource.nomad.namespace"):
            query.append(f"namespace={quote(str(self.config['resource.nomad.namespace']))}")
        if self.config.get("resource.nomad.region"):
            query.append(f"region={quote(str(self.config['resource.nomad.region']))}")
        sep = "&" if "?" in path else "?"
        url = f"{self.address}{path}" + (sep + "&".join(query) if query else "")
        try:
            answer, _ = http_json(method, url, body, headers=headers)
        except HttpError as exc:
            if exc.status == 0:
                msg = f"cannot reach Nomad at {self.address} ({exc}): set resource.nomad.address"
            elif exc.status in (401, 403):
                msg = (
                    f"Nomad at {self.address} refused the ACL token ({exc.status}: missing, "
                    "expired or not allowed): set resource.nomad.token_file or NOMAD_TOKEN"
                )
            else:
                msg = f"Nomad API call failed: {exc}"
            raise NomadError(msg, exc.status) from None
        return answer

    def check(self, job: Job) -> None:
        self.call("GET", "/v1/agent/self")
        if self.config.get("resource.nomad.driver") == "docker" and not self.config.get(
            "resource.nomad.image"
        ):
            msg = "the docker driver needs an image: set resource.nomad.image"
            raise PlacementError(msg)
        host = urlsplit(self.address).hostname or "127.0.0.1"
        master = str(self.config.get("master.interface", "127.0.0.1"))
        if is_loopback(master) and not is_local_host(host):
            msg = (
                f"Nomad's clients may be other hosts but the job master listens on {master}: "
                "set master.interface to 0.0.0.0 or an address of this host they reach"
            )
            raise PlacementError(msg)

    def launch(self, job: Job, env: dict[str, str]) -> NomadHandle:
        cfg = self.config
        job_id = env["TWISTER2_JOB_ID"]
        toward = urlsplit(self.address).hostname or "127.0.0.1"
        driver = str(cfg.get("resource.nomad.driver") or "raw_exec")
        python = str(cfg.get("resource.nomad.python") or "")
        spec = nomad_job(
            job_id,
            job.workers,
            python=python or (sys.executable if driver == "raw_exec" else "python"),
            master_address=advertised_address(env["TWISTER2_MASTER_ADDRESS"], toward),
            cpu=job.resources.cpu,
            memory_mb=job.resources.memory_mb,
            driver=driver,
            image=str(cfg.get("resource.nomad.image") or ""),
            datacenters=list(cfg.get("resource.nomad.datacenters") or ["*"]),
            namespace=str(cfg.get("resource.nomad.namespace") or ""),
            region=str(cfg.get("resource.nomad.region") or ""),
            kill_grace=float(cfg.get("master.kill_grace", 3.0)),
        )
        var = variable_path(job_id)
        self.call(
            "PUT", f"/v1/var/{var}", {"Path": var, "Items": {"secret": env["TWISTER2_JOB_SECRET"]}}
        )
        try:
            self.call("POST", "/v1/jobs", {"Job": spec})
        except BaseException:
            with contextlib.suppress(PlacementError):
                self.call("DELETE", f"/v1/var/{var}")
            raise
        log.info("job %s: Nomad job %s with %d allocations", job_id, job_id, job.workers)
        return NomadHandle(self, job_id, float(cfg.get("master.join_timeout", 60.0)))


class NomadError(PlacementError):
    """A Nomad API call failed."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def alloc_index(name: str) -> int:
    """The index in an allocation's name ``<job>.<group>[<index>]``.

    >>> alloc_index("hello-1.workers[3]")
    3
    """
    return int(name.rsplit("[", 1)[1].rstrip("]"))


class NomadHandle(LaunchHandle):
    """A registered Nomad job, followed through its allocations and evaluations."""

    def __init__(self, launcher: NomadLauncher, job_id: str, join_timeout: float) -> None:
        self.launcher = launcher
        self.job_id = job_id
        self.allocs: list[dict[str, Any]] = []
        self._reported: set[str] = set()
        self._stopped = False
        self._next = 0.0
        self._interval = float(launcher.config.get("resource.nomad.poll_interval", 1.0))
        self._placement_deadline = time.monotonic() + max(1.0, join_timeout - 2.0)

    def refresh(self) -> list[dict[str, Any]]:
        self.allocs = list(
            self.launcher.call("GET", f"/v1/job/{quote(self.job_id)}/allocations") or []
        )
        self._next = time.monotonic() + self._interval
        return self.allocs

    def poll(self) -> list[tuple[int, int]]:
        if self._stopped or time.monotonic() < self._next:
            return []
        ended = []
        for alloc in self.refresh():
            state = (alloc.get("TaskStates") or {}).get(TASK) or {}
            if alloc["ID"] in self._reported or state.get("State") != "dead":
                continue
            self._reported.add(alloc["ID"])
            code = 0
            for event in state.get("Events") or []:
                if event.get("Type") == "Terminated":
                    code = int(event.get("ExitCode", 0)) or (128 + int(event.get("Signal", 0)))
                elif event.get("Type") in ("Driver Failure", "Failed Validation", "Setup Failure"):
                    msg = (
                        f"Nomad could not start worker {alloc_index(alloc['Name'])}: "
                        f"{event.get('DisplayMessage') or event.get('Type')}: check "
                        "resource.nomad.driver, resource.nomad.python and resource.nomad.image"
                    )
                    raise NomadError(msg)
            ended.append((alloc_index(alloc["Name"]), code or (1 if state.get("Failed") else 0)))
        if len(self.allocs) < 1 and time.monotonic() > self._placement_deadline:
            self._placement_failure()
        return ended

    def _placement_failure(self) -> None:
        evals = self.launcher.call("GET", f"/v1/job/{quote(self.job_id)}/evaluations") or []
        for ev in evals:
            for group, metric in (ev.get("FailedTGAllocs") or {}).items():
                exhausted = metric.get("DimensionExhausted") or {}
                filtered = metric.get("ConstraintFiltered") or metric.get("ClassFiltered") or {}
                why = ", ".join(f"{k} ({v} nodes)" for k, v in {**exhausted, **filtered}.items())
                msg = (
                    f"Nomad could not place the {group} of job {self.job_id}: "
                    f"{metric.get('NodesEvaluated', 0)} nodes evaluated, "
                    f"{why or 'no node fits'}: lower --workers, resource.cpu or "
                    "resource.memory_mb, or check resource.nomad.datacenters"
                )
                raise NomadError(msg)
        msg = f"Nomad placed no worker of job {self.job_id}: raise master.join_timeout to wait"
        raise NomadError(msg)

    def alive(self) -> bool:
        if self._stopped:
            return False
        if time.monotonic() >= self._next:
            with contextlib.suppress(PlacementError):
                self.refresh()
        return any(a.get("ClientStatus") not in _TERMINAL for a in self.allocs)

    def stop(self, grace: float) -> None:
        """Stop and purge the job, wait (bounded) for its allocations to end, drop the secret."""
        if self._stopped:
            return
        self._stopped = True
        job = quote(self.job_id)
        try:
            with contextlib.suppress(NomadError):
                self.launcher.call("DELETE", f"/v1/job/{job}?purge=true")
            deadline = time.monotonic() + grace + 10.0
            while time.monotonic() < deadline:
                try:
                    allocs = self.refresh()
                except NomadError:
                    break
                if all(a.get("ClientStatus") in _TERMINAL for a in allocs):
                    break
                time.sleep(0.3)
        finally:
            with contextlib.suppress(NomadError):
                self.launcher.call("DELETE", f"/v1/var/{variable_path(self.job_id)}")


register_launcher("nomad", NomadLauncher)

"""The mesos cluster: a Mesos framework, through Mesos' v1 HTTP scheduler API, runs the workers.

The client keeps the job master and is the framework's scheduler: it SUBSCRIBEs to the Mesos
master (``POST /api/v1/scheduler``; the answer is a RecordIO stream of events), accepts offers
that fit workers (``resource.cpu`` CPUs and ``resource.memory_mb`` MB each) with LAUNCH
operations, declines the rest, ACKNOWLEDGEs every status update, and TEARDOWNs the framework at
the end (which kills whatever still runs). Worker ``i`` is task ``<job id>-<i>``; its id reaches
it in ``TWISTER2_WORKER_INDEX``.

Example
-------
>>> encode_record({"type": "HEARTBEAT"})
b'20\\n{"type":"HEARTBEAT"}'
>>> offer = {"resources": [scalar("cpus", 4.0), scalar("mem", 1024.0)]}
>>> fits(offer, cpu=1.0, memory_mb=512)
2
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import queue
import shlex
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twister2.job import Job
from twister2.resource._remote import (
    HttpError,
    advertised_address,
    http_json,
    is_local_host,
    is_loopback,
)
from twister2.resource.base import Launcher, LaunchHandle, PlacementError, register_launcher

__all__ = ["MesosHandle", "MesosLauncher", "encode_record", "fits", "read_records", "scalar"]

log = logging.getLogger(__name__)

SCHEDULER = "/api/v1/scheduler"
ENDED = {"TASK_FINISHED": 0, "TASK_KILLED": 143}
FAILED = frozenset({"TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE"})


def encode_record(message: Mapping[str, Any]) -> bytes:
    """One RecordIO record: the JSON message's length in bytes, a newline, the message."""
    data = json.dumps(message, separators=(",", ":")).encode()
    return str(len(data)).encode() + b"\n" + data


def read_records(stream: Any) -> Any:
    """Yield the JSON messages of a RecordIO stream (a file-like object) until it ends."""
    while True:
        header = stream.readline()
        if not header:
            return
        if not header.strip():
            continue
        yield json.loads(stream.read(int(header)))


def scalar(name: str, value: float) -> dict[str, Any]:
    """A scalar Mesos resource (``cpus``, ``mem`` in MB)."""
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def fits(offer: Mapping[str, Any], *, cpu: float, memory_mb: int) -> int:
    """How many workers of ``cpu`` CPUs and ``memory_mb`` MB the offer holds."""
    have = {"cpus": 0.0, "mem": 0.0}
    for res in offer.get("resources", []):
        if res.get("name") in have and res.get("type") == "SCALAR":
            have[res["name"]] += float(res["scalar"]["value"])
    return int(min(have["cpus"] // cpu, have["mem"] // memory_mb))


class MesosError(PlacementError):
    """The Mesos master refused a call or the framework could not place the job."""


class MesosLauncher(Launcher):
    """A Mesos framework that runs one job's workers as tasks."""

    name = "mesos"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.master = str(config.get("resource.mesos.master") or "http://127.0.0.1:5050")
        self.master = self.master.rstrip("/")

    def headers(self) -> dict[str, str]:
        principal = str(self.config.get("resource.mesos.principal") or "")
        if not principal:
            return {}
        path = self.config.get("resource.mesos.secret_file")
        try:
            secret = Path(path).read_text().strip() if path else ""
        except OSError as exc:
            msg = f"cannot read resource.mesos.secret_file {str(path)!r}: {exc.strerror}"
            raise MesosError(msg) from None
        token = base64.b64encode(f"{principal}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def check(self, job: Job) -> None:
        self.headers()
        host = urlsplit(self.master).hostname or "127.0.0.1"
        try:
            http_json("GET", f"{self.master}/version", headers=self.headers(), timeout=10.0)
        except HttpError as exc:
            raise _error(exc, self.master) from None
        master = str(self.config.get("master.interface", "127.0.0.1"))
        if is_loopback(master) and not is_local_host(host):
            msg = (
                f"Mesos agents may be other hosts but the job master listens on {master}: set "
                "master.interface to 0.0.0.0 or an address of this host they reach"
            )
            raise MesosError(msg)

    def launch(self, job: Job, env: dict[str, str]) -> MesosHandle:
        toward = urlsplit(self.master).hostname or "127.0.0.1"
        worker_env = {
            **env,
            "TWISTER2_MASTER_ADDRESS": advertised_address(env["TWISTER2_MASTER_ADDRESS"], toward),
        }
        python = str(self.config.get("resource.mesos.python") or sys.executable)
        handle = MesosHandle(self, job, worker_env, f"{shlex.quote(python)} -m twister2.worker")
        handle.subscribe()
        return handle


def _error(exc: HttpError, master: str) -> MesosError:
    if exc.status == 0:
        return MesosError(
            f"cannot reach the Mesos master at {master} ({exc}): set resource.mesos.master"
        )
    if exc.status in (401, 403):
        return MesosError(
            f"the Mesos master at {master} refused the framework's credentials ({exc.status}): "
            "set resource.mesos.principal and resource.mesos.secret_file"
        )
    return MesosError(f"Mesos scheduler call failed: {exc}")


class MesosHandle(LaunchHandle):
    """The framework of one job: a thread reads the event stream; :meth:`poll` acts on it."""

    def __init__(
        self, launcher: MesosLauncher, job: Job, env: dict[str, str], command: str
    ) -> None:
        self.launcher = launcher
        self.job = job
        self.env = env
        self.command = command
        self.job_id = env["TWISTER2_JOB_ID"]
        self.framework_id = ""
        self.stream_id = ""
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.pending = list(range(job.workers))  # workers not launched yet
        self.running: dict[int, str] = {}  # worker -> last state
        self._connection: http.client.HTTPConnection | None = None
        self._reader: threading.Thread | None = None
        self._torn_down = False
        timeout = float(launcher.config.get("resource.mesos.offer_timeout", 60.0))
        self._offer_deadline = time.monotonic() + timeout

    # -- the event stream ------------------------------------------------------------------------
    def subscribe(self) -> None:
        """SUBSCRIBE; the events then arrive on a reader thread."""
        url = urlsplit(self.launcher.master)
        conn_type = (
            http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        )
        conn = conn_type(url.hostname or "127.0.0.1", url.port, timeout=30.0)
        body = {
            "type": "SUBSCRIBE",
            "subscribe": {
                "framework_info": {
                    "user": "",
                    "name": f"twister2 {self.job_id}",
                    "roles": [str(self.launcher.config.get("resource.mesos.role") or "*")],
                    "capabilities": [{"type": "MULTI_ROLE"}],
                    "failover_timeout": 0.0,
                }
            },
        }
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **self.launcher.headers(),
        }
        try:
            conn.request("POST", SCHEDULER, json.dumps(body), headers)
            response = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise _error(HttpError(0, str(exc)), self.launcher.master) from None
        if response.status != 200:
            text = response.read().decode(errors="replace")
            conn.close()
            raise _error(HttpError(response.status, text[:300]), self.launcher.master)
        self.stream_id = response.getheader("Mesos-Stream-Id", "")
        self._connection = conn
        self._reader = threading.Thread(
            target=self._read, args=(response,), name="twister2-mesos-events", daemon=True
        )
        self._reader.start()

    def _read(self, response: http.client.HTTPResponse) -> None:
        try:
            for event in read_records(response):
                self.events.put(event)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            if not self._torn_down:
                self.events.put({"type": "ERROR", "error": {"message": f"event stream: {exc}"}})
        else:
            if not self._torn_down:
                self.events.put({"type": "ERROR", "error": {"message": "the event stream ended"}})

    def call(self, kind: str, **fields: Any) -> None:
        """One scheduler call of this framework."""
        body = {"framework_id": {"value": self.framework_id}, "type": kind, **fields}
        headers = {"Mesos-Stream-Id": self.stream_id, **self.launcher.headers()}
        try:
            http_json("POST", self.launcher.master + SCHEDULER, body, headers=headers)
        except HttpError as exc:
            raise _error(exc, self.launcher.master) from None

    # -- following -------------------------------------------------------------------------------
    def poll(self) -> list[tuple[int, int]]:
        ended: list[tuple[int, int]] = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            ended += self._handle(event)
        if self.pending and time.monotonic() > self._offer_deadline:
            res = self.job.resources
            waited = self.launcher.config.get("resource.mesos.offer_timeout", 60.0)
            msg = (
                f"Mesos offered no room for {len(self.pending)} of {self.job.workers} workers "
                f"({res.cpu:g} CPUs, {res.memory_mb} MB each) within {waited:g} s "
                "(resource.mesos.offer_timeout): lower --workers, resource.cpu or "
                "resource.memory_mb"
            )
            raise MesosError(msg)
        return ended

    def _handle(self, event: Mapping[str, Any]) -> list[tuple[int, int]]:
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            self.framework_id = event["subscribed"]["framework_id"]["value"]
        elif kind == "OFFERS":
            self._offers(event["offers"].get("offers", []))
        elif kind == "UPDATE":
            return self._update(event["update"]["status"])
        elif kind == "ERROR":
            msg = f"the Mesos master ended the framework: {event['error'].get('message', '')}"
            raise MesosError(msg)
        return []

    def _offers(self, offers: list[dict[str, Any]]) -> None:
        res = self.job.resources
        for offer in offers:
            room = fits(offer, cpu=res.cpu, memory_mb=res.memory_mb)
            chosen, self.pending = self.pending[:room], self.pending[room:]
            if not chosen:
                self.call(
                    "DECLINE",
                    decline={"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 5.0}},
                )
                continue
            tasks = [self._task(i, offer["agent_id"]) for i in chosen]
            operation = {"type": "LAUNCH", "launch": {"task_infos": tasks}}
            self.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [operation]})
            self.running.update(dict.fromkeys(chosen, "TASK_STAGING"))

    def _task(self, index: int, agent_id: Mapping[str, Any]) -> dict[str, Any]:
        variables = [{"name": k, "value": v} for k, v in self.env.items()]
        variables.append({"name": "TWISTER2_WORKER_INDEX", "value": str(index)})
        return {
            "name": f"twister2 worker {index}",
            "task_id": {"value": f"{self.job_id}-{index}"},
            "agent_id": dict(agent_id),
            "resources": [
                scalar("cpus", self.job.resources.cpu),
                scalar("mem", float(self.job.resources.memory_mb)),
            ],
            "command": {
                "shell": True,
                "value": self.command,
                "environment": {"variables": variables},
            },
        }

    def _update(self, status: Mapping[str, Any]) -> list[tuple[int, int]]:
        if status.get("uuid"):
            self.call(
                "ACKNOWLEDGE",
                acknowledge={
                    "agent_id": status["agent_id"],
                    "task_id": status["task_id"],
                    "uuid": status["uuid"],
                },
            )
        index = int(status["task_id"]["value"].rsplit("-", 1)[1])
        state = str(status.get("state", ""))
        self.running[index] = state
        if state in ENDED:
            return [(index, ENDED[state])]
        if state in FAILED:
            log.warning("Mesos task of worker %d: %s %s", index, state, status.get("message", ""))
            return [(index, 1)]
        return []

    def alive(self) -> bool:
        self.poll()
        return not self._torn_down and any(
            s not in ENDED and s not in FAILED for s in self.running.values()
        )

    def stop(self, grace: float) -> None:
        """TEARDOWN the framework (Mesos kills its tasks) and close the event stream."""
        if self._torn_down:
            return
        self._torn_down = True
        try:
            if self.framework_id:
                with contextlib.suppress(MesosError):
                    self.call("TEARDOWN")
        finally:
            if self._connection is not None:
                with contextlib.suppress(OSError):
                    if self._connection.sock is not None:
                        self._connection.sock.shutdown(2)
                self._connection.close()
            if self._reader is not None:
                self._reader.join(timeout=10.0)


register_launcher("mesos", MesosLauncher)

"""A FAKE Nomad agent for tests: a tiny HTTP server speaking a slice of Nomad's HTTP API.

Nomad cannot run on the test machines. This stand-in answers ``/v1/agent/self``, ``/v1/var/``,
``/v1/jobs`` (register), ``/v1/job/<id>/allocations`` and ``/evaluations`` and
``DELETE /v1/job/<id>``, checks each registered job against :data:`JOB_SCHEMA` (our
transcription of the fields Nomad's API documents for a job, not an official schema: Nomad
publishes none), refuses a wrong ``X-Nomad-Token`` with 403 as Nomad's ACLs do, and runs a
``raw_exec`` job's tasks as local processes, interpolating ``${NOMAD_ALLOC_INDEX}`` and the
``nomadVar`` template into their environment as Nomad's client would.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema

from tests.resource.fake_http import Answer, JsonServer, LocalTasks

_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
TASK_SCHEMA = {
    "type": "object",
    "required": ["Name", "Driver", "Config"],
    "additionalProperties": False,
    "properties": {
        "Name": {"type": "string", "minLength": 1},
        "Driver": {"enum": ["raw_exec", "exec", "docker", "java", "qemu"]},
        "Config": {"type": "object"},
        "Env": _STRINGS,
        "Meta": _STRINGS,
        "User": {"type": "string"},
        "KillTimeout": {"type": "integer", "minimum": 0},
        "Resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "CPU": {"type": "integer", "minimum": 1},
                "Cores": {"type": "integer", "minimum": 0},
                "MemoryMB": {"type": "integer", "minimum": 10},
                "MemoryMaxMB": {"type": "integer"},
                "DiskMB": {"type": "integer"},
            },
        },
        "Templates": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["DestPath"],
                "properties": {
                    "EmbeddedTmpl": {"type": "string"},
                    "SourcePath": {"type": "string"},
                    "DestPath": {"type": "string"},
                    "Envvars": {"type": "boolean"},
                    "ChangeMode": {"enum": ["noop", "restart", "signal", "script"]},
                    "Perms": {"type": "string"},
                },
            },
        },
    },
}
JOB_SCHEMA = {
    "type": "object",
    "required": ["ID", "Type", "TaskGroups"],
    "additionalProperties": False,
    "properties": {
        "ID": {"type": "string", "pattern": r"^[^\s]{1,128}$"},
        "Name": {"type": "string"},
        "Type": {"enum": ["service", "batch", "system", "sysbatch"]},
        "Namespace": {"type": "string"},
        "Region": {"type": "string"},
        "Priority": {"type": "integer", "minimum": 1, "maximum": 100},
        "Datacenters": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "Meta": _STRINGS,
        "TaskGroups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["Name", "Count", "Tasks"],
                "additionalProperties": False,
                "properties": {
                    "Name": {"type": "string", "minLength": 1},
                    "Count": {"type": "integer", "minimum": 0},
                    "RestartPolicy": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "Attempts": {"type": "integer"},
                            "Interval": {"type": "integer"},
                            "Delay": {"type": "integer"},
                            "Mode": {"enum": ["fail", "delay"]},
                        },
                    },
                    "ReschedulePolicy": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "Attempts": {"type": "integer"},
                            "Interval": {"type": "integer"},
                            "Delay": {"type": "integer"},
                            "DelayFunction": {"type": "string"},
                            "MaxDelay": {"type": "integer"},
                            "Unlimited": {"type": "boolean"},
                        },
                    },
                    "Tasks": {"type": "array", "minItems": 1, "items": TASK_SCHEMA},
                },
            },
        },
    },
}
_VAR_TEMPLATE = re.compile(r'\{\{ with nomadVar "([^"]+)" \}\}(\w+)=\{\{ \.(\w+) \}\}\{\{ end \}\}')


@dataclass
class FakeNomad:
    """The fake agent's state; ``url`` once started."""

    token: str | None = None
    node_cpu_mhz: int = 8000
    node_memory_mb: int = 8192
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    allocs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    evals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    tasks: LocalTasks = field(default_factory=LocalTasks)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    _server: JsonServer | None = None

    def start(self) -> str:
        self._server = JsonServer(self.handle)
        self.url = self._server.url
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self.tasks.stop_all()

    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> Answer:
        url = urlsplit(path)
        with self.lock:
            self.requests.append((method, url.path))
            if self.token is not None and headers.get("x-nomad-token") != self.token:
                return 403, "Permission denied", {}
            route = url.path
            if route == "/v1/agent/self" and method == "GET":
                return 200, {"config": {"Region": "global", "Datacenter": "dc1"}}, {}
            if route.startswith("/v1/var/"):
                var = unquote(route[len("/v1/var/") :])
                if method == "PUT":
                    self.variables[var] = dict(body["Items"])
                    return 200, {"Path": var}, {}
                if method == "DELETE":
                    self.variables.pop(var, None)
                    return 200, None, {}
            if route == "/v1/jobs" and method == "POST":
                return self._register(body["Job"])
            match = re.fullmatch(r"/v1/job/([^/]+)(/allocations|/evaluations)?", route)
            if match:
                job_id = unquote(match[1])
                if method == "GET" and match[2] == "/allocations":
                    return 200, [self._refreshed(a) for a in self.allocs.get(job_id, [])], {}
                if method == "GET" and match[2] == "/evaluations":
                    return 200, self.evals.get(job_id, []), {}
                if method == "DELETE" and match[2] is None:
                    return self._deregister(job_id, purge="purge=true" in url.query)
            return 404, f"no route {method} {route}", {}

    def _register(self, job: dict[str, Any]) -> Answer:
        try:
            jsonschema.validate(job, JOB_SCHEMA)
        except jsonschema.ValidationError as exc:
            return 400, f"invalid job: {exc.message}", {}
        self.jobs[job["ID"]] = job
        group = job["TaskGroups"][0]
        task = group["Tasks"][0]
        res = task.get("Resources", {})
        allocs: list[dict[str, Any]] = []
        fits = res.get("CPU", 100) <= self.node_cpu_mhz and (
            res.get("MemoryMB", 300) <= self.node_memory_mb
        )
        self.evals[job["ID"]] = [{"ID": f"eval-{job['ID']}", "Status": "complete"}]
        if not fits:
            exhausted = "memory" if res.get("MemoryMB", 300) > self.node_memory_mb else "cpu"
            self.evals[job["ID"]] = [
                {
                    "ID": f"eval-{job['ID']}",
                    "Status": "blocked",
                    "FailedTGAllocs": {
                        group["Name"]: {"NodesEvaluated": 1, "DimensionExhausted": {exhausted: 1}}
                    },
                }
            ]
        for index in range(group["Count"] if fits else 0):
            alloc_id = f"{job['ID']}-alloc-{index}"
            allocs.append(
                {
                    "ID": alloc_id,
                    "Name": f"{job['ID']}.{group['Name']}[{index}]",
                    "JobID": job["ID"],
                    "ClientStatus": "running",
                    "TaskStates": {task["Name"]: {"State": "running", "Failed": False}},
                }
            )
            self.tasks.start(alloc_id, self._command(task), self._env(job, task, index))
        self.allocs[job["ID"]] = allocs
        return 200, {"EvalID": f"eval-{job['ID']}", "JobModifyIndex": 1}, {}

    def _command(self, task: dict[str, Any]) -> list[str]:
        return [task["Config"]["command"], *task["Config"].get("args", [])]

    def _env(self, job: dict[str, Any], task: dict[str, Any], index: int) -> dict[str, str]:
        runtime = {"NOMAD_ALLOC_INDEX": str(index), "NOMAD_JOB_ID": job["ID"]}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **runtime}
        for name, value in task.get("Env", {}).items():
            env[name] = re.sub(r"\$\{(\w+)\}", lambda m: runtime.get(m[1], ""), value)
        for template in task.get("Templates", []):
            match = _VAR_TEMPLATE.search(template.get("EmbeddedTmpl", ""))
            if template.get("Envvars") and match:
                var, name, item = match.groups()
                if var != f"nomad/jobs/{job['ID']}":  # workload identity: its own variables only
                    continue
                env[name] = self.variables.get(var, {}).get(item, "")
        return env

    def _refreshed(self, alloc: dict[str, Any]) -> dict[str, Any]:
        code = self.tasks.exit_code(alloc["ID"])
        if code is not None and alloc["ClientStatus"] == "running":
            failed = code != 0
            alloc["ClientStatus"] = "failed" if failed else "complete"
            for state in alloc["TaskStates"].values():
                state.update(
                    State="dead",
                    Failed=failed,
                    Events=[
                        {"Type": "Terminated", "ExitCode": max(code, 0), "Signal": max(-code, 0)}
                    ],
                )
        return alloc

    def _deregister(self, job_id: str, purge: bool) -> Answer:
        if job_id not in self.jobs:
            return 404, "job not found", {}
        for alloc in self.allocs.get(job_id, []):
            self.tasks.stop(alloc["ID"], 3.0)
            self._refreshed(alloc)
        if purge:
            self.jobs.pop(job_id)
            self.allocs.pop(job_id, None)
        return 200, {"EvalID": f"eval-stop-{job_id}"}, {}

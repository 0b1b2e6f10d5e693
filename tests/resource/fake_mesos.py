"""A FAKE Mesos master for tests: a tiny HTTP server speaking Mesos' v1 scheduler API.

Mesos cannot run on the test machines. This stand-in answers ``GET /version`` and
``POST /api/v1/scheduler``: a SUBSCRIBE gets the RecordIO event stream (SUBSCRIBED, then OFFERS
from its agents, then UPDATEs), later calls must carry the stream's ``Mesos-Stream-Id``, every
call is checked against :data:`CALL_SCHEMA` (our transcription of the messages of Mesos'
``scheduler.proto``/``mesos.proto`` that a framework sends, not an official schema), LAUNCHed
tasks run as local processes with the task's environment, and each status update waits for its
ACKNOWLEDGE. TEARDOWN kills the tasks and ends the stream.
"""

from __future__ import annotations

import base64
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from tests.resource.fake_http import Answer, JsonServer, LocalTasks
from twister2.resource.mesos import encode_record, scalar

_ID = {
    "type": "object",
    "required": ["value"],
    "additionalProperties": False,
    "properties": {"value": {"type": "string", "minLength": 1}},
}
_RESOURCE = {
    "type": "object",
    "required": ["name", "type"],
    "properties": {
        "name": {"type": "string"},
        "type": {"enum": ["SCALAR", "RANGES", "SET", "TEXT"]},
        "scalar": {
            "type": "object",
            "required": ["value"],
            "properties": {"value": {"type": "number"}},
        },
    },
}
_TASK = {
    "type": "object",
    "required": ["name", "task_id", "agent_id"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "task_id": _ID,
        "agent_id": _ID,
        "resources": {"type": "array", "items": _RESOURCE},
        "command": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "shell": {"type": "boolean"},
                "value": {"type": "string"},
                "arguments": {"type": "array", "items": {"type": "string"}},
                "user": {"type": "string"},
                "environment": {
                    "type": "object",
                    "properties": {
                        "variables": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "type": {"enum": ["VALUE", "SECRET"]},
                                    "value": {"type": "string"},
                                },
                            },
                        }
                    },
                },
            },
        },
    },
}
_FILTERS = {"type": "object", "properties": {"refuse_seconds": {"type": "number"}}}
CALL_SCHEMA = {
    "type": "object",
    "required": ["type"],
    "additionalProperties": False,
    "properties": {
        "framework_id": _ID,
        "type": {
            "enum": [
                "SUBSCRIBE",
                "TEARDOWN",
                "ACCEPT",
                "DECLINE",
                "REVIVE",
                "KILL",
                "SHUTDOWN",
                "ACKNOWLEDGE",
                "RECONCILE",
                "MESSAGE",
                "REQUEST",
                "SUPPRESS",
            ]
        },
        "subscribe": {
            "type": "object",
            "required": ["framework_info"],
            "properties": {
                "framework_info": {
                    "type": "object",
                    "required": ["user", "name"],
                    "properties": {
                        "user": {"type": "string"},
                        "name": {"type": "string"},
                        "roles": {"type": "array", "items": {"type": "string"}},
                        "failover_timeout": {"type": "number"},
                        "capabilities": {"type": "array"},
                    },
                }
            },
        },
        "accept": {
            "type": "object",
            "required": ["offer_ids"],
            "properties": {
                "offer_ids": {"type": "array", "items": _ID},
                "operations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {
                            "type": {"const": "LAUNCH"},
                            "launch": {
                                "type": "object",
                                "required": ["task_infos"],
                                "properties": {"task_infos": {"type": "array", "items": _TASK}},
                            },
                        },
                    },
                },
                "filters": _FILTERS,
            },
        },
        "decline": {
            "type": "object",
            "required": ["offer_ids"],
            "properties": {"offer_ids": {"type": "array", "items": _ID}, "filters": _FILTERS},
        },
        "acknowledge": {
            "type": "object",
            "required": ["agent_id", "task_id", "uuid"],
            "additionalProperties": False,
            "properties": {"agent_id": _ID, "task_id": _ID, "uuid": {"type": "string"}},
        },
    },
}
_REQUIRED_PART = {"SUBSCRIBE": "subscribe", "ACCEPT": "accept", "DECLINE": "decline"}
_REQUIRED_PART["ACKNOWLEDGE"] = "acknowledge"


@dataclass
class FakeMesos:
    """The fake master's state: ``agents`` are (id, hostname, cpus, mem) it offers."""

    agents: list[tuple[str, str, float, float]] = field(
        default_factory=lambda: [("agent-1", "localhost", 2.0, 2048.0)]
    )
    principal: str | None = None
    secret: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    unacknowledged: set[str] = field(default_factory=set)
    tasks: LocalTasks = field(default_factory=LocalTasks)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    stream_id: str = ""
    framework_id: str = ""
    _events: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    _agent_of: dict[str, str] = field(default_factory=dict)
    _state: dict[str, str] = field(default_factory=dict)
    _server: JsonServer | None = None
    _watcher: threading.Thread | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> str:
        self._server = JsonServer(self.handle)
        self.url = self._server.url
        self._watcher = threading.Thread(target=self._watch, name="fake-mesos-agent")
        self._watcher.start()
        return self.url

    def stop(self) -> None:
        self._done.set()
        self._events.put(None)
        if self._server is not None:
            self._server.stop()
        if self._watcher is not None:
            self._watcher.join()
        self.tasks.stop_all()

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.principal is None:
            return True
        token = base64.b64encode(f"{self.principal}:{self.secret}".encode()).decode()
        return headers.get("authorization") == f"Basic {token}"

    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> Answer:
        if not self._authorized(headers):
            return 401, "Unauthorized", {}
        if method == "GET" and path == "/version":
            return 200, {"version": "1.11.0"}, {}
        if method != "POST" or path != "/api/v1/scheduler":
            return 404, None, {}
        with self.lock:
            self.calls.append(body)
            try:
                jsonschema.validate(body, CALL_SCHEMA)
            except jsonschema.ValidationError as exc:
                return 400, f"Failed to validate scheduler::Call: {exc.message}", {}
            kind = body["type"]
            if kind in _REQUIRED_PART and _REQUIRED_PART[kind] not in body:
                return 400, f"Expecting '{_REQUIRED_PART[kind]}' to be present", {}
            if kind == "SUBSCRIBE":
                return self._subscribe()
            if headers.get("mesos-stream-id") != self.stream_id:
                return 400, "The stream ID is not valid", {}
            if body.get("framework_id", {}).get("value") != self.framework_id:
                return 400, "Call is for another framework", {}
            if kind == "ACCEPT":
                for operation in body["accept"].get("operations", []):
                    for task in operation["launch"]["task_infos"]:
                        self._launch(task)
            elif kind == "ACKNOWLEDGE":
                self.unacknowledged.discard(body["acknowledge"]["uuid"])
            elif kind == "TEARDOWN":
                for key in list(self.tasks.procs):
                    self.tasks.stop(key, 2.0)
                self._events.put(None)
            return 202, None, {}

    def _subscribe(self) -> Answer:
        self.stream_id = str(uuid.uuid4())
        self.framework_id = f"framework-{uuid.uuid4().hex[:8]}"
        subscribed = {
            "framework_id": {"value": self.framework_id},
            "heartbeat_interval_seconds": 15,
        }
        self._events.put({"type": "SUBSCRIBED", "subscribed": subscribed})
        offers = [
            {
                "id": {"value": f"offer-{i}"},
                "framework_id": {"value": self.framework_id},
                "agent_id": {"value": agent},
                "hostname": host,
                "resources": [scalar("cpus", cpus), scalar("mem", mem)],
            }
            for i, (agent, host, cpus, mem) in enumerate(self.agents)
        ]
        self._events.put({"type": "OFFERS", "offers": {"offers": offers}})

        def stream(out: Any) -> None:
            while True:
                event = self._events.get()
                if event is None:
                    return
                out.write(encode_record(event))
                out.flush()

        return 200, stream, {"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id}

    def _launch(self, task: dict[str, Any]) -> None:
        key = task["task_id"]["value"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for var in task["command"].get("environment", {}).get("variables", []):
            env[var["name"]] = var.get("value", "")
        self._agent_of[key] = task["agent_id"]["value"]
        self.tasks.start(key, ["sh", "-c", task["command"]["value"]], env)
        self._update(key, "TASK_RUNNING")

    def _update(self, key: str, state: str, message: str = "") -> None:
        tag = base64.b64encode(uuid.uuid4().bytes).decode()
        self.unacknowledged.add(tag)
        self._state[key] = state
        status = {
            "task_id": {"value": key},
            "agent_id": {"value": self._agent_of[key]},
            "state": state,
            "message": message,
            "uuid": tag,
        }
        self._events.put({"type": "UPDATE", "update": {"status": status}})

    def _watch(self) -> None:
        while not self._done.wait(0.1):
            with self.lock:
                for key in list(self.tasks.procs):
                    code = self.tasks.exit_code(key)
                    if code is None or self._state.get(key) != "TASK_RUNNING":
                        continue
                    if code == 0:
                        self._update(key, "TASK_FINISHED")
                    else:
                        self._update(key, "TASK_FAILED", f"Command exited with status {code}")
            time.sleep(0)

"""A FAKE Kubernetes API server for tests: a tiny real HTTP server, not Kubernetes.

No API server can run on the test machines, so the kubernetes launcher is tested against this
stand-in. It answers the few requests the official client sends for a twister2 job (create,
list, delete of Secrets, ConfigMaps, Services, EndpointSlices, PersistentVolumeClaims,
StatefulSets and their pods), checks every object it is sent against the official Kubernetes
schema (``kubernetes-validate``, strict), as the real server's validation would, and answers
401 without the right bearer token. It records every request for the tests to check.

Pods: creating a StatefulSet makes its pods. With a :class:`Kubelet` they also run: the kubelet
starts each pod's container command with the environment Kubernetes would give it (downward
API, Secret and ConfigMap references) on a test host, and the pod's status follows the process.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate

SCHEMA_VERSION = "1.37.0"
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z0-9.]+)/v1)/namespaces/(?P<ns>[^/]+)"
    r"(?:/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?)?$"
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # other ConfigMap keys are not env vars
_KIND = {
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "services": "Service",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "endpointslices": "EndpointSlice",
    "statefulsets": "StatefulSet",
    "pods": "Pod",
}


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class Kubelet:
    """Runs pods. The fake API server calls it; the base one runs nothing (pods stay Running)."""

    def pod_ip(self, pod: dict[str, Any]) -> str:
        """The address the pod gets."""
        return "10.244.0.1"

    def start(self, pod: dict[str, Any], env: dict[str, str], server: FakeKubeApi) -> None:
        """Start ``pod``'s container with environment ``env``."""

    def exit_code(self, pod_name: str) -> int | None:
        """The exit code of the pod's container once it ended, else None."""
        return None

    def stop(self, pod_name: str, grace: float) -> None:
        """End the pod's container (SIGTERM, then SIGKILL after ``grace``)."""


@dataclass
class FakeKubeApi:
    """The fake API server's state; :meth:`start` serves it on ``host`` (a free port)."""

    token: str | None = None
    namespaces: set[str] = field(default_factory=lambda: {"default"})
    fail_create: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Plural → (HTTP code, reason) to answer the next create of that kind with."""
    waiting_reason: str | None = None
    """Every pod's container waits with this reason (e.g. ErrImagePull)."""
    kubelet: Kubelet = field(default_factory=Kubelet)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- life --------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1") -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                code, answer = api.handle(
                    self.command, self.path, body, self.headers.get("Authorization", "")
                )
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-kube-api")
        self._thread.start()
        return f"http://{host}:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        for key in list(self.objects):
            if key[0] == "pods":
                self.kubelet.stop(key[2], 0.5)

    # -- requests ----------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, body: Any, authorization: str
    ) -> tuple[int, dict[str, Any]]:
        url = urlsplit(path)
        with self.lock:
            self.requests.append((method, url.path))
            if self.token is not None and authorization != f"Bearer {self.token}":
                return 401, status(401, "Unauthorized", "Unauthorized")
            match = _PATH.match(url.path)
            if not match:
                return 404, status(404, "NotFound", f"the server could not find {url.path}")
            ns, plural, name = match["ns"], match["plural"], match["name"]
            if plural is None:
                if method == "GET" and ns in self.namespaces:
                    return 200, {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns}}
                return 404, status(404, "NotFound", f'namespaces "{ns}" not found')
            if method == "POST" and name is None:
                return self._create(ns, plural, body)
            if method == "GET" and name is None:
                return self._list(ns, plural, parse_qs(url.query))
            if method == "DELETE" and name is not None:
                return self._delete(ns, plural, name)
            return 405, status(405, "MethodNotAllowed", f"{method} {url.path}")

    def _create(self, ns: str, plural: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if plural in self.fail_create:
            code, reason = self.fail_create.pop(plural)
            return code, status(code, reason, f"injected failure creating {plural}")
        if body.get("kind") != _KIND.get(plural):
            return 400, status(400, "BadRequest", f"a {body.get('kind')} sent to {plural}")
        try:
            kubernetes_validate.validate(body, SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return 422, status(422, "Invalid", f"{body['kind']} is invalid: {exc.message}")
        name = body["metadata"]["name"]
        if (plural, ns, name) in self.objects:
            return 409, status(409, "AlreadyExists", f'{plural} "{name}" already exists')
        stored = json.loads(json.dumps(body))
        stored["metadata"].update(uid=f"uid-{len(self.objects)}", resourceVersion="1")
        self.objects[(plural, ns, name)] = stored
        if plural == "statefulsets":
            self._make_pods(ns, stored)
        return 201, stored

    def _list(
        self, ns: str, plural: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        wanted = dict(
            part.split("=", 1) for part in query.get("labelSelector", [""])[0].split(",") if part
        )
        items = [
            self._refreshed(obj) if plural == "pods" else obj
            for (p, n, _), obj in sorted(self.objects.items())
            if p == plural
            and n == ns
            and wanted.items() <= obj["metadata"].get("labels", {}).items()
        ]
        return 200, {
            "kind": f"{_KIND[plural]}List",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }

    def _delete(self, ns: str, plural: str, name: str) -> tuple[int, dict[str, Any]]:
        obj = self.objects.pop((plural, ns, name), None)
        if obj is None:
            return 404, status(404, "NotFound", f'{plural} "{name}" not found')
        if plural == "statefulsets":  # the garbage collector deletes the pods
            grace = obj["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
            for key in [k for k in self.objects if k[0] == "pods" and k[1] == ns]:
                owners = self.objects[key]["metadata"].get("ownerReferences", [])
                if any(o["name"] == name for o in owners):
                    del self.objects[key]
                    self.kubelet.stop(key[2], float(grace))
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}

    # -- pods --------------------------------------------------------------------------------
    def _make_pods(self, ns: str, sts: dict[str, Any]) -> None:
        template = sts["spec"]["template"]
        for i in range(int(sts["spec"].get("replicas", 1))):
            name = f"{sts['metadata']['name']}-{i}"
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": dict(template["metadata"].get("labels", {})),
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "StatefulSet",
                            "name": sts["metadata"]["name"],
                            "uid": sts["metadata"]["uid"],
                        }
                    ],
                },
                "spec": json.loads(json.dumps(template["spec"])),
                "status": {"phase": "Pending"},
            }
            pod["status"]["podIP"] = self.kubelet.pod_ip(pod)
            self.objects[("pods", ns, name)] = pod
            env = self.pod_environment(pod)
            self.kubelet.start(pod, env, self)

    def pod_environment(self, pod: dict[str, Any]) -> dict[str, str]:
        """What the container's environment holds in a real pod (for its first container)."""
        ns = pod["metadata"]["namespace"]
        container = pod["spec"]["containers"][0]
        env = {
            "HOSTNAME": pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": "10.96.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
        }
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef", {}).get("name")
            data = self.objects.get(("configmaps", ns, ref), {}).get("data", {})
            env.update({k: v for k, v in data.items() if _ENV_NAME.fullmatch(k)})
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
                continue
            source = item.get("valueFrom", {})
            if "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                env[item["name"]] = {
                    "metadata.name": pod["metadata"]["name"],
                    "metadata.namespace": ns,
                    "status.podIP": pod["status"].get("podIP", ""),
                }.get(path, "")
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = self.objects.get(("secrets", ns, ref["name"]), {})
                env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        return env

    def _refreshed(self, pod: dict[str, Any]) -> dict[str, Any]:
        name = pod["metadata"]["name"]
        state: dict[str, Any] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        if self.waiting_reason:
            state = {"waiting": {"reason": self.waiting_reason, "message": "injected"}}
        code = self.kubelet.exit_code(name)
        if code is not None:
            state = {"terminated": {"exitCode": code, "reason": "Error" if code else "Completed"}}
        pod["status"] = {
            **pod["status"],
            "phase": "Running" if "running" in state else "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [
                {
                    "name": "worker",
                    "ready": "running" in state,
                    "restartCount": 0,
                    "image": pod["spec"]["containers"][0]["image"],
                    "imageID": "",
                    "state": state,
                }
            ],
        }
        return pod


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

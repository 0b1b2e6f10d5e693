"""The kubernetes launcher: create the job's objects, follow its worker pods, delete it all.

It speaks to the API server with the official ``kubernetes`` client (``pip install
'twister2[k8s]'``). The job master stays in the submitting client; the pods reach it through the
``<name>-master`` Service, whose EndpointSlice points at this client's address. A submission that
fails half-way deletes what it created; the end of the job (completed, failed, killed) deletes
everything.

Example
-------
>>> from twister2.job import Job
>>> launcher = KubernetesLauncher({"resource.kubernetes.image": ""})
>>> try:
...     launcher.check(Job.create(print))
... except PlacementError as exc:
...     print(exc)
resource.kubernetes.image is not set: the worker pods need an image with twister2 and the job's code
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twister2.job import Job
from twister2.resource._remote import advertised_address, is_loopback
from twister2.resource.base import Launcher, LaunchHandle, PlacementError
from twister2.resource.kubernetes.objects import PodJob, job_objects, labels
from twister2.resource.kubernetes.pod import ordinal

__all__ = ["KubernetesHandle", "KubernetesLauncher"]

log = logging.getLogger(__name__)

FATAL_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
"""Container waiting reasons that do not clear by waiting."""

# kind -> (API class, method suffix)
_KINDS: dict[str, tuple[str, str]] = {
    "Secret": ("CoreV1Api", "namespaced_secret"),
    "ConfigMap": ("CoreV1Api", "namespaced_config_map"),
    "Service": ("CoreV1Api", "namespaced_service"),
    "PersistentVolumeClaim": ("CoreV1Api", "namespaced_persistent_volume_claim"),
    "EndpointSlice": ("DiscoveryV1Api", "namespaced_endpoint_slice"),
    "StatefulSet": ("AppsV1Api", "namespaced_stateful_set"),
}


def _client() -> Any:
    try:
        import kubernetes  # type: ignore[import-untyped]
    except ImportError:
        msg = (
            "the kubernetes cluster needs the official kubernetes client: "
            "pip install 'twister2[k8s]'"
        )
        raise PlacementError(msg) from None
    return kubernetes


class KubeError(PlacementError):
    """A call to the Kubernetes API failed; the message says what to change."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class KubernetesLauncher(Launcher):
    """Runs a job's workers as the pods of a StatefulSet."""

    name = "kubernetes"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api: Any = None
        self.namespace = str(config.get("resource.kubernetes.namespace") or "default")
        self.timeout = float(config.get("resource.kubernetes.request_timeout", 10.0))

    # -- connection ------------------------------------------------------------------------------
    def connect(self) -> Any:
        """An ``ApiClient`` for the configured API server and credentials."""
        k8s = _client()
        cfg = self.config
        conf = k8s.client.Configuration()
        server = str(cfg.get("resource.kubernetes.api_server") or "")
        if server:
            conf.host = server.rstrip("/")
            token_file = cfg.get("resource.kubernetes.token_file")
            if token_file:
                try:
                    token = Path(token_file).read_text().strip()
                except OSError as exc:
                    msg = (
                        f"cannot read resource.kubernetes.token_file {str(token_file)!r}: "
                        f"{exc.strerror}"
                    )
                    raise KubeError(msg) from None
                conf.api_key = {"authorization": token}
                conf.api_key_prefix = {"authorization": "Bearer"}
            if cfg.get("resource.kubernetes.ca_file"):
                conf.ssl_ca_cert = str(cfg["resource.kubernetes.ca_file"])
        else:
            kubeconfig = cfg.get("resource.kubernetes.kubeconfig")
            try:
                if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
                    k8s.config.load_incluster_config(client_configuration=conf)
                else:
                    k8s.config.load_kube_config(
                        config_file=str(kubeconfig) if kubeconfig else None,
                        context=str(cfg.get("resource.kubernetes.context") or "") or None,
                        client_configuration=conf,
                    )
            except (k8s.config.ConfigException, OSError, TypeError, ValueError) as exc:
                msg = (
                    f"no usable Kubernetes credentials ({exc}): set "
                    "resource.kubernetes.kubeconfig (or resource.kubernetes.api_server and "
                    "resource.kubernetes.token_file)"
                )
                raise KubeError(msg) from None
        conf.retries = 0
        return k8s.client.ApiClient(conf)

    def call(self, api: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call the API; the decoded JSON answer, or :class:`KubeError` saying what to fix."""
        k8s = _client()
        target = getattr(getattr(k8s.client, api)(self.api), method)
        try:
            response = target(
                *args, _preload_content=False, _request_timeout=self.timeout, **kwargs
            )
        except k8s.client.exceptions.ApiException as exc:
            raise self._api_error(exc, method) from None
        except Exception as exc:  # urllib3's connection errors have no common base here
            host = self.api.configuration.host
            msg = (
                f"cannot reach the Kubernetes API at {host} ({type(exc).__name__}: "
                f"{_short(exc)}): set resource.kubernetes.api_server or "
                "resource.kubernetes.kubeconfig"
            )
            raise KubeError(msg) from None
        data = response.data
        return json.loads(data) if data else None

    def _api_error(self, exc: Any, method: str) -> KubeError:
        host = self.api.configuration.host
        status = int(exc.status or 0)
        try:
            detail = json.loads(exc.body).get("message", "") if exc.body else ""
        except (ValueError, AttributeError):
            detail = str(exc.body or "")[:200]
        if status == 401:
            msg = (
                f"the Kubernetes API at {host} refused the credentials (401 Unauthorized: missing "
                "or expired token): renew resource.kubernetes.token_file or the kubeconfig "
                "(resource.kubernetes.kubeconfig)"
            )
        elif status == 403:
            msg = (
                f"the Kubernetes API at {host} forbids {method} in namespace "
                f"{self.namespace!r} (403: {detail}): use credentials with that right or "
                "another resource.kubernetes.namespace"
            )
        else:
            msg = f"Kubernetes API {method} failed ({status} {exc.reason}: {detail})"
        return KubeError(msg, status)

    # -- placement -------------------------------------------------------------------------------
    def check(self, job: Job) -> None:
        cfg = self.config
        if not cfg.get("resource.kubernetes.image"):
            msg = (
                "resource.kubernetes.image is not set: the worker pods need an image with "
                "twister2 and the job's code"
            )
            raise KubeError(msg)
        if is_loopback(str(cfg.get("master.interface", "127.0.0.1"))):
            msg = (
                "the job master runs in this client and the worker pods must reach it, but it "
                f"listens on {cfg.get('master.interface', '127.0.0.1')}: set master.interface "
                "to 0.0.0.0 or an address of this host the pods reach"
            )
            raise KubeError(msg)
        if job.workers > 1 and is_loopback(str(cfg.get("network.interface", "127.0.0.1"))):
            msg = (
                "worker pods talk over the tcp channel on their own addresses: set "
                "network.interface to 0.0.0.0"
            )
            raise KubeError(msg)
        if self.api is None:
            self.api = self.connect()
        try:
            self._probe()
        except BaseException:
            self.close()
            raise

    def _probe(self) -> None:
        try:
            self.call("CoreV1Api", "read_namespace", self.namespace)
        except KubeError as exc:
            if exc.status == 404:
                msg = (
                    f"Kubernetes namespace {self.namespace!r} does not exist: set "
                    "resource.kubernetes.namespace"
                )
                raise KubeError(msg) from None
            if exc.status != 403:
                raise
        self.call("CoreV1Api", "list_namespaced_pod", self.namespace, limit=1)

    def close(self) -> None:
        """Close the connections to the API server."""
        if self.api is not None:
            self.api.close()
            self.api = None

    # -- launch ----------------------------------------------------------------------------------
    def pod_job(self, job: Job, env: Mapping[str, str]) -> PodJob:
        cfg = self.config
        toward = urlsplit(self.api.configuration.host).hostname or "127.0.0.1"
        address = advertised_address(env["TWISTER2_MASTER_ADDRESS"], toward)
        host, _, port = address.rpartition(":")
        return PodJob(
            job_id=env["TWISTER2_JOB_ID"],
            workers=job.workers,
            image=str(cfg["resource.kubernetes.image"]),
            master_ip=host.strip("[]"),
            master_port=int(port),
            secret=env["TWISTER2_JOB_SECRET"],
            config=dict(job.config),
            namespace=self.namespace,
            cpu=job.resources.cpu,
            memory_mb=job.resources.memory_mb,
            disk_gb=job.resources.disk_gb,
            python=str(cfg.get("resource.kubernetes.python") or "python"),
            image_pull_policy=str(cfg.get("resource.kubernetes.image_pull_policy", "IfNotPresent")),
            service_account=str(cfg.get("resource.kubernetes.service_account") or ""),
            volume_gb=float(cfg.get("resource.kubernetes.persistent_volume_gb") or 0.0),
            storage_class=str(cfg.get("resource.kubernetes.storage_class") or ""),
            volume_mount=str(
                cfg.get("resource.kubernetes.persistent_mount") or "/twister2/persistent"
            ),
            grace_seconds=max(1, int(float(cfg.get("master.kill_grace", 3.0)))),
            cluster_domain=str(cfg.get("resource.kubernetes.cluster_domain") or "cluster.local"),
        )

    def create(self, obj: Mapping[str, Any]) -> None:
        api, suffix = _KINDS[obj["kind"]]
        self.call(api, f"create_{suffix}", self.namespace, obj)

    def delete(self, kind: str, name: str, grace: int | None = None) -> None:
        """Delete one object; one that is already gone is fine."""
        api, suffix = _KINDS[kind]
        extra: dict[str, Any] = {"propagation_policy": "Background"}
        if grace is not None:
            extra["grace_period_seconds"] = grace
        try:
            self.call(api, f"delete_{suffix}", name, self.namespace, **extra)
        except KubeError as exc:
            if exc.status != 404:
                raise

    def launch(self, job: Job, env: dict[str, str]) -> KubernetesHandle:
        if self.api is None:
            self.check(job)
        spec = self.pod_job(job, env)
        created: list[tuple[str, str]] = []
        try:
            for obj in job_objects(spec):
                self.create(obj)
                created.append((obj["kind"], obj["metadata"]["name"]))
        except BaseException as exc:
            self._delete_all(created, grace=0)
            self.close()
            what = ", ".join(f"{k} {n}" for k, n in created) or "nothing"
            msg = f"{exc}; the submission was rolled back (deleted: {what})"
            raise KubeError(msg) from None
        log.info(
            "job %s: %d worker pods %s-worker-* in namespace %s",
            spec.job_id,
            job.workers,
            spec.name,
            self.namespace,
        )
        return KubernetesHandle(self, spec, created)

    def _delete_all(self, created: list[tuple[str, str]], grace: int | None) -> None:
        for kind, name in reversed(created):
            try:
                self.delete(kind, name, grace)
            except KubeError as exc:
                log.warning("could not delete %s %s: %s", kind, name, exc)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


class KubernetesHandle(LaunchHandle):
    """The worker pods of one job, looked at every ``resource.kubernetes.poll_interval``."""

    def __init__(
        self, launcher: KubernetesLauncher, spec: PodJob, created: list[tuple[str, str]]
    ) -> None:
        self.launcher = launcher
        self.spec = spec
        self.created = created
        self.selector = ",".join(f"{k}={v}" for k, v in labels(spec, "worker").items())
        self.pods: dict[int, dict[str, Any]] = {}
        self._restarts: dict[int, int] = {}
        self._deleted = False
        self._next = 0.0
        self._interval = float(launcher.config.get("resource.kubernetes.poll_interval", 1.0))
        join = float(launcher.config.get("master.join_timeout", 60.0))
        self._pending_deadline = time.monotonic() + max(1.0, join - 2.0)

    def refresh(self) -> dict[int, dict[str, Any]]:
        """The job's worker pods now, by ordinal."""
        answer = self.launcher.call(
            "CoreV1Api",
            "list_namespaced_pod",
            self.launcher.namespace,
            label_selector=self.selector,
        )
        self.pods = {}
        for pod in (answer or {}).get("items", []):
            with contextlib.suppress(ValueError, KeyError):
                self.pods[ordinal(pod["metadata"]["name"])] = pod
        self._next = time.monotonic() + self._interval
        return self.pods

    def poll(self) -> list[tuple[int, int]]:
        if self._deleted or time.monotonic() < self._next:
            return []
        ended: list[tuple[int, int]] = []
        for index, pod in sorted(self.refresh().items()):
            status = pod.get("status") or {}
            for cs in status.get("containerStatuses") or []:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in FATAL_WAITING:
                    msg = (
                        f"worker pod {pod['metadata']['name']} cannot start: "
                        f"{waiting['reason']} ({waiting.get('message', '')}): check "
                        "resource.kubernetes.image"
                    )
                    raise KubeError(msg)
                terminated = (cs.get("state") or {}).get("terminated") or (
                    cs.get("lastState") or {}
                ).get("terminated")
                restarts = int(cs.get("restartCount", 0))
                if terminated and self._restarts.get(index, -1) < restarts:
                    self._restarts[index] = restarts
                    ended.append((index, int(terminated.get("exitCode", 1))))
            self._check_scheduled(pod)
        return ended

    def _check_scheduled(self, pod: Mapping[str, Any]) -> None:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and time.monotonic() > self._pending_deadline
            ):
                msg = (
                    f"worker pod {pod['metadata']['name']} could not be scheduled "
                    f"({cond.get('reason')}: {cond.get('message', '')}): lower --workers, "
                    "resource.cpu or resource.memory_mb, or raise master.join_timeout"
                )
                raise KubeError(msg)

    def alive(self) -> bool:
        if self._deleted:
            return False
        if time.monotonic() >= self._next:
            with contextlib.suppress(KubeError):
                self.refresh()
        return bool(self.pods)

    def stop(self, grace: float) -> None:
        """Delete every object of the job, then wait (bounded) for its pods to go."""
        if self._deleted:
            return
        self._deleted = True
        try:
            self.launcher._delete_all(self.created, grace=max(0, int(grace)))
            deadline = time.monotonic() + grace + 30.0
            while self.refresh():
                if time.monotonic() > deadline:
                    log.warning("worker pods of %s still exist after deletion", self.spec.job_id)
                    break
                time.sleep(0.5)
        except KubeError as exc:
            log.warning("could not follow the deletion of %s: %s", self.spec.job_id, exc)
        finally:
            self.pods = {}
            self.launcher.close()

"""The Kubernetes objects of one job, as plain manifests (dicts), in the order they are created.

- a Secret with the job's secret, and a ConfigMap with the job's config and plumbing;
- the job master's Service with no selector and its EndpointSlice: the master runs in the
  submitting client, and the pods reach it as ``<name>-master:<port>``;
- a headless Service and a StatefulSet of worker pods (``<name>-worker-0`` ...): each worker's
  id is its pod's ordinal; the headless Service's domain is in every pod's DNS search list, so
  the pod names the tcp channel advertises resolve; resources as requests and limits;
- optionally a PersistentVolumeClaim, mounted in every worker pod.

Example
-------
>>> spec = PodJob("hello-20261124-1a2b", 2, image="me/job:1", master_ip="10.0.0.5",
...               master_port=4000, secret="ab", config={"network.channel": "tcp"})
>>> [o["kind"] for o in job_objects(spec)]
['Secret', 'ConfigMap', 'Service', 'EndpointSlice', 'Service', 'StatefulSet']
>>> job_objects(spec)[-1]["metadata"]["name"]
'hello-20261124-1a2b-worker'
>>> resource_name("My_Job.v2-20261124-223000-1a2b")
'my-job-v2-20261124-223000-1a2b'
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["POD_MODULE", "PodJob", "job_objects", "labels", "resource_name"]

POD_MODULE = "twister2.resource.kubernetes.pod"
"""What a worker container runs: ``python -m`` this module (pod environment → worker)."""

_MAX_NAME = 40  # "<name>-worker" + "-<ordinal>" + the StatefulSet's revision label fit in 63
_BAD = re.compile(r"[^a-z0-9-]+")


def resource_name(job_id: str) -> str:
    """A DNS-1123 label for the job's objects: lower case, ``-``, at most 40 characters.

    A long job id keeps its end (the time stamp and random part that make it unique).
    """
    name = _BAD.sub("-", job_id.lower()).strip("-") or "job"
    if len(name) > _MAX_NAME:
        name = name[-_MAX_NAME:].lstrip("-")
    return name if name[0].isalpha() else f"j{name}"[:_MAX_NAME]


@dataclass(frozen=True)
class PodJob:
    """What the manifests are made from."""

    job_id: str
    workers: int
    image: str
    master_ip: str
    master_port: int
    secret: str
    config: Mapping[str, Any] = field(default_factory=dict)
    namespace: str = "default"
    cpu: float = 1.0
    memory_mb: int = 512
    disk_gb: float = 1.0
    python: str = "python"
    image_pull_policy: str = "IfNotPresent"
    service_account: str = ""
    volume_gb: float = 0.0
    storage_class: str = ""
    volume_mount: str = "/twister2/persistent"
    grace_seconds: int = 3
    cluster_domain: str = "cluster.local"

    @property
    def name(self) -> str:
        return resource_name(self.job_id)


def labels(spec: PodJob, role: str | None = None) -> dict[str, str]:
    """The labels of the job's objects (``role``: ``worker`` for the worker pods)."""
    found = {
        "app.kubernetes.io/name": "twister2",
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/managed-by": "twister2",
    }
    if role:
        found["app.kubernetes.io/component"] = role
    return found


def _meta(spec: PodJob, name: str, role: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": labels(spec, role),
        "annotations": {"twister2.org/job-id": spec.job_id},
    }


def _quantity_cpu(cpu: float) -> str:
    return f"{math.ceil(cpu * 1000)}m"


def job_objects(spec: PodJob) -> list[dict[str, Any]]:
    """Every object of the job, in creation order (delete in the reverse order)."""
    name = spec.name
    master = f"{name}-master"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(spec, f"{name}-secret"),
        "type": "Opaque",
        "data": {"secret": base64.b64encode(spec.secret.encode()).decode()},
    }
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(spec, f"{name}-config"),
        "data": {
            "TWISTER2_JOB_ID": spec.job_id,
            "TWISTER2_MASTER_ADDRESS": f"{master}:{spec.master_port}",
            "config.yaml": yaml.safe_dump(dict(spec.config), sort_keys=True),
        },
    }
    port = {"name": "master", "port": spec.master_port, "protocol": "TCP"}
    master_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, master, "master"),
        "spec": {"ports": [{**port, "targetPort": spec.master_port}]},
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            **_meta(spec, master, "master"),
            "labels": {
                **labels(spec, "master"),
                "kubernetes.io/service-name": master,
                "endpointslice.kubernetes.io/managed-by": "twister2.org",
            },
        },
        "addressType": "IPv6" if ":" in spec.master_ip else "IPv4",
        "endpoints": [{"addresses": [spec.master_ip], "conditions": {"ready": True}}],
        "ports": [port],
    }
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, f"{name}-workers", "worker"),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": labels(spec, "worker"),
        },
    }
    objects: list[dict[str, Any]] = [secret, configmap, master_service, endpoints, headless]
    if spec.volume_gb > 0:
        claim: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta(spec, f"{name}-persistent"),
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": f"{math.ceil(spec.volume_gb * 1024)}Mi"}},
            },
        }
        if spec.storage_class:
            claim["spec"]["storageClassName"] = spec.storage_class
        objects.append(claim)
    objects.append(_statefulset(spec))
    return objects


def _statefulset(spec: PodJob) -> dict[str, Any]:
    name = spec.name
    memory = f"{spec.memory_mb}Mi"
    field_env = [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_IP", "status.podIP"),
    ]
    env: list[dict[str, Any]] = [
        {"name": var, "valueFrom": {"fieldRef": {"fieldPath": path}}} for var, path in field_env
    ]
    env.append(
        {
            "name": "TWISTER2_JOB_SECRET",
            "valueFrom": {"secretKeyRef": {"name": f"{name}-secret", "key": "secret"}},
        }
    )
    mounts = [{"name": "config", "mountPath": "/etc/twister2", "readOnly": True}]
    volumes: list[dict[str, Any]] = [
        {
            "name": "config",
            "configMap": {
                "name": f"{name}-config",
                "items": [{"key": "config.yaml", "path": "config.yaml"}],
            },
        }
    ]
    if spec.volume_gb > 0:
        mounts.append({"name": "persistent", "mountPath": spec.volume_mount})
        volumes.append(
            {"name": "persistent", "persistentVolumeClaim": {"claimName": f"{name}-persistent"}}
        )
    container = {
        "name": "worker",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": [spec.python, "-m", POD_MODULE],
        "env": env,
        "envFrom": [{"configMapRef": {"name": f"{name}-config"}}],
        "resources": {
            "requests": {
                "cpu": _quantity_cpu(spec.cpu),
                "memory": memory,
                "ephemeral-storage": f"{math.ceil(spec.disk_gb * 1024)}Mi",
            },
            "limits": {"cpu": _quantity_cpu(spec.cpu), "memory": memory},
        },
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "dnsConfig": {
            "searches": [f"{name}-workers.{spec.namespace}.svc.{spec.cluster_domain}"],
        },
        "terminationGracePeriodSeconds": spec.grace_seconds,
    }
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(spec, f"{name}-worker", "worker"),
        "spec": {
            "serviceName": f"{name}-workers",
            "replicas": spec.workers,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels(spec, "worker")},
            "template": {
                "metadata": {
                    "labels": labels(spec, "worker"),
                    "annotations": {"twister2.org/job-id": spec.job_id},
                },
                "spec": pod_spec,
            },
        },
    }

"""The kubernetes launcher: its objects against the official schema, its requests against a FAKE
API server (tests/resource/fake_kube_api.py), and worker pods run for real on test hosts.

No Kubernetes API server runs here: nothing in this file was run against a real cluster.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import twister2
from tests import jobs
from tests.resource.fake_kube_api import SCHEMA_VERSION, FakeKubeApi
from tests.resource.netns_hosts import ROOT, TestHosts, make_test_hosts, missing_netns
from twister2 import config as config_mod
from twister2.job import Job, Resources
from twister2.resource import PlacementError
from twister2.resource.kubernetes import KubernetesLauncher, PodJob, job_objects
from twister2.resource.kubernetes.pod import worker_environment

kubernetes_validate = pytest.importorskip("kubernetes_validate")
pytest.importorskip("kubernetes")

ENV = {
    "TWISTER2_JOB_ID": "hello-20261124-230000-1a2b",
    "TWISTER2_MASTER_ADDRESS": "0.0.0.0:4100",
    "TWISTER2_JOB_SECRET": "ab" * 32,
}


def spec(**changes: Any) -> PodJob:
    base = PodJob(
        job_id="Hello_World.v2-20261124-230000-1a2b",
        workers=3,
        image="registry.example/job:1",
        master_ip="10.1.0.4",
        master_port=4100,
        secret="ab" * 32,
        config={"network.channel": "tcp", "resource.cpu": 1.5},
        cpu=1.5,
        memory_mb=700,
        disk_gb=2.0,
    )
    return PodJob(**{**vars(base), **changes})


# ------------------------------------------------------------------------------- objects


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"workers": 1, "cpu": 0.25},
        {"volume_gb": 5.0, "storage_class": "nfs", "service_account": "runner"},
        {"master_ip": "fd00::4", "namespace": "team-a", "image_pull_policy": "Always"},
    ],
)
def test_every_object_is_valid_against_the_official_schema(changes: dict[str, Any]) -> None:
    objects = job_objects(spec(**changes))
    for obj in objects:
        kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
    kinds = [o["kind"] for o in objects]
    assert kinds[:5] == ["Secret", "ConfigMap", "Service", "EndpointSlice", "Service"]
    assert kinds[-1] == "StatefulSet"
    assert ("PersistentVolumeClaim" in kinds) == bool(changes.get("volume_gb"))


def test_what_the_objects_say() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in job_objects(spec(volume_gb=1.0))}
    name = "hello-world-v2-20261124-230000-1a2b"
    sts = objects[("StatefulSet", f"{name}-worker")]
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == f"{name}-workers"
    assert container["resources"]["requests"] == {
        "cpu": "1500m",
        "memory": "700Mi",
        "ephemeral-storage": "2048Mi",
    }
    assert container["resources"]["limits"] == {"cpu": "1500m", "memory": "700Mi"}
    assert pod["dnsConfig"]["searches"] == [f"{name}-workers.default.svc.cluster.local"]
    assert {"name": "persistent", "mountPath": "/twister2/persistent"} in container["volumeMounts"]
    config = objects[("ConfigMap", f"{name}-config")]["data"]
    assert config["TWISTER2_MASTER_ADDRESS"] == f"{name}-master:4100"
    assert "ab" * 32 not in json.dumps(objects[("ConfigMap", f"{name}-config")])
    slice_ = objects[("EndpointSlice", f"{name}-master")]
    assert slice_["endpoints"][0]["addresses"] == ["10.1.0.4"]
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == f"{name}-master"
    assert "selector" not in objects[("Service", f"{name}-master")]["spec"]
    assert objects[("Service", f"{name}-workers")]["spec"]["clusterIP"] == "None"


def test_the_schema_check_catches_mistakes() -> None:
    sts = copy.deepcopy(job_objects(spec())[-1])
    sts["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, SCHEMA_VERSION, strict=True)
    sts = copy.deepcopy(job_objects(spec())[-1])
    sts["spec"]["replicas"] = "3"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, SCHEMA_VERSION, strict=True)


def test_pod_environment_gives_the_worker_its_ordinal() -> None:
    env = worker_environment({**ENV, "POD_NAME": "hello-worker-12"})
    assert env["TWISTER2_WORKER_INDEX"] == "12"
    with pytest.raises(ValueError, match="lacks POD_NAME"):
        worker_environment(dict(ENV))


# ------------------------------------------------------------------------------- fake API


@pytest.fixture
def fake_api() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi(token="t0ken")
    api.url = api.start()  # type: ignore[attr-defined]
    try:
        yield api
    finally:
        api.stop()


def kube_config(api: FakeKubeApi, tmp_path: Path, token: str = "t0ken") -> dict[str, Any]:
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    return {
        **config_mod.resolve("kubernetes"),
        "resource.kubernetes.api_server": api.url,  # type: ignore[attr-defined]
        "resource.kubernetes.token_file": str(token_file),
        "resource.kubernetes.image": "registry.example/job:1",
        "resource.kubernetes.poll_interval": 0.01,  # the schema wants > 0
        "master.interface": "0.0.0.0",
        "network.interface": "0.0.0.0",
    }


def test_submit_follow_delete_sequence(fake_api: FakeKubeApi, tmp_path: Path) -> None:
    launcher = KubernetesLauncher(kube_config(fake_api, tmp_path))
    job = Job.create(jobs.hello, workers=2, resources=Resources(cpu=0.5, memory_mb=256))
    launcher.check(job)
    handle = launcher.launch(job, dict(ENV))
    name = "hello-20261124-230000-1a2b"
    assert sorted(k[2] for k in fake_api.objects if k[0] == "pods") == [
        f"{name}-worker-0",
        f"{name}-worker-1",
    ]
    endpoint = fake_api.objects[("endpointslices", "default", f"{name}-master")]
    assert endpoint["endpoints"][0]["addresses"] == ["127.0.0.1"]  # the route to the API
    assert handle.poll() == []
    assert handle.alive()
    handle.stop(1.0)
    assert not handle.alive()
    assert fake_api.objects == {}
    creates = [p.rsplit("/", 1)[1] for m, p in fake_api.requests if m == "POST"]
    assert creates == [
        "secrets",
        "configmaps",
        "services",
        "endpointslices",
        "services",
        "statefulsets",
    ]
    deletes = [p.split("/")[-2] for m, p in fake_api.requests if m == "DELETE"]
    assert deletes == list(reversed(creates))


@pytest.mark.parametrize(
    ("plural", "code", "reason"),
    [("statefulsets", 500, "InternalError"), ("endpointslices", 403, "Forbidden")],
)
def test_failed_submission_deletes_what_it_created(
    fake_api: FakeKubeApi, tmp_path: Path, plural: str, code: int, reason: str
) -> None:
    fake_api.fail_create[plural] = (code, reason)
    with pytest.raises(PlacementError, match=r"the submission was rolled back \(deleted: Secret"):
        twister2.run(
            jobs.hello, workers=2, cluster="kubernetes", config=_overrides(fake_api, tmp_path)
        )
    assert fake_api.objects == {}


def _overrides(api: FakeKubeApi, tmp_path: Path, token: str = "t0ken") -> dict[str, Any]:
    cfg = kube_config(api, tmp_path, token)
    keys = [k for k in cfg if k.startswith("resource.kubernetes.") or k.endswith(".interface")]
    return {k: cfg[k] for k in keys}


def test_a_pod_that_cannot_start_fails_the_job_and_is_deleted(
    fake_api: FakeKubeApi, tmp_path: Path
) -> None:
    fake_api.waiting_reason = "ErrImagePull"
    with pytest.raises(PlacementError, match=r"cannot start: ErrImagePull .*resource\.kubernetes"):
        twister2.run(
            jobs.hello, workers=2, cluster="kubernetes", config=_overrides(fake_api, tmp_path)
        )
    assert fake_api.objects == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token": "expired"}, r"refused the credentials \(401 Unauthorized"),
        ({"resource.kubernetes.token_file": "/nonexistent/token"}, r"cannot read resource\."),
        ({"resource.kubernetes.namespace": "nope"}, r"namespace 'nope' does not exist: set"),
        ({"resource.kubernetes.image": ""}, r"resource\.kubernetes\.image is not set"),
        ({"master.interface": "127.0.0.1"}, r"listens on 127\.0\.0\.1: set master\.interface"),
        ({"resource.kubernetes.api_server": "http://127.0.0.1:9"}, r"cannot reach the Kubern"),
        (
            {"resource.kubernetes.api_server": "", "resource.kubernetes.kubeconfig": "/no/such"},
            r"no usable Kubernetes credentials .*set resource\.kubernetes\.kubeconfig",
        ),
    ],
)
def test_bad_input_is_one_clear_error(
    fake_api: FakeKubeApi, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    token = change.pop("token", "t0ken")
    config = {**_overrides(fake_api, tmp_path, token), **change}
    with pytest.raises(PlacementError, match=message) as info:
        twister2.run(jobs.hello, workers=2, cluster="kubernetes", config=config)
    assert "\n" not in str(info.value)
    assert not [m for m, _ in fake_api.requests if m == "POST"]


# ------------------------------------------------------------------------------- real pods


@pytest.fixture(scope="module")
def pod_hosts() -> Iterator[TestHosts]:
    reason = missing_netns()
    if reason:
        pytest.skip(reason)
    hosts = make_test_hosts(3)
    try:
        yield hosts
    finally:
        hosts.remove()


def run_pods(hosts: TestHosts, entry: str, workers: int, tmp_path: Path) -> dict[str, Any]:
    args = [f"{n}={a}" for n, a in zip(hosts.names, hosts.addresses, strict=True)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAKE_KUBELET_LOGS": str(tmp_path)}
    command = [sys.executable, "-m", "tests.resource.kube_pods_e2e", entry, str(workers), *args]
    done = subprocess.run(
        [*hosts.run_on(0), *command],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.slow
def test_worker_pods_on_three_hosts_find_the_master(pod_hosts: TestHosts, tmp_path: Path) -> None:
    outcome = run_pods(pod_hosts, "where", 3, tmp_path)
    assert "error" not in outcome, outcome
    values = outcome["values"]
    assert [v["id"] for v in values] == [0, 1, 2]
    assert [v["left"] for v in values] == [2, 0, 1]
    pods = [v["pod"] for v in values]
    assert [p.rsplit("-", 1)[1] for p in pods] == ["0", "1", "2"]
    assert [v["host"] for v in values] == pods  # each pod its own host, named as the pod
    assert outcome["left"] == []


@pytest.mark.slow
def test_a_failing_worker_pod_fails_the_job(pod_hosts: TestHosts, tmp_path: Path) -> None:
    outcome = run_pods(pod_hosts, "fail", 2, tmp_path)
    assert "worker 1 raised ValueError: boom from worker 1" in outcome["error"]
    assert outcome["left"] == []

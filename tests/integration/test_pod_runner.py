"""The pod runner runs opted-in pods for real: Ready from their own probes, traffic to their IPs.

Against the platform's cluster, registry, Docker and runner: a Deployment of the example service
labelled kyb.dev/run=true gets one container per pod, listening on the pod's own IP; Ready,
restarts and EndpointSlices follow what those processes answer. Unlabelled pods stay kwok's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import docker
import httpx
import pytest
from kubernetes import client

from blocks import KubernetesCluster
from core.release.status import RolloutState
from sandbox.example_image import build_example, push
from sandbox.platform import BLOCK_NAME, Platform
from sandbox.podrunner import ATTEMPT, POD_NAMESPACE, POD_UID, RUN_LABEL, RUNNER
from tasks.kube import wait_for_rollout, watch_pods

READINESS = {"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 3}


@pytest.fixture(scope="module")
def dc(platform: Platform) -> Iterator[docker.DockerClient]:
    """A Docker client of the platform's engine."""
    made = docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"], timeout=60)
    yield made
    made.close()


@pytest.fixture(scope="module")
def image(platform: Platform, dc: docker.DockerClient, tmp_path_factory) -> str:
    """The example service's scratch image, pushed to the platform's registry, not kept locally.

    The runner has to pull it (with the registry's credentials) to run a pod.
    """
    tag = f"{platform.registry.address}/pod-runner-test:{uuid.uuid4().hex[:10]}"
    ref = build_example(dc, tmp_path_factory.mktemp("context"), tag)
    push(platform, dc, ref)
    return ref


def _deployment(name: str, image: str, replicas: int = 2, **container) -> dict:
    container.setdefault("readinessProbe", {**READINESS, "periodSeconds": 1})
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": container.pop("deadline", 600),
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, RUN_LABEL: "true"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            **container,
                        }
                    ],
                },
            },
        },
    }


def _ready(pod: dict) -> bool:
    conditions = pod["status"].get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _wait(ns: str, selector: str, done, timeout: float = 90) -> dict[str, dict]:
    """Watch the pods `selector` matches until done(pods) holds; return them."""
    cluster = KubernetesCluster.load(BLOCK_NAME)
    ok, pods = watch_pods(cluster, ns, selector, lambda p: (bool(p) and done(p), p), timeout)
    assert ok, {n: p["status"] for n, p in pods.items()}
    return pods


def _containers(dc: docker.DockerClient, **labels: str) -> list:
    filters = {"label": [f"{RUNNER}=kyb", *(f"{k}={v}" for k, v in labels.items())]}
    return dc.containers.list(all=True, filters=filters)


def _verify_count(ip: str) -> float:
    """How many GET /api/v1/verify answered 200 on that pod's process (from its /metrics)."""
    text = httpx.get(f"http://{ip}:8080/metrics", timeout=5).text
    pattern = r'^http_requests_total\{[^}]*path="/api/v1/verify"[^}]*status="200"[^}]*\} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _refused(ip: str) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((ip, 8080)) != 0


def _ready_endpoints(kube, ns: str, service: str) -> tuple[set[str], set[str]]:
    """(addresses whose endpoint is ready, all addresses) of the Service's EndpointSlices."""
    slices = client.DiscoveryV1Api(kube).list_namespaced_endpoint_slice(
        ns, label_selector=f"kubernetes.io/service-name={service}"
    )
    ready, every = set(), set()
    for piece in slices.items:
        for endpoint in piece.endpoints or []:
            every |= set(endpoint.addresses)
            if endpoint.conditions and endpoint.conditions.ready:
                ready |= set(endpoint.addresses)
    return ready, every


def test_replicas_turn_ready_from_their_own_process_and_serve_on_their_own_ip(
    platform: Platform, kube, namespace: str, dc, image: str
) -> None:
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, _deployment("web", image))
    service = {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}
    client.CoreV1Api(kube).create_namespaced_service(
        namespace, {"metadata": {"name": "web"}, "spec": service}
    )
    scheduled: dict[str, float] = {}
    became_ready: dict[str, float] = {}

    def both_ready(pods: dict[str, dict]) -> bool:
        for name, pod in pods.items():
            if pod["spec"].get("nodeName"):
                scheduled.setdefault(name, time.monotonic())
            if _ready(pod):
                became_ready.setdefault(name, time.monotonic())
        return len([p for p in pods.values() if _ready(p)]) == 2

    pods = _wait(namespace, "app=web", both_ready)
    name = sorted(became_ready)[0]
    print(f"\npod {name}: scheduled -> Ready in {became_ready[name] - scheduled[name]:.2f} s")

    ips = [p["status"]["podIP"] for p in pods.values()]
    run_cidr = ipaddress.ip_network(platform.settings.run_pod_cidr)
    assert len(set(ips)) == 2 and all(ipaddress.ip_address(ip) in run_cidr for ip in ips)
    for pod in pods.values():
        (status,) = pod["status"]["containerStatuses"]
        assert (status["ready"], status["started"], status["restartCount"]) == (True, True, 0)
        ready_at = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        started = _stamp(status["state"]["running"]["startedAt"])
        # initialDelaySeconds (3) is honoured: second-resolution stamps, so one second of slack
        assert (_stamp(ready_at["lastTransitionTime"]) - started).total_seconds() >= 2
        (container,) = _containers(dc, **{POD_UID: pod["metadata"]["uid"]})
        assert status["containerID"] == f"docker://{container.id}"
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        assert f'"addr":"{pod["status"]["podIP"]}:8080"' in container.logs().decode()

    first, second = ips
    before = _verify_count(second)
    for _ in range(3):
        answer = httpx.get(f"http://{first}:8080/api/v1/verify", timeout=5)
        assert answer.status_code == 200
    assert (_verify_count(first), _verify_count(second)) == (3, before)  # each its own process

    deadline = time.monotonic() + 30  # the EndpointSlice controller follows within moments
    while _ready_endpoints(kube, namespace, "web") != (set(ips), set(ips)):
        assert time.monotonic() < deadline, _ready_endpoints(kube, namespace, "web")
        time.sleep(0.5)


def test_a_version_whose_health_fails_never_turns_ready_and_misses_its_deadline(
    kube, namespace: str, image: str
) -> None:
    env = [{"name": "KYB_UNHEALTHY", "value": "database"}]  # its /health answers 503
    body = _deployment("bad", image, 1, env=env, deadline=10)
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, body)
    client.CoreV1Api(kube).create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "bad"},
            "spec": {"selector": {"app": "bad"}, "ports": [{"port": 80}]},
        },
    )
    state, reason = wait_for_rollout(kube, namespace, "bad", timeout=120)
    assert state is RolloutState.DEADLINE_EXCEEDED, reason
    (pod,) = _wait(namespace, "app=bad", lambda pods: len(pods) == 1).values()
    assert pod["status"]["phase"] == "Running" and not _ready(pod)
    (status,) = pod["status"]["containerStatuses"]
    assert status["started"] and not status["ready"] and status["restartCount"] == 0
    ip = pod["status"]["podIP"]
    assert httpx.get(f"http://{ip}:8080/health", timeout=5).status_code == 503  # it runs
    deadline = time.monotonic() + 30  # listed by the Service, as not ready
    while (found := _ready_endpoints(kube, namespace, "bad")) != (set(), {ip}):
        assert time.monotonic() < deadline, found
        time.sleep(0.5)


def test_a_failing_liveness_probe_restarts_the_container(kube, namespace: str, dc, image) -> None:
    liveness = {"httpGet": {"path": "/missing", "port": 8080}, "periodSeconds": 1}
    liveness |= {"initialDelaySeconds": 2, "failureThreshold": 2}
    body = _deployment("live", image, 1, livenessProbe=liveness)
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, body)

    def restarted(pods: dict[str, dict]) -> bool:
        statuses = [s for p in pods.values() for s in p["status"].get("containerStatuses") or []]
        return any(s["restartCount"] >= 1 for s in statuses)

    (pod,) = _wait(namespace, "app=live", restarted, timeout=120).values()
    (status,) = pod["status"]["containerStatuses"]
    ended = status["lastState"]["terminated"]
    assert "Liveness probe failed" in ended["message"] and "404" in ended["message"]
    containers = _containers(dc, **{POD_UID: pod["metadata"]["uid"]})
    attempts = sorted(int(c.labels[ATTEMPT]) for c in containers)
    assert attempts and attempts[-1] >= 1  # a new container each restart, the old one removed


def test_deleting_the_deployment_removes_its_containers(kube, namespace: str, dc, image) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment(namespace, _deployment("gone", image))
    pods = _wait(namespace, "app=gone", lambda p: len([x for x in p.values() if _ready(x)]) == 2)
    assert len(_containers(dc, **{POD_NAMESPACE: namespace})) == 2
    apps.delete_namespaced_deployment("gone", namespace)
    deadline = time.monotonic() + 60
    while _containers(dc, **{POD_NAMESPACE: namespace}):
        assert time.monotonic() < deadline, "the containers outlived their pods"
        time.sleep(0.5)
    assert all(_refused(p["status"]["podIP"]) for p in pods.values())


def test_pods_without_the_label_stay_simulated(platform, kube, namespace, dc, image) -> None:
    never = {"httpGet": {"path": "/missing", "port": 8080}}  # would fail if anything ran it
    pod = {
        "metadata": {"name": "sim", "labels": {"app": "sim"}},
        "spec": {"containers": [{"name": "web", "image": image, "readinessProbe": never}]},
    }
    client.CoreV1Api(kube).create_namespaced_pod(namespace, pod)
    (seen,) = _wait(namespace, "app=sim", lambda pods: all(map(_ready, pods.values()))).values()
    ip = seen["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(platform.settings.pod_cidr)
    assert not _containers(dc, **{POD_UID: seen["metadata"]["uid"]}) and _refused(ip)


def test_an_opted_in_pod_of_another_registry_is_not_run(kube, namespace: str, dc) -> None:
    pod = {
        "metadata": {"name": "far", "labels": {"app": "far", RUN_LABEL: "true"}},
        "spec": {"containers": [{"name": "web", "image": "docker.io/library/nginx:1.27"}]},
    }
    client.CoreV1Api(kube).create_namespaced_pod(namespace, pod)

    def refused(pods: dict[str, dict]) -> bool:
        statuses = [s for p in pods.values() for s in p["status"].get("containerStatuses") or []]
        return any(
            (s["state"].get("waiting") or {}).get("reason") == "ErrImageNotLocal" for s in statuses
        )

    (seen,) = _wait(namespace, "app=far", refused).values()
    assert not _ready(seen) and not _containers(dc, **{POD_UID: seen["metadata"]["uid"]})


def test_a_restarted_runner_adopts_its_containers_and_removes_orphans(
    platform: Platform, kube, namespace: str, dc, image: str
) -> None:
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, _deployment("keep", image, 1))
    (pod,) = _wait(namespace, "app=keep", lambda p: all(map(_ready, p.values()))).values()
    (kept,) = _containers(dc, **{POD_UID: pod["metadata"]["uid"]})
    orphan = dc.containers.run(
        image,
        ["--listen", "127.0.0.1:0"],
        labels={RUNNER: "kyb", POD_UID: f"gone-{uuid.uuid4()}", POD_NAMESPACE: namespace},
        network_mode="host",
        detach=True,
    )
    try:
        platform.podrunner.down()
        platform.podrunner.up()  # returns once the runner has listed pods and containers
        assert platform.podrunner.status().state == "running"
        with pytest.raises(docker.errors.NotFound):
            orphan.reload()
        kept.reload()
        assert kept.status == "running"  # the same container: adopted, not restarted
        (again,) = _wait(namespace, "app=keep", lambda p: all(map(_ready, p.values()))).values()
        assert again["status"]["containerStatuses"][0]["restartCount"] == 0
        assert httpx.get(f"http://{again['status']['podIP']}:8080/health", timeout=5).is_success
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            orphan.remove(force=True)


def test_the_dr_cluster_has_a_runner_of_its_own(platform: Platform, dc, image: str) -> None:
    """What a restore brings back into the DR cluster runs too, on KYB_DR_RUN_POD_CIDR's IPs."""
    dr = KubernetesCluster.load("dr")
    api = dr.api_client()
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    try:
        client.AppsV1Api(api).create_namespaced_deployment(
            namespace, _deployment("web", image, replicas=1)
        )
        ok, pods = watch_pods(
            dr, namespace, "app=web", lambda p: (any(map(_ready, p.values())), p), 90
        )
        assert ok, {n: p["status"] for n, p in pods.items()}
        [ip] = [p["status"]["podIP"] for p in pods.values() if _ready(p)]
        cidr = ipaddress.ip_network(platform.settings.dr_run_pod_cidr)
        assert ipaddress.ip_address(ip) in cidr
        assert httpx.get(f"http://{ip}:8080/health", timeout=5).json()["status"] == "healthy"
        [mine] = dc.containers.list(
            filters={"label": [f"{RUNNER}=kyb-dr", f"{POD_NAMESPACE}={namespace}"]}
        )
        assert mine.status == "running"
        assert not _containers(dc, **{POD_NAMESPACE: namespace})  # the main runner's: none
    finally:
        client.CoreV1Api(api).delete_namespace(namespace)

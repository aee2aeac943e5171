"""The example KYB service and its manifests are real.

overlays pass the apiserver and Pod Security Admission, alert rules pass promtool, Go tests pass,
and the scratch image serves with faults.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import docker
import httpx
import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from sandbox.platform import Platform

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kyb-platform"
DEPLOY = EXAMPLE / "deploy"
REPLICAS = {"dev": 1, "staging": 3, "production": 10}
UID = 65532


def _tool(name: str) -> str:
    """Path of a command-line tool; missing fails in CI and skips elsewhere."""
    found = shutil.which(name) or (f"/usr/local/go/bin/{name}" if name == "go" else None)
    if found and Path(found).exists():
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI and is not on PATH")
    pytest.skip(f"{name} is not on PATH")


def _run(
    args: list[str], *, cwd: Path | None = None, stdin: str | None = None, timeout: float = 300
):
    """Run a command; fail the test with its output when it does not succeed."""
    proc = subprocess.run(
        args, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _kubectl(platform: Platform, *args: str, stdin: str | None = None):
    kubectl = str(platform.settings.k8s_bin / "kubectl")
    return _run([kubectl, "--kubeconfig", str(platform.settings.kubeconfig), *args], stdin=stdin)


def _render(platform: Platform, directory: Path) -> list[dict]:
    out = _kubectl(platform, "kustomize", str(directory)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"want one {kind}, got {len(found)}"
    return found[0]


@contextlib.contextmanager
def _overlay_in_fresh_namespace(platform: Platform, kube, env: str, tmp_path: Path):
    """Render an overlay into a unique namespace and create it from the overlay's objects.

    Render an overlay into a unique namespace (the shared cluster may hold kyb-<env>), create
    that namespace for real from the overlay's own Namespace object, and delete it afterwards.
    """
    name = f"t-{uuid.uuid4().hex[:6]}-{env}"
    wrapper = tmp_path / env
    wrapper.mkdir()
    rel = os.path.relpath(DEPLOY / env, wrapper)  # kustomize refuses absolute resource paths
    (wrapper / "kustomization.yaml").write_text(
        f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {name}\nresources:\n- {rel}\n"
    )
    docs = _render(platform, wrapper)
    ns = _one(docs, "Namespace")
    assert ns["metadata"]["name"] == name
    try:
        _kubectl(platform, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(ns))
        yield name, docs
    finally:
        with contextlib.suppress(ApiException):
            client.CoreV1Api(kube).delete_namespace(name)


@pytest.mark.parametrize("env", sorted(REPLICAS))
def test_overlay_renders_pinned_and_restricted(platform: Platform, env: str) -> None:
    assert "patchesStrategicMerge" not in (DEPLOY / env / "kustomization.yaml").read_text()
    docs = _render(platform, DEPLOY / env)
    labels = _one(docs, "Namespace")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == f"kyb-{env}", doc["metadata"]
    assert _one(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    kinds = {d["kind"] for d in docs}
    assert {"ConfigMap", "Secret", "Service", "HorizontalPodAutoscaler"} <= kinds
    has_guards = {"PodDisruptionBudget", "NetworkPolicy"} <= kinds
    assert has_guards is (env == "production")
    assert b"PLACEHOLDER-NOT-A-SECRET" in (DEPLOY / env / "secrets.yaml").read_bytes()

    deployment = _one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == REPLICAS[env]
    assert _one(docs, "HorizontalPodAutoscaler")["spec"]["minReplicas"] == REPLICAS[env]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert re.fullmatch(
        r"127\.0\.0\.1:5001/kyb-platform(:[\w.-]+|@sha256:[0-9a-f]{64})", container["image"]
    )
    assert not container["image"].endswith(":latest")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": UID,
    }
    env_vars = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}
    assert env_vars["GOMAXPROCS"] == {"resourceFieldRef": {"resource": "limits.cpu"}}
    assert env_vars["GOMEMLIMIT"] == {"resourceFieldRef": {"resource": "limits.memory"}}
    assert set(container["resources"]) == {"requests", "limits"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": 8080}


@pytest.mark.parametrize("env", sorted(REPLICAS))
def test_overlay_passes_server_side_dry_run(platform: Platform, kube, env, tmp_path) -> None:
    with _overlay_in_fresh_namespace(platform, kube, env, tmp_path) as (name, docs):
        manifest = yaml.safe_dump_all(docs)
        proc = _kubectl(
            platform, "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=manifest
        )
        kinds = {d["kind"].lower() for d in docs}
        applied = {line.split("/")[0].split(".")[0] for line in proc.stdout.splitlines()}
        assert kinds <= applied, proc.stdout
        assert "PodSecurity" not in proc.stderr, proc.stderr  # the warn label found nothing
        assert client.AppsV1Api(kube).list_namespaced_deployment(name).items == []  # dry run


def _pod_from_template(docs: list[dict], name: str, **container_security) -> dict:
    template = _one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = template["containers"]
    container = {
        **container,
        "securityContext": {**container["securityContext"], **container_security},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {**template, "containers": [container]},
    }


def test_restricted_namespace_admits_overlay_pods_only(platform: Platform, kube, tmp_path):
    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    with _overlay_in_fresh_namespace(platform, kube, "staging", tmp_path) as (name, docs):
        proc = _kubectl(
            platform, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs)
        )
        assert "PodSecurity" not in proc.stderr, proc.stderr

        seen: set[str] = set()
        pods = watch.Watch()
        for event in pods.stream(
            core.list_namespaced_pod, name, label_selector="app=kyb-platform", timeout_seconds=60
        ):
            seen.add(event["object"].metadata.name)
            if len(seen) >= REPLICAS["staging"]:
                pods.stop()
        assert len(seen) == REPLICAS["staging"], f"pods created within 60 s: {sorted(seen)}"
        (replica_set,) = apps.list_namespaced_replica_set(name).items
        failures = [c for c in replica_set.status.conditions or [] if c.reason == "FailedCreate"]
        assert not failures, failures

        as_root = _pod_from_template(docs, "as-root", runAsUser=0)
        privileged = _pod_from_template(
            docs, "privileged", privileged=True, allowPrivilegeEscalation=True
        )
        for bad, violation in ((as_root, "runAsUser=0"), (privileged, "privileged")):
            with pytest.raises(ApiException) as refused:
                core.create_namespaced_pod(name, bad)
            assert refused.value.status == 403
            message = json.loads(refused.value.body)["message"]
            assert 'violates PodSecurity "restricted:latest"' in message
            assert violation in message, message


def test_alert_rules_pass_promtool() -> None:
    promtool = _tool("promtool")
    alerts = DEPLOY / "alerts"
    _run([promtool, "check", "rules", str(alerts / "deployment-alerts.yml")])
    _run([promtool, "test", "rules", "deployment-alerts.test.yml"], cwd=alerts)
    rules = yaml.safe_load((alerts / "deployment-alerts.yml").read_text())["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["DeploymentFailed", "HighErrorRate", "HighLatency"]


def test_go_service_tests_vet_and_format() -> None:
    go = _tool("go")
    _run([go, "test", "-race", "-count=1", "./..."], cwd=EXAMPLE, timeout=600)
    _run([go, "vet", "./..."], cwd=EXAMPLE)
    unformatted = _run([str(Path(go).with_name("gofmt")), "-l", "."], cwd=EXAMPLE).stdout
    assert unformatted == "", f"gofmt would change: {unformatted}"


# --- the scratch image, run with --network host on loopback ---------------------------------


@pytest.fixture(scope="module")
def docker_client(platform: Platform) -> Iterator[docker.DockerClient]:
    dc = docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"])
    yield dc
    dc.close()


@pytest.fixture(scope="module")
def image(docker_client, tmp_path_factory) -> Iterator[str]:
    """Build the scratch image from a context prepared on this host; remove it afterwards."""
    _tool("go")
    context = tmp_path_factory.mktemp("image-context")
    _run([str(EXAMPLE / "build-context.sh"), str(context)], timeout=600)
    tag = f"kyb-platform-test:{uuid.uuid4().hex[:10]}"
    docker_client.images.build(path=str(context), tag=tag, rm=True, forcerm=True)
    yield tag
    docker_client.images.remove(tag, force=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _service(dc: docker.DockerClient, image: str, *args: str, **env: str) -> Iterator[tuple]:
    """Run the image on a free loopback port; yield (base URL, container) once it answers."""
    port = _free_port()
    container = dc.containers.run(
        image,
        ["--listen", f"127.0.0.1:{port}", *args],
        environment=env,
        network_mode="host",
        detach=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        for _ in range(80):  # bounded in count and time
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{url}/health", timeout=1)
                break
            container.reload()
            assert container.status != "exited", container.logs().decode()
            assert time.monotonic() < deadline, "service did not answer within 20 s"
            time.sleep(0.25)
        else:
            pytest.fail(f"service did not answer: {container.logs().decode()}")
        yield url, container
    finally:
        container.remove(force=True)


def _requests_total(url: str, **labels: str) -> float:
    """Sum of the http_requests_total samples on /metrics whose labels include `labels`."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    total = 0.0
    for match in re.finditer(r"^http_requests_total\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.items() <= found.items():
            total += float(match.group(2))
    return total


def test_image_is_non_root_and_serves_the_health_contract(docker_client, image) -> None:
    attrs = docker_client.images.get(image).attrs["Config"]
    assert attrs["User"] == f"{UID}:{UID}"
    assert attrs["Entrypoint"] == ["/kyb-platform"]
    with _service(docker_client, image, KYB_VERSION="v9.9.9") as (url, container):
        response = httpx.get(f"{url}/health", timeout=5)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "healthy" and body["version"] == "v9.9.9"
        assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
        assert body["checks"] == {
            "database": {"status": "healthy"},
            "external_services": {"status": "healthy"},
        }
        assert httpx.get(f"{url}/api/v1/verify", timeout=5).json()["status"] == "verified"
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert "http_request_duration_seconds_bucket{" in metrics

        container.stop(timeout=15)  # SIGTERM: a graceful shutdown exits 0
        assert container.wait(timeout=20)["StatusCode"] == 0
        assert b'"msg":"shutting down"' in container.logs()


@pytest.mark.parametrize(
    ("args", "env", "bad"),
    [
        ((), {"KYB_UNHEALTHY": "database"}, "database"),
        (("--unhealthy", "external_services"), {}, "external_services"),
    ],
)
def test_unhealthy_dependency_answers_503(docker_client, image, args, env, bad) -> None:
    with _service(docker_client, image, *args, **env) as (url, _):
        response = httpx.get(f"{url}/health", timeout=5)
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unhealthy"
        assert body["checks"][bad]["status"] == "unhealthy" and body["checks"][bad]["message"]
        good = ({"database", "external_services"} - {bad}).pop()
        assert body["checks"][good] == {"status": "healthy"}


def test_error_rate_one_fails_every_verify_and_is_counted(docker_client, image) -> None:
    with _service(docker_client, image, "--error-rate", "1.0") as (url, _):
        labels = {"method": "GET", "path": "/api/v1/verify", "status": "500"}
        before = _requests_total(url, **labels)
        codes = [httpx.get(f"{url}/api/v1/verify", timeout=5).status_code for _ in range(5)]
        assert codes == [500] * 5
        assert _requests_total(url, **labels) == before + 5
        assert _requests_total(url, path="/api/v1/verify", status="200") == 0
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200

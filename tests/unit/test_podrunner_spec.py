"""The pod runner reads a pod as a kubelet would: probes, environment, Docker options, status."""

from __future__ import annotations

import base64

import pytest

from sandbox.podrunner.probes import ProbeState
from sandbox.podrunner.spec import (
    Probe,
    SpecError,
    decode_secret,
    environment,
    expand,
    from_registry,
    opted_in,
    parse_probe,
    run_spec,
)
from sandbox.podrunner.status import ContainerState, PodView, agrees, status_patch

CONTAINER = {
    "name": "web",
    "image": "127.0.0.1:5001/kyb-platform@sha256:" + "a" * 64,
    "ports": [{"name": "http", "containerPort": 8080}],
}


def _pod(**spec) -> dict:
    return {
        "metadata": {"name": "web-1", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"containers": [dict(CONTAINER)], "nodeName": "kwok-node-0", **spec},
        "status": {"podIP": "127.48.0.9", "hostIP": "127.0.0.1"},
    }


def test_only_labelled_pods_of_the_platform_registry_run() -> None:
    pod = _pod()
    assert not opted_in(pod)
    pod["metadata"]["labels"]["kyb.dev/run"] = "true"
    assert opted_in(pod)
    assert from_registry("127.0.0.1:5001/kyb-platform:v1", "127.0.0.1:5001")
    assert not from_registry("docker.io/library/nginx:1", "127.0.0.1:5001")
    assert not from_registry("kyb-platform:v1", "127.0.0.1:5001")


def test_probe_defaults_and_named_ports() -> None:
    probe = parse_probe({"httpGet": {"path": "/health", "port": "http"}}, CONTAINER)
    assert probe == Probe("http", 8080, "/health", "HTTP", {}, 0, 10, 1, 1, 3)
    tcp = parse_probe({"tcpSocket": {"port": 9000}, "periodSeconds": 2}, CONTAINER)
    assert (tcp.kind, tcp.port, tcp.period) == ("tcp", 9000, 2)
    assert parse_probe({"exec": {"command": ["true"]}}, CONTAINER).kind == "unsupported"
    assert parse_probe(None, CONTAINER) is None
    with pytest.raises(SpecError, match="names no port"):
        parse_probe({"httpGet": {"port": "metrics"}}, CONTAINER)


def test_thresholds_flip_the_result_as_a_kubelet_does() -> None:
    probe = Probe("http", 8080, initial_delay=5, period=2, success_threshold=2, failure_threshold=3)
    ready = ProbeState(probe, started=100.0, passing=False)
    assert not ready.due(104.9) and ready.due(105.0)  # initialDelaySeconds from the start
    assert not ready.record(True, "ok", 105.0)  # one success of two
    assert ready.next_check == 107.0  # periodSeconds later
    assert ready.record(True, "ok", 107.0) and ready.passing
    assert not ready.record(False, "503", 109.0) and not ready.record(False, "503", 111.0)
    assert ready.passing  # two failures of three
    assert ready.record(False, "503", 113.0) and not ready.passing
    assert not ready.record(True, "ok", 115.0) and not ready.passing  # a success resets nothing yet


def test_environment_resolves_refs_then_expands() -> None:
    data = {
        ("configmap", "cfg"): {"KYB_LISTEN": ":8080", "MODE": "fast"},
        ("secret", "sec"): {"TOKEN": "s3cr3t"},
    }
    container = {
        **CONTAINER,
        "envFrom": [
            {"configMapRef": {"name": "cfg"}},
            {"secretRef": {"name": "sec"}, "prefix": "S_"},
        ],
        "env": [
            {"name": "GREETING", "value": "mode $(MODE), $$(MODE), $(NOPE)"},
            {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "ONE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "gone", "key": "x", "optional": True}},
            },
        ],
        "resources": {"limits": {"cpu": "1500m"}},
    }
    env = environment(_pod(), container, lambda kind, _ns, name: data.get((kind, name)))
    assert env["KYB_LISTEN"] == ":8080" and env["S_TOKEN"] == "s3cr3t"
    assert env["GREETING"] == "mode fast, $(MODE), $(NOPE)"
    assert (env["ME"], env["APP"], env["IP"], env["CPUS"], env["ONE"]) == (
        "web-1",
        "web",
        "127.48.0.9",
        "2",
        "fast",
    )
    assert "OPT" not in env
    missing = {
        **CONTAINER,
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "no", "key": "k"}}}],
    }
    with pytest.raises(SpecError, match="secret no key k not found") as err:
        environment(_pod(), missing, lambda *_: None)
    assert err.value.reason == "CreateContainerConfigError"
    assert expand("$(A)$(B)", {"A": "1"}) == "1$(B)"
    assert decode_secret({"k": base64.b64encode(b"v").decode()}) == {"k": "v"}


def test_run_spec_gives_pod_ip_port_and_the_security_context() -> None:
    pod = _pod(
        securityContext={"runAsUser": 65532, "runAsGroup": 65532},
        terminationGracePeriodSeconds=5,
        volumes=[{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}, {"name": "s", "secret": {}}],
    )
    pod["spec"]["containers"][0].update(
        command=["/kyb-platform"],
        args=["--version", "$(POD_IP)"],
        securityContext={
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        resources={"limits": {"memory": "512Mi", "cpu": "500m"}},
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}, {"name": "s", "mountPath": "/s"}],
    )
    spec = run_spec(pod, "127.48.0.9", lambda *_: None)
    assert spec.environment["POD_IP"] == "127.48.0.9" and spec.environment["PORT"] == "8080"
    assert spec.entrypoint == ["/kyb-platform"] and spec.command == ["--version", "127.48.0.9"]
    assert spec.user == "65532:65532" and spec.read_only and spec.cap_drop == ["ALL"]
    assert spec.security_opt == ["no-new-privileges"]
    assert spec.mem_limit == 512 * 2**20 and spec.nano_cpus == 500_000_000
    assert spec.tmpfs == {"/tmp": f"size={16 * 2**20}"}
    assert spec.pull_policy == "IfNotPresent" and spec.grace_seconds == 5  # by digest
    pod["spec"]["containers"][0]["image"] = "127.0.0.1:5001/kyb-platform"
    assert run_spec(pod, "127.48.0.9", lambda *_: None).pull_policy == "Always"  # no tag: latest


def test_status_reports_readiness_restarts_and_unrun_containers() -> None:
    pod = _pod()
    running = ContainerState("running", "", container_id="docker://abc", started_at="T1")
    view = PodView(current=running, restarts=2, ready=True, ready_since="T2", pod_ip="127.48.0.9")
    view.last = ContainerState("terminated", "", "Liveness probe failed", exit_code=0)
    status = status_patch(pod, view)["status"]
    assert status["phase"] == "Running" and status["podIP"] == "127.48.0.9"
    ready = {c["type"]: c for c in status["conditions"]}
    assert ready["Ready"]["status"] == ready["ContainersReady"]["status"] == "True"
    assert ready["Ready"]["reason"] is None  # an earlier ContainersNotReady is removed
    (first,) = status["containerStatuses"]
    assert (first["ready"], first["started"], first["restartCount"]) == (True, True, 2)
    assert first["lastState"]["terminated"]["reason"] == "Completed"
    assert first["lastState"]["terminated"]["message"] == "Liveness probe failed"

    pod["spec"]["containers"].append({"name": "sidecar", "image": "x"})
    two = status_patch(pod, view)["status"]
    assert {c["status"] for c in two["conditions"]} == {"False"}  # never Ready with one unrun
    assert two["containerStatuses"][1]["state"]["waiting"]["reason"] == "NotRun"


def test_agrees_notices_a_status_someone_else_changed() -> None:
    pod = _pod()
    view = PodView(current=ContainerState("running", "", started_at="T"), ready=True)
    view.pod_ip = "127.48.0.9"
    patch = status_patch(pod, view)
    pod["status"] = {k: v for k, v in patch["status"].items()}
    assert agrees(pod, patch)
    pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]  # node controller
    assert not agrees(pod, patch)


def test_a_divisor_the_apiserver_stored_as_zero_counts_as_one() -> None:
    """Pods read back from the apiserver carry divisor "0" for an unset divisor (seen here)."""
    container = {
        **CONTAINER,
        "env": [
            {
                "name": "CPUS",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}},
            },
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
        ],
        "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
    }
    env = environment(_pod(), container, lambda *_: None)
    assert (env["CPUS"], env["MEM"]) == ("1", "512")


def test_a_prestop_sleep_is_kept_within_the_grace_period() -> None:
    from sandbox.podrunner.worker import pre_stop_seconds

    def pod(lifecycle: dict, grace: int = 30) -> dict:
        container = {**CONTAINER, "lifecycle": lifecycle}
        return {"spec": {"containers": [container], "terminationGracePeriodSeconds": grace}}

    assert pre_stop_seconds(pod({"preStop": {"sleep": {"seconds": 5}}})) == 5
    assert pre_stop_seconds(pod({"preStop": {"sleep": {"seconds": 50}}}, grace=10)) == 10
    assert pre_stop_seconds(pod({"preStop": {"exec": {"command": ["true"]}}})) == 0
    assert pre_stop_seconds(pod({})) == 0

"""The local cluster is a real Kubernetes control plane: rollouts, undo, progress deadlines."""

from __future__ import annotations

import subprocess

from kubernetes import client, watch

from core.release.status import RolloutState
from sandbox.platform import Platform
from tasks.kube import wait_for_rollout

IMAGE_V1 = "127.0.0.1:5001/kyb-platform@sha256:" + "1" * 64
IMAGE_V2 = "127.0.0.1:5001/kyb-platform@sha256:" + "2" * 64


def _deployment(name: str, image: str, replicas: int = 3, deadline: int = 600) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": labels},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def _image(apps: client.AppsV1Api, ns: str, name: str) -> str:
    return apps.read_namespaced_deployment(name, ns).spec.template.spec.containers[0].image


def _set_image(apps: client.AppsV1Api, ns: str, name: str, image: str, labels=None) -> None:
    patch: dict = {
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}
    }
    if labels:
        patch["spec"]["template"]["metadata"] = {"labels": labels}
    apps.patch_namespaced_deployment(name, ns, patch)


def test_cluster_reports_the_built_version(platform: Platform, kube) -> None:
    version = client.VersionApi(kube).get_code()
    assert version.git_version == "v1.34.4"
    nodes = client.CoreV1Api(kube).list_node().items
    assert len(nodes) >= 2
    for node in nodes:
        ips = [a.address for a in node.status.addresses if a.type == "InternalIP"]
        assert ips and all(ip.startswith("127.") for ip in ips), ips


def test_rollout_then_undo_restores_previous_revision(platform: Platform, kube, namespace) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment(namespace, _deployment("web", IMAGE_V1))
    assert wait_for_rollout(kube, namespace, "web", timeout=120)[0] is RolloutState.COMPLETE

    _set_image(apps, namespace, "web", IMAGE_V2)
    state, _ = wait_for_rollout(kube, namespace, "web", timeout=120)
    assert state is RolloutState.COMPLETE
    pods = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="app=web").items
    running = [p for p in pods if p.metadata.deletion_timestamp is None]
    assert {p.spec.containers[0].image for p in running} == {IMAGE_V2}
    assert all(p.status.pod_ip.startswith("127.") for p in running)

    kubectl = platform.settings.k8s_bin / "kubectl"
    subprocess.run(
        [
            str(kubectl),
            "--kubeconfig",
            str(platform.settings.kubeconfig),
            "-n",
            namespace,
            "rollout",
            "undo",
            "deployment/web",
        ],
        check=True,
        capture_output=True,
    )
    assert wait_for_rollout(kube, namespace, "web", timeout=120)[0] is RolloutState.COMPLETE
    dep = apps.read_namespaced_deployment("web", namespace)
    assert dep.spec.template.spec.containers[0].image == IMAGE_V1
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert dep.status.ready_replicas == 3


def test_not_ready_stage_makes_rollout_hit_its_deadline(platform: Platform, kube, namespace):
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment(namespace, _deployment("bad", IMAGE_V1, deadline=10))
    assert wait_for_rollout(kube, namespace, "bad", timeout=120)[0] is RolloutState.COMPLETE

    _set_image(
        apps, namespace, "bad", IMAGE_V2, {"app": "bad", "sandbox.kyb.dev/not-ready": "true"}
    )
    state, reason = wait_for_rollout(kube, namespace, "bad", timeout=180)
    assert state is RolloutState.DEADLINE_EXCEEDED, reason

    pods = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="app=bad").items
    new = [p for p in pods if p.spec.containers[0].image == IMAGE_V2]
    old = [p for p in pods if p.spec.containers[0].image == IMAGE_V1]
    assert new and all(p.status.phase == "Running" for p in new)
    assert all(c.status == "False" for p in new for c in p.status.conditions if c.type == "Ready")
    assert len(old) == 3  # maxUnavailable 0: the stable revision keeps serving
    assert apps.read_namespaced_deployment("bad", namespace).status.available_replicas == 3


def _ready(pod: client.V1Pod) -> str:
    return next((c.status for c in pod.status.conditions or [] if c.type == "Ready"), "?")


def _watch_until(list_fn, namespace: str, name: str, ok, seconds: int = 60):
    """The object `name` once `ok(it)`, watched for up to `seconds`.

    else the last version seen. A watch without a resourceVersion starts with the current object, so
    nothing is missed.
    """
    changes, last = watch.Watch(), None
    for event in changes.stream(
        list_fn, namespace, field_selector=f"metadata.name={name}", timeout_seconds=seconds
    ):
        last = event["object"]
        if ok(last):
            changes.stop()
    return last


def test_pod_marked_unready_by_a_node_outage_turns_ready_again(
    platform: Platform, kube, namespace
) -> None:
    """Pods the node lifecycle controller marked unready turn Ready again once the node is back.

    The node lifecycle controller sets Ready=False on every pod of a node that missed its
    heartbeats; once the node is back, the pods must serve again, as a kubelet would make them.
    """
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    apps.create_namespaced_deployment(namespace, _deployment("web", IMAGE_V1, replicas=2))
    assert wait_for_rollout(kube, namespace, "web", timeout=120)[0] is RolloutState.COMPLETE
    pod = core.list_namespaced_pod(namespace, label_selector="app=web").items[0]
    marked = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, marked)

    again = _watch_until(
        core.list_namespaced_pod, namespace, pod.metadata.name, lambda p: _ready(p) == "True"
    )
    assert again is not None and _ready(again) == "True"
    assert wait_for_rollout(kube, namespace, "web", timeout=60)[0] is RolloutState.COMPLETE
    # The rollout stays Complete through the blip; availableReplicas follows once the deployment
    # controller has seen the pod Ready again, which may be a moment after.
    web = _watch_until(
        apps.list_namespaced_deployment,
        namespace,
        "web",
        lambda d: d.status.available_replicas == 2,
    )
    assert web is not None and web.status.available_replicas == 2

"""The Kubernetes tasks on the real cluster: idempotent apply, scale, selector switch, undo."""

from __future__ import annotations

import pytest
from kubernetes import client

from blocks import KubernetesCluster
from core.errors import ConfigError
from core.release.status import RolloutState
from sandbox.platform import BLOCK_NAME
from tasks import kube
from tasks.rollback import undo_once

DIGEST = "127.0.0.1:5001/kyb-platform@sha256:"


def deployment(ns: str, image: str, replicas: int = 2) -> dict:
    labels = {"app": "api"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "api", "image": image}]},
            },
        },
    }


@pytest.fixture
def cluster(platform) -> KubernetesCluster:
    return KubernetesCluster.load(BLOCK_NAME)


def test_apply_is_idempotent_and_scale_converges(cluster, namespace) -> None:
    first = kube.apply(cluster, deployment(namespace, DIGEST + "a" * 64))
    again = kube.apply(cluster, deployment(namespace, DIGEST + "a" * 64))
    assert first["metadata"]["generation"] == again["metadata"]["generation"] == 1
    kube.scale(cluster, namespace, "api", 4)
    kube.scale(cluster, namespace, "api", 4)
    state, _ = kube.wait_rollout(cluster, namespace, "api", timeout=120)
    live = kube.read_deployment(cluster, namespace, "api")
    assert state is RolloutState.COMPLETE
    assert live["spec"]["replicas"] == 4 and live["status"]["readyReplicas"] == 4
    assert kube.read_deployment(cluster, namespace, "missing") is None


def test_switch_selector_replaces_the_whole_selector(cluster, namespace) -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "api-active", "namespace": namespace},
        "spec": {"selector": {"app": "api", "color": "blue"}, "ports": [{"port": 80}]},
    }
    kube.apply(cluster, svc)
    kube.switch_selector(cluster, namespace, "api-active", {"app": "api", "track": "green"})
    core = client.CoreV1Api(kube.api_for(cluster))
    assert core.read_namespaced_service("api-active", namespace).spec.selector == {
        "app": "api",
        "track": "green",
    }


def test_undo_to_previous_and_named_revision(cluster, namespace) -> None:
    for ch in "abc":
        kube.apply(cluster, deployment(namespace, DIGEST + ch * 64))
        assert kube.wait_rollout(cluster, namespace, "api", timeout=120)[0] is RolloutState.COMPLETE

    assert undo_once(cluster, namespace, "api") == {"from": 3, "to": 2, "image": DIGEST + "b" * 64}
    kube.wait_rollout(cluster, namespace, "api", timeout=120)
    live = kube.read_deployment(cluster, namespace, "api")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == DIGEST + "b" * 64

    with pytest.raises(ConfigError, match="does not exist: choose one of 1, 3, 4"):
        undo_once(cluster, namespace, "api", to_revision=9)
    assert undo_once(cluster, namespace, "api", to_revision=1)["image"] == DIGEST + "a" * 64

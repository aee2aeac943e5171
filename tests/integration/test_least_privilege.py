"""Least privilege.

the pipeline's ServiceAccount, with only deploy/rbac's role, releases and rolls back on the real
apiserver, and is refused everything outside the role (HTTP 403).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect import flow

from blocks import KubernetesCluster
from core.release import layout
from core.release.actions import AnalysisPhase
from core.release.observed import Track
from core.release.spec import ReleaseSpec
from flows.release.executor import ReleaseResult
from flows.release.flow import perform_release
from flows.rollback import rollback
from sandbox.platform import BLOCK_NAME
from tasks import kube
from tasks.health import wait_endpoints_ready
from tests.integration import rbac
from tests.integration.release_helpers import (
    V1,
    V2,
    Scripted,
    deployments,
    record_left,
    selector,
    spec,
)

SA_USER = f"system:serviceaccount:{rbac.SYSTEM_NAMESPACE}:{rbac.ACCOUNT}"
ROLLING = {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}
CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 20},
            {"pause": {"duration": 1}},
            {"analysis": {"templates": [{"templateName": "success-rate"}]}},
            {"setWeight": 60},
            {"pause": {"duration": 1}},
        ]
    }
}
# (group, resource, verb): everything the role grants; a change to the manifest must change this
GRANTED = {
    *(("apps", "deployments", v) for v in ("get", "list", "watch", "create", "patch")),
    ("apps", "deployments/scale", "patch"),
    ("apps", "replicasets", "list"),
    *(("", "services", v) for v in ("get", "create", "patch")),
    *(("", "configmaps", v) for v in ("get", "create", "patch", "delete")),
    ("", "pods", "list"),
    ("", "pods", "watch"),
}
ENVIRONMENT_GRANTED = {
    ("", "namespaces", "patch"),
    *(
        (g, r, v)
        for g, r in (
            ("", "serviceaccounts"),
            ("", "secrets"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("policy", "poddisruptionbudgets"),
            ("networking.k8s.io", "networkpolicies"),
        )
        for v in ("create", "patch")
    ),
}


@flow(name="release-as-service-account")
def release_as(spec: ReleaseSpec, cluster: KubernetesCluster, runner: Scripted) -> ReleaseResult:
    """The real release path, with the ServiceAccount's cluster block instead of a saved one."""
    return perform_release(spec, cluster, runner, None)


def _wait_bound(cluster: KubernetesCluster, namespace: str, timeout: float = 15) -> None:
    """Wait until the apiserver's RBAC cache has seen the new RoleBinding (usually at once)."""
    deadline = time.monotonic() + timeout
    while not rbac.can_i(cluster, "patch", "deployments", namespace, "apps"):
        assert time.monotonic() < deadline, f"RoleBinding in {namespace} not effective"
        time.sleep(0.2)  # bounded by the deadline; the authorizer's cache has no watch for us


@pytest.fixture
def admin(platform) -> KubernetesCluster:
    return KubernetesCluster.load(BLOCK_NAME)


@pytest.fixture
def sa(admin: KubernetesCluster, namespace: str) -> Iterator[KubernetesCluster]:
    """The pipeline's ServiceAccount, bound in `namespace` only, with a 15-minute token."""
    rbac.apply_rbac(admin, [namespace])
    cluster = rbac.cluster_as_service_account(admin, namespace, ttl_seconds=900)
    _wait_bound(cluster, namespace)
    yield cluster
    rbac.unbind(admin, namespace)


@pytest.fixture
def unbound_namespace(kube) -> Iterator[str]:
    """A second namespace where the pipeline has no RoleBinding, deleted afterwards."""
    core = client.CoreV1Api(kube)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _refused(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 403, f"{call.__name__}: HTTP {caught.value.status}"


def test_manifests_grant_only_what_the_pipeline_uses() -> None:
    docs = rbac.load(rbac.MANIFEST)
    assert {d["kind"] for d in docs} == {"Namespace", "ServiceAccount", "ClusterRole"}
    roles = {d["metadata"]["name"]: d["rules"] for d in docs if d["kind"] == "ClusterRole"}
    assert set(roles) == {rbac.ROLE, rbac.ENVIRONMENT_ROLE}

    def granted(rules: list[dict]) -> set[tuple[str, str, str]]:
        assert all("resourceNames" not in r and "nonResourceURLs" not in r for r in rules)
        return {
            (g, r, v)
            for rule in rules
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for v in rule["verbs"]
        }

    assert granted(roles[rbac.ROLE]) == GRANTED
    assert granted(roles[rbac.ENVIRONMENT_ROLE]) == ENVIRONMENT_GRANTED
    bound: dict[str, set[str]] = {}
    for rb in rbac.load(rbac.BINDINGS):  # per namespace only: never a ClusterRoleBinding
        assert rb["kind"] == "RoleBinding"
        assert rb["roleRef"]["kind"] == "ClusterRole"
        bound.setdefault(rb["metadata"]["namespace"], set()).add(rb["roleRef"]["name"])
        assert rb["subjects"] == [
            {"kind": "ServiceAccount", "name": rbac.ACCOUNT, "namespace": rbac.SYSTEM_NAMESPACE}
        ]
    both = {rbac.ROLE, rbac.ENVIRONMENT_ROLE}
    assert bound == {ns: both for ns in ("kyb-dev", "kyb-staging", "kyb-production")}


def test_applied_role_is_the_file_and_the_token_is_the_service_account(admin, sa) -> None:
    live = client.RbacAuthorizationV1Api(kube.api_for(admin)).read_cluster_role(rbac.ROLE)
    shipped = next(d for d in rbac.load(rbac.MANIFEST) if d["kind"] == "ClusterRole")
    assert kube.to_dict(kube.api_for(admin), live)["rules"] == shipped["rules"]
    assert rbac.whoami(sa) == SA_USER


def test_rolling_release_and_rollback_as_the_service_account(admin, sa, namespace) -> None:
    for image in (V1, V2):
        result = release_as(spec(namespace, image, ROLLING), sa, Scripted())
        assert result.ok, result.summary
    assert deployments(admin, namespace) == {"web": (V2, 3, 3)}
    assert selector(admin, namespace, "web") == {"app": "web"}

    block = f"kyb-pipeline-{namespace}"  # the rollback flow loads its cluster block by name
    sa.save(block, overwrite=True)
    try:
        undone = rollback("web", namespace, cluster_block=block)
    finally:
        KubernetesCluster.delete(block)
    assert (undone["from"], undone["to"], undone["image"]) == (2, 1, V1)
    assert deployments(admin, namespace) == {"web": (V1, 3, 3)}


def test_canary_with_analysis_as_the_service_account(admin, sa, namespace) -> None:
    assert release_as(spec(namespace, V1, CANARY, replicas=5), sa, Scripted()).ok
    runner = Scripted()
    release = spec(namespace, V2, CANARY, replicas=5)
    result = release_as(release, sa, runner)
    assert result.ok, result.summary
    assert runner.calls == [("success-rate", AnalysisPhase.STEP)]
    assert deployments(admin, namespace) == {"web": (V2, 5, 5), "web-canary": (V2, 0, 0)}
    assert selector(admin, namespace, "web") == {"app": "web"}
    assert record_left(admin, namespace) is None  # the run record was written, then deleted
    stable = layout.selector(release, Track.STABLE)
    assert wait_endpoints_ready.fn(sa, namespace, stable, 5, 60) == (5, 5)  # pods: list, watch


def test_everything_outside_the_role_is_refused(admin, sa, namespace, unbound_namespace) -> None:
    api = kube.api_for(sa)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    rbac_api = client.RbacAuthorizationV1Api(api)
    client.CoreV1Api(kube.api_for(admin)).create_namespaced_secret(
        namespace, {"metadata": {"name": "db"}, "stringData": {"password": "s3cret"}}
    )
    _refused(core.read_namespaced_secret, "db", namespace)
    _refused(core.list_namespaced_secret, namespace)
    role = {
        "metadata": {"name": "more"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }
    _refused(rbac_api.create_namespaced_role, namespace, role)
    admin_binding = {
        "metadata": {"name": "escalate"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": rbac.ACCOUNT, "namespace": rbac.SYSTEM_NAMESPACE}
        ],
    }
    _refused(rbac_api.create_namespaced_role_binding, namespace, admin_binding)
    _refused(rbac_api.patch_cluster_role, rbac.ROLE, {"rules": role["rules"]})
    _refused(core.delete_namespace, namespace)
    _refused(core.create_namespace, {"metadata": {"name": f"{namespace}-x"}})
    _refused(
        core.create_namespaced_service_account_token,
        rbac.ACCOUNT,
        rbac.SYSTEM_NAMESPACE,
        {"spec": {"audiences": []}},
    )
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": V1}]}}
    _refused(core.create_namespaced_pod, namespace, pod)
    _refused(apps.delete_namespaced_deployment, "web", namespace)  # no delete on Deployments

    theirs = layout.workload_manifest(spec(unbound_namespace, V1, ROLLING), Track.STABLE, V1, 1)
    kube.apply.fn(admin, theirs)  # a Deployment in a namespace the pipeline is not bound in
    _refused(apps.read_namespaced_deployment, "web", unbound_namespace)
    _refused(
        apps.patch_namespaced_deployment_scale, "web", unbound_namespace, {"spec": {"replicas": 0}}
    )
    _refused(kube.apply.fn, sa, theirs)
    assert not rbac.can_i(sa, "get", "secrets", namespace)
    assert rbac.can_i(sa, "patch", "deployments/scale", namespace, "apps")
    assert not rbac.can_i(sa, "patch", "deployments", unbound_namespace, "apps")


def test_delivery_overlay_objects_as_the_service_account(admin, sa, namespace) -> None:
    """The environment role covers what the delivery applies before a release, and no more."""
    labels = {"app": "web"}
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"environment": "test"}},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "web"},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-config"},
            "data": {"LOG_LEVEL": "info"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "web-secrets"},
            "stringData": {"API_KEY": "not-a-real-key"},
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 4,
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "web"},
            "spec": {"podSelector": {"matchLabels": labels}},
        },
    ]
    scoped = sa.model_copy(update={"namespace": namespace})
    done = kube.apply_objects.fn(scoped, objects)
    assert len(done) == len(objects) and done[0] == f"Namespace {namespace}"
    assert kube.apply_objects.fn(scoped, objects) == done  # idempotent: patch of what exists
    live = client.CoreV1Api(kube.api_for(admin)).read_namespace(namespace)
    assert live.metadata.labels["environment"] == "test"
    core = client.CoreV1Api(kube.api_for(sa))
    _refused(core.read_namespaced_secret, "web-secrets", namespace)  # write only
    new_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{namespace}-new"}}
    _refused(kube.apply_objects.fn, scoped, [new_ns])  # creating namespaces is an admin's step

"""Least privilege, on the real apiserver.

Each environment's ServiceAccount, with only deploy/rbac's roles, releases and rolls back in its
own namespace, and is refused everything else (HTTP 403): another environment's namespace
(staging's credentials in production), any write to a Namespace, and any write to a Secret it does
not own by name (so a write's answer never hands another Secret back). It reads Argo Rollouts'
analysis templates (AnalysisTemplates in its namespace, ClusterAnalysisTemplates cluster-wide)
and writes none.
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

from blocks import Environment, KubernetesCluster
from core.release import layout
from core.release.actions import AnalysisPhase
from core.release.observed import Track
from core.release.spec import ReleaseSpec
from flows.release.executor import ReleaseResult
from flows.release.flow import perform_release
from flows.rollback import rollback
from sandbox.platform import BLOCK_NAME
from sandbox.rbac import rendered_namespace
from tasks import kube
from tasks.gates import render_overlay
from tasks.readiness import wait_endpoints_ready
from tests.integration import rbac
from tests.integration.argo import (
    CLUSTER_TEMPLATES,
    GROUP,
    TEMPLATES,
    VERSION,
    analysis_template,
    unique,
)
from tests.integration.release_helpers import (
    V1,
    V2,
    Scripted,
    deployments,
    record_left,
    selector,
    settle,
    spec,
)

OVERLAYS = rbac.MANIFEST.parents[2] / "examples" / "kyb-platform" / "deploy"
ENV = "staging"  # the environment whose ServiceAccount the release tests act as


def user_of(environment: str) -> str:
    """The user name the apiserver sees for an environment's ServiceAccount token."""
    return f"system:serviceaccount:{rbac.SYSTEM_NAMESPACE}:{rbac.account(environment)}"


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
    ("", "services/proxy", "get"),
    *(("", "configmaps", v) for v in ("get", "create", "patch", "delete")),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    *(("gateway.networking.k8s.io", "httproutes", v) for v in ("get", "patch")),
    *((GROUP, TEMPLATES, v) for v in ("get", "list")),
    *(
        ("coordination.k8s.io", "leases", v)
        for v in ("get", "list", "watch", "create", "update", "patch")
    ),
}
ANALYSIS_ROLE = "kyb-pipeline-analysis-templates"  # cluster-scoped templates: a cluster binding
ANALYSIS_GRANTED = {(GROUP, CLUSTER_TEMPLATES, v) for v in ("get", "list")}
ENVIRONMENT_GRANTED = {
    ("", "namespaces", "get"),
    *(
        (g, r, v)
        for g, r in (
            ("", "serviceaccounts"),
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
    return perform_release(spec, cluster, runner)


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
    """Staging's ServiceAccount, bound in `namespace` only (as in kyb-staging), 15-minute token."""
    rbac.bind(admin, ENV, [namespace])
    cluster = rbac.cluster_as_service_account(admin, ENV, namespace, ttl_seconds=900)
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


def _granted(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def _secret_name(environment: str) -> str:
    """The Secret the environment's overlay generates (its name carries a content hash)."""
    objects = render_overlay.fn(OVERLAYS / environment)
    [name] = [o["metadata"]["name"] for o in objects if o["kind"] == "Secret"]
    return name


def test_manifests_grant_only_what_the_pipeline_uses() -> None:
    docs = rbac.load(rbac.MANIFEST)
    kinds = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    assert {d["kind"] for d in docs} == kinds
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    assert accounts == {rbac.account(e) for e in ("dev", "staging", "production")}
    roles = {d["metadata"]["name"]: d["rules"] for d in docs if d["kind"] == "ClusterRole"}
    assert set(roles) == {rbac.ROLE, rbac.ENVIRONMENT_ROLE, ANALYSIS_ROLE}
    for rules in roles.values():
        assert all("resourceNames" not in r and "nonResourceURLs" not in r for r in rules)
    assert _granted(roles[rbac.ROLE]) == GRANTED
    assert _granted(roles[rbac.ENVIRONMENT_ROLE]) == ENVIRONMENT_GRANTED
    assert _granted(roles[ANALYSIS_ROLE]) == ANALYSIS_GRANTED  # read only, one cluster-scoped kind
    # the one cluster-wide binding: the analysis role, to the three accounts, nothing else
    [binding] = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": ANALYSIS_ROLE,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": rbac.account(e), "namespace": rbac.SYSTEM_NAMESPACE}
        for e in ("dev", "staging", "production")
    ]
    everything = _granted([r for rules in roles.values() for r in rules])
    assert not {v for g, r, v in everything if r == "namespaces"} - {"get"}  # never a write
    assert not any(r == "secrets" for _, r, _ in everything)  # Secrets: by name, per environment


@pytest.mark.parametrize("environment", ["dev", "staging", "production"])
def test_each_environment_binds_only_its_own_account_in_its_own_namespace(
    environment: str,
) -> None:
    docs = rbac.load(rbac.environment_file(environment))
    namespace = rendered_namespace(environment)["metadata"]["name"]
    assert {d["metadata"]["namespace"] for d in docs} == {namespace}
    subject = {
        "kind": "ServiceAccount",
        "name": rbac.account(environment),
        "namespace": "kyb-system",
    }
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]  # never a ClusterRoleBinding
    assert {d["kind"] for d in docs} == {"Role", "RoleBinding"}
    assert all(b["subjects"] == [subject] for b in bindings)
    assert {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings} == {
        ("ClusterRole", rbac.ROLE),
        ("ClusterRole", rbac.ENVIRONMENT_ROLE),
        ("Role", rbac.SECRETS_ROLE),
    }
    [role] = [d for d in docs if d["kind"] == "Role"]
    # the overlay's own generated Secret, by name: a change of its secrets.yaml changes the name,
    # and this test then says which name to grant
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [_secret_name(environment)],
            "verbs": ["create", "patch"],
        }
    ]


def test_applied_roles_are_the_files_and_the_token_is_the_service_account(admin, sa) -> None:
    rbac_api = client.RbacAuthorizationV1Api(kube.api_for(admin))
    for shipped in (d for d in rbac.load(rbac.MANIFEST) if d["kind"] == "ClusterRole"):
        live = rbac_api.read_cluster_role(shipped["metadata"]["name"])
        assert kube.to_dict(kube.api_for(admin), live)["rules"] == shipped["rules"]
    for shipped in (d for d in rbac.load(rbac.MANIFEST) if d["kind"] == "ClusterRoleBinding"):
        live = kube.to_dict(
            kube.api_for(admin), rbac_api.read_cluster_role_binding(shipped["metadata"]["name"])
        )
        assert (live["roleRef"], live["subjects"]) == (shipped["roleRef"], shipped["subjects"])
    assert rbac.whoami(sa) == user_of(ENV)


@pytest.mark.parametrize("environment", ["dev", "staging", "production"])
def test_each_saved_environment_acts_as_its_own_service_account(platform, environment) -> None:
    env = Environment.load(environment)  # saved by the platform with its own cluster block
    assert (env.name, env.namespace) == (environment, f"kyb-{environment}")
    assert rbac.whoami(env.cluster) == user_of(environment)
    assert rbac.whoami(KubernetesCluster.load(environment)) == user_of(environment)
    assert rbac.can_i(env.cluster, "patch", "deployments", env.namespace, "apps")


def _config_map(namespace: str) -> dict[str, Any]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
    }


def test_staging_credentials_get_403_in_production(platform, admin) -> None:
    """A develop push runs with staging's block: it writes in kyb-staging, never in production."""
    staging = Environment.load("staging").cluster
    mine = _config_map("kyb-staging")
    kube.apply.fn(staging, mine)  # the control: the same write in its own namespace works
    client.CoreV1Api(kube.api_for(staging)).delete_namespaced_config_map(
        mine["metadata"]["name"], "kyb-staging"
    )
    apps = client.AppsV1Api(kube.api_for(staging))
    _refused(kube.apply.fn, staging, _config_map("kyb-production"))
    _refused(
        kube.apply.fn,
        staging,
        layout.workload_manifest(spec("kyb-production", V1, ROLLING), Track.STABLE, V1, 1),
    )
    scale = {"spec": {"replicas": 0}}
    _refused(apps.patch_namespaced_deployment_scale, "kyb-platform", "kyb-production", scale)
    _refused(apps.read_namespaced_deployment, "kyb-platform", "kyb-production")
    production = Environment.load("production").cluster  # and the other way round
    _refused(kube.apply.fn, production, _config_map("kyb-staging"))
    assert not rbac.can_i(staging, "patch", "deployments", "kyb-production", "apps")


def test_the_role_cannot_patch_a_namespace(admin, sa, namespace) -> None:
    """The Pod Security level the gates read stays the administrator's to change."""
    core = client.CoreV1Api(kube.api_for(sa))
    live = core.read_namespace(namespace)  # reading its own Namespace is allowed
    lowered = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
    _refused(core.patch_namespace, namespace, lowered)
    _refused(core.replace_namespace, namespace, live)
    as_object = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, **lowered["metadata"]},
    }
    _refused(kube.apply_objects.fn, sa.model_copy(update={"namespace": namespace}), [as_object])
    labels = client.CoreV1Api(kube.api_for(admin)).read_namespace(namespace).metadata.labels
    assert "pod-security.kubernetes.io/enforce" not in (labels or {})


def test_a_write_never_reads_another_secret(admin, sa, namespace) -> None:
    """Writes to a Secret the pipeline does not own are refused (403).

    Patch, update and create alike: the answer to an allowed write is the whole Secret, so a
    refused one is the only kind that cannot hand it back.
    """
    client.CoreV1Api(kube.api_for(admin)).create_namespaced_secret(
        namespace, {"metadata": {"name": "db"}, "stringData": {"password": "s3cret-db-pw"}}
    )
    core = client.CoreV1Api(kube.api_for(sa))
    body = {"metadata": {"name": "db", "labels": {"x": "y"}}}
    applied = {"apiVersion": "v1", "kind": "Secret", **body}
    for call, args, kwargs in (
        (core.patch_namespaced_secret, ("db", namespace, body), {}),
        (
            core.patch_namespaced_secret,
            ("db", namespace, applied),
            {"field_manager": "t", "force": True, "_content_type": kube.APPLY},
        ),
        (core.replace_namespaced_secret, ("db", namespace, body), {}),
        (core.create_namespaced_secret, (namespace, body), {}),
        (core.read_namespaced_secret, ("db", namespace), {}),
        (core.list_namespaced_secret, (namespace,), {}),
    ):
        with pytest.raises(ApiException) as caught:
            call(*args, **kwargs)
        assert caught.value.status == 403, f"{call.__name__}: HTTP {caught.value.status}"
        assert "s3cret" not in str(caught.value.body) and "czNjcmV0" not in str(caught.value.body)
    owned = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": _secret_name(ENV)},
        "stringData": {"API_KEY": "not-a-real-key"},
    }
    scoped = sa.model_copy(update={"namespace": namespace})
    assert kube.apply_objects.fn(scoped, [owned]) == kube.apply_objects.fn(scoped, [owned])
    _refused(core.read_namespaced_secret, owned["metadata"]["name"], namespace)  # write only


def test_rolling_release_and_rollback_as_the_service_account(admin, sa, namespace) -> None:
    for image in (V1, V2):
        result = release_as(spec(namespace, image, ROLLING), sa, Scripted())
        assert result.ok, result.summary
    assert deployments(admin, namespace) == {"web": (V2, 3, 3)}
    assert selector(admin, namespace, "web") == {"app": "web"}

    block = f"kyb-pipeline-{namespace}"  # the rollback flow loads its cluster block by name
    sa.save(block, overwrite=True)
    try:
        undone = rollback("web", namespace, cluster=KubernetesCluster.load(block))
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
    want = {"web": (V2, 5, 5), "web-canary": (V2, 0, 0)}
    assert settle(admin, namespace, want) == want  # the scaled-down canary's pods may linger
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
            {
                "kind": "ServiceAccount",
                "name": rbac.account(ENV),
                "namespace": rbac.SYSTEM_NAMESPACE,
            }
        ],
    }
    _refused(rbac_api.create_namespaced_role_binding, namespace, admin_binding)
    _refused(rbac_api.patch_cluster_role, rbac.ROLE, {"rules": role["rules"]})
    _refused(core.delete_namespace, namespace)
    _refused(core.create_namespace, {"metadata": {"name": f"{namespace}-x"}})
    _refused(
        core.create_namespaced_service_account_token,
        rbac.account(ENV),
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
    """The environment role covers what the delivery applies before a release, and no more.

    (The overlay's Namespace is only read: tasks/environment.py compares it; see above.)
    """
    labels = {"app": "web"}
    objects = [
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
            "metadata": {"name": _secret_name(ENV)},  # the overlay's own Secret, by name
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
    assert len(done) == len(objects)
    assert kube.apply_objects.fn(scoped, objects) == done  # idempotent: patch of what exists
    core = client.CoreV1Api(kube.api_for(sa))
    _refused(core.read_namespaced_secret, _secret_name(ENV), namespace)  # write only
    other = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-secrets"}}
    _refused(kube.apply_objects.fn, scoped, [other])  # a Secret it does not own by name
    new_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{namespace}-new"}}
    _refused(kube.apply_objects.fn, scoped, [new_ns])  # creating namespaces is an admin's step


def test_analysis_templates_are_read_in_its_own_namespace_only(
    admin, sa, namespace, unbound_namespace
) -> None:
    """core/analysis reads the templates a release names: get and list, never a write."""
    name = unique("success-rate")
    mine = client.CustomObjectsApi(kube.api_for(admin))
    for ns in (namespace, unbound_namespace):
        mine.create_namespaced_custom_object(GROUP, VERSION, ns, TEMPLATES, analysis_template(name))
    objects = client.CustomObjectsApi(kube.api_for(sa))
    read = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, TEMPLATES, name)
    assert read["spec"] == analysis_template(name)["spec"]
    listed = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, TEMPLATES)
    assert [i["metadata"]["name"] for i in listed["items"]] == [name]
    body = analysis_template(unique("mine"))
    _refused(objects.create_namespaced_custom_object, GROUP, VERSION, namespace, TEMPLATES, body)
    patch = {"metadata": {"labels": {"x": "y"}}}
    _refused(
        objects.patch_namespaced_custom_object, GROUP, VERSION, namespace, TEMPLATES, name, patch
    )
    _refused(objects.delete_namespaced_custom_object, GROUP, VERSION, namespace, TEMPLATES, name)
    # a namespace it is not bound in: nothing, not even a read
    _refused(
        objects.get_namespaced_custom_object, GROUP, VERSION, unbound_namespace, TEMPLATES, name
    )
    _refused(objects.list_namespaced_custom_object, GROUP, VERSION, unbound_namespace, TEMPLATES)
    _refused(objects.list_cluster_custom_object, GROUP, VERSION, TEMPLATES)  # all namespaces
    assert mine.get_namespaced_custom_object(GROUP, VERSION, namespace, TEMPLATES, name)


@pytest.fixture
def cluster_template(admin) -> Iterator[str]:
    """A ClusterAnalysisTemplate made by the administrator, deleted afterwards."""
    objects = client.CustomObjectsApi(kube.api_for(admin))
    name = unique("cluster-success-rate")
    body = analysis_template(name, cluster_scope=True)
    objects.create_cluster_custom_object(GROUP, VERSION, CLUSTER_TEMPLATES, body)
    yield name
    objects.delete_cluster_custom_object(GROUP, VERSION, CLUSTER_TEMPLATES, name)


@pytest.mark.parametrize("environment", ["dev", "staging", "production"])
def test_cluster_analysis_templates_are_read_only(
    platform, admin, cluster_template, environment
) -> None:
    """Every saved environment's ServiceAccount reads them (the ClusterRoleBinding) and no more."""
    sa = Environment.load(environment).cluster  # `sandbox up` applied the binding
    objects = client.CustomObjectsApi(kube.api_for(sa))
    read = objects.get_cluster_custom_object(GROUP, VERSION, CLUSTER_TEMPLATES, cluster_template)
    assert read["spec"] == analysis_template(cluster_template, cluster_scope=True)["spec"]
    listed = objects.list_cluster_custom_object(GROUP, VERSION, CLUSTER_TEMPLATES)
    assert cluster_template in {i["metadata"]["name"] for i in listed["items"]}
    body = analysis_template(unique("mine"), cluster_scope=True)
    _refused(objects.create_cluster_custom_object, GROUP, VERSION, CLUSTER_TEMPLATES, body)
    patch = {"metadata": {"labels": {"x": "y"}}}
    _refused(
        objects.patch_cluster_custom_object,
        GROUP,
        VERSION,
        CLUSTER_TEMPLATES,
        cluster_template,
        patch,
    )
    _refused(
        objects.delete_cluster_custom_object, GROUP, VERSION, CLUSTER_TEMPLATES, cluster_template
    )
    for verb in ("watch", "deletecollection"):
        assert not rbac.can_i(sa, verb, CLUSTER_TEMPLATES, group=GROUP)
    # the cluster binding reaches nothing namespaced: production's templates stay production's
    other = "kyb-staging" if environment == "production" else "kyb-production"
    assert not rbac.can_i(sa, "get", TEMPLATES, other, GROUP)
    assert rbac.can_i(sa, "list", TEMPLATES, f"kyb-{environment}", GROUP)

"""Planning a Velero restore: what it creates, skips, leaves differing or updates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import ConfigError
from core.recovery.contents import BackedUpObject, read_backup_tarball
from core.recovery.restore_plan import (
    RestoreAction,
    RestorePlan,
    diff_paths,
    made_by_kubernetes,
    normalize,
    object_key,
    plan_restore,
)
from tests.unit.test_backup_contents import velero_tarball

PROD, SCRATCH = "kyb-production", "drill-7-kyb-production"
MAPPING = {PROD: SCRATCH}


def server_meta(name: str, namespace: str | None, uid: str, **extra: Any) -> dict[str, Any]:
    """Metadata as the API server returns it: identity, versions, times, managed fields."""
    meta: dict[str, Any] = {
        "name": name,
        "uid": uid,
        "resourceVersion": "120034",
        "creationTimestamp": "2026-11-20T09:00:00Z",
        "managedFields": [
            {
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "time": "2026-11-20T09:00:00Z",
                "fieldsV1": {"f:metadata": {}},
            }
        ],
        **extra,
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def deployment(
    ns: str = PROD,
    uid: str = "d-1",
    replicas: int = 2,
    image: str = "kyb-api:1.4.2",
    revision: str = "3",
    **status: Any,
) -> dict[str, Any]:
    labels = {"app": "kyb-api"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": server_meta(
            "kyb-api",
            ns,
            uid,
            generation=3,
            labels=labels,
            annotations={
                "deployment.kubernetes.io/revision": revision,
                "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Deployment"}',
            },
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"creationTimestamp": None, "labels": labels},
                "spec": {
                    "containers": [
                        {"name": "api", "image": image, "ports": [{"containerPort": 8080}]}
                    ]
                },
            },
        },
        "status": {
            "replicas": replicas,
            "availableReplicas": replicas,
            "observedGeneration": 3,
            **status,
        },
    }


def service(
    ns: str = PROD, uid: str = "s-1", cluster_ip: str = "10.96.14.2", node_port: int = 30080
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": server_meta("kyb-api", ns, uid, labels={"app": "kyb-api"}),
        "spec": {
            "type": "NodePort",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv4"],
            "ports": [
                {
                    "name": "http",
                    "port": 80,
                    "targetPort": 8080,
                    "protocol": "TCP",
                    "nodePort": node_port,
                }
            ],
            "selector": {"app": "kyb-api"},
        },
        "status": {"loadBalancer": {}},
    }


def config(ns: str = PROD, uid: str = "c-1", level: str = "info") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": server_meta("kyb-api-config", ns, uid),
        "data": {"LOG_LEVEL": level, "config.json": '{"a": 1}'},
    }


def secret(ns: str = PROD, uid: str = "x-1", key: str = "c2VjcmV0LXZhbHVl") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": server_meta("kyb-api-secrets", ns, uid),
        "data": {"API_KEY": key},
    }


def namespace(name: str = PROD, uid: str = "n-1", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": server_meta(
            name, None, uid, labels={"kubernetes.io/metadata.name": name, **labels}
        ),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def root_ca(ns: str = PROD) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": server_meta("kube-root-ca.crt", ns, "r-1"),
        "data": {"ca.crt": "-----BEGIN CERTIFICATE-----..."},
    }


def service_account(ns: str = PROD, uid: str = "a-1", pull: tuple[str, ...] = ()) -> dict:
    body = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": server_meta("kyb-api", ns, uid),
    }
    if pull:
        body["imagePullSecrets"] = [{"name": p} for p in pull]
    return body


def restored(body: dict[str, Any], ns: str = SCRATCH, uid: str = "new") -> dict[str, Any]:
    """The live copy a Velero restore makes.

    new identity and times, mapped namespace, restore labels, server-set fields reset (a
    Deployment's revision, a Service's IPs and ports).
    """
    live = json.loads(json.dumps(body))
    meta = live["metadata"]
    meta.update(
        uid=uid,
        resourceVersion="9",
        creationTimestamp="2026-11-26T14:00:05Z",
        managedFields=[{"manager": "velero-server", "operation": "Update"}],
    )
    if live["kind"] == "Deployment":
        meta["annotations"] = {
            "deployment.kubernetes.io/revision": "1",
            "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Deployment"}',
        }
        meta["generation"] = 1
    if live["kind"] == "Namespace":
        meta["name"] = ns
        meta["labels"]["kubernetes.io/metadata.name"] = ns
    elif "namespace" in meta:
        meta["namespace"] = ns
    meta.setdefault("labels", {}).update(
        {
            "velero.io/backup-name": "kyb-platform-backup-20261126020000",
            "velero.io/restore-name": "drill-7",
        }
    )
    if live["kind"] == "Service":
        live["spec"].update(clusterIP="10.96.200.7", clusterIPs=["10.96.200.7"])
        live["spec"]["ports"][0]["nodePort"] = 31999
    return live


def backed_up(*bodies: dict[str, Any]) -> list[BackedUpObject]:
    """The bodies as read from a real backup tarball."""
    return read_backup_tarball(velero_tarball(list(bodies)))


def keyed(*pairs: tuple[BackedUpObject, dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """Live objects keyed as the restore lands them."""
    found = {}
    for obj, live in pairs:
        ns = live["metadata"].get("namespace")
        found[object_key(obj.group, obj.resource, ns, live["metadata"]["name"])] = live
    return found


BODIES = [namespace(), deployment(), service(), config(), secret(), root_ca()]


def test_into_an_empty_cluster_everything_is_created_in_the_mapped_namespace() -> None:
    plan = plan_restore(backed_up(*BODIES), {}, MAPPING)
    assert [(e.action, e.kind, e.namespace, e.name) for e in plan.entries] == [
        (RestoreAction.KUBERNETES, "ConfigMap", SCRATCH, "kube-root-ca.crt"),
        (RestoreAction.CREATE, "ConfigMap", SCRATCH, "kyb-api-config"),
        (RestoreAction.CREATE, "Namespace", None, SCRATCH),
        (RestoreAction.CREATE, "Secret", SCRATCH, "kyb-api-secrets"),
        (RestoreAction.CREATE, "Service", SCRATCH, "kyb-api"),
        (RestoreAction.CREATE, "Deployment", SCRATCH, "kyb-api"),
    ]
    assert plan.entries[1].source == "kyb-production/kyb-api-config"
    assert plan.entries[2].source == PROD
    assert plan.entries[2].key == ("", "namespaces", None, SCRATCH)
    assert plan.summary() == "5 to create, 1 made by Kubernetes (not compared)"


def test_a_faithful_restore_of_everything_is_all_skipped() -> None:
    objects = backed_up(*BODIES)
    live = keyed(*[(o, restored(o.body)) for o in objects])
    plan = plan_restore(objects, live, MAPPING)
    assert plan.counts == {
        "create": 0,
        "skip": 5,
        "keep-differs": 0,
        "update": 0,
        "merge": 0,
        "left-to-kubernetes": 1,
    }
    assert (
        plan.summary() == "0 to create, 5 already exist (skipped), "
        "1 made by Kubernetes (not compared)"
    )
    assert all(e.fields == () for e in plan.entries)


def test_the_seed_example_summary() -> None:
    objects = backed_up(namespace(), deployment(), service(), config(), secret())
    live = keyed(*[(o, restored(o.body)) for o in objects if o.kind in ("Service", "Secret")])
    dep = next(o for o in objects if o.kind == "Deployment")
    live |= keyed((dep, restored(deployment(replicas=5))))
    plan = plan_restore(objects, live, MAPPING)
    assert plan.summary() == "2 to create, 2 already exist (skipped), 1 differs (kept as is)"
    (differs,) = plan.of(RestoreAction.KEEP_DIFFERS)
    assert (differs.kind, differs.fields) == ("Deployment", ("spec.replicas",))


def test_with_the_update_policy_a_different_object_is_updated() -> None:
    objects = backed_up(deployment())
    live = keyed((objects[0], restored(deployment(image="kyb-api:1.5.0"))))
    plan = plan_restore(objects, live, MAPPING, existing_policy="update")
    (entry,) = plan.entries
    assert entry.action is RestoreAction.UPDATE
    assert entry.fields == ("spec.template.spec.containers[0].image",)
    assert plan.summary() == "0 to create, 1 differs (updated)"


def test_a_differing_secret_names_the_key_never_the_value() -> None:
    objects = backed_up(secret())
    live = keyed((objects[0], restored(secret(key="b3RoZXItdmFsdWU="))))
    plan = plan_restore(objects, live, MAPPING)
    (entry,) = plan.entries
    assert entry.action is RestoreAction.KEEP_DIFFERS and entry.fields == ("data.API_KEY",)
    shown = "\n".join(plan.rows()) + plan.summary() + repr(plan)
    assert "c2VjcmV0LXZhbHVl" not in shown and "b3RoZXItdmFsdWU=" not in shown


def test_an_existing_namespace_is_never_updated_even_with_the_update_policy() -> None:
    objects = backed_up(namespace(team="kyb"))
    live = keyed((objects[0], restored(namespace(team="other"))))
    (entry,) = plan_restore(objects, live, MAPPING, existing_policy="update").entries
    assert entry.action is RestoreAction.KEEP_DIFFERS
    assert entry.fields == ("metadata.labels.team",)


def test_a_namespace_restored_under_its_own_name_is_matched() -> None:
    objects = backed_up(namespace(), config())
    live = keyed(*[(o, restored(o.body, ns=PROD)) for o in objects])
    plan = plan_restore(objects, live)
    assert [e.action for e in plan.entries] == [RestoreAction.SKIP, RestoreAction.SKIP]
    assert all(e.source == "" for e in plan.entries)


def test_a_differing_service_account_is_merged() -> None:
    objects = backed_up(service_account(pull=("registry",)))
    live = keyed((objects[0], restored(service_account())))
    (entry,) = plan_restore(objects, live, MAPPING).entries
    assert entry.action is RestoreAction.MERGE and entry.fields == ("imagePullSecrets",)


def test_objects_kubernetes_makes_are_not_compared() -> None:
    token = {**secret(), "type": "kubernetes.io/service-account-token"}
    default_sa = {**service_account(), "metadata": server_meta("default", PROD, "a-0")}
    objects = backed_up(root_ca(), token, default_sa)
    assert all(made_by_kubernetes(o.group, o.resource, o.body) for o in objects)
    plan = plan_restore(objects, keyed((objects[0], restored(root_ca()))), MAPPING)
    assert {e.action for e in plan.entries} == {RestoreAction.KUBERNETES}
    assert not made_by_kubernetes("", "configmaps", config())
    assert not made_by_kubernetes("apps", "configmaps", root_ca())


def test_resource_filters_follow_velero_names_and_excluded_wins() -> None:
    objects = backed_up(namespace(), deployment(), service(), config(), secret())
    kinds = lambda plan: sorted(e.kind for e in plan.entries)  # noqa: E731
    assert kinds(
        plan_restore(objects, {}, included_resources=["deployments.apps", "configmaps"])
    ) == ["ConfigMap", "Deployment"]
    assert kinds(plan_restore(objects, {}, included_resources=["deployment", "Secret"])) == [
        "Deployment",
        "Secret",
    ]
    assert kinds(
        plan_restore(
            objects, {}, included_resources=["*"], excluded_resources=["secrets", "services"]
        )
    ) == ["ConfigMap", "Deployment", "Namespace"]


def test_a_namespace_filter_keeps_those_namespaces_and_drops_other_cluster_objects() -> None:
    staging = [namespace("kyb-staging", "n-2"), config("kyb-staging", "c-2")]
    cluster_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": server_meta("kyb-reader", None, "cr-1"),
        "rules": [],
    }
    objects = backed_up(namespace(), config(), *staging)
    objects.append(
        BackedUpObject(
            "rbac.authorization.k8s.io", "clusterroles", None, "kyb-reader", cluster_role
        )
    )
    plan = plan_restore(objects, {}, MAPPING, included_namespaces=[PROD])
    assert sorted((e.kind, e.namespace, e.name) for e in plan.entries) == [
        ("ConfigMap", SCRATCH, "kyb-api-config"),
        ("Namespace", None, SCRATCH),
    ]
    everything = plan_restore(objects, {}, MAPPING)
    assert len(everything.entries) == 5


def test_velero_never_restores_events_or_its_own_objects() -> None:
    event = {"apiVersion": "v1", "kind": "Event", "metadata": server_meta("e.1", PROD, "e-1")}
    velero_backup = {
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": server_meta("old", "velero", "b-1"),
    }
    objects = [
        BackedUpObject("", "events", PROD, "e.1", event),
        BackedUpObject("velero.io", "backups", "velero", "old", velero_backup),
        *backed_up(config()),
    ]
    plan = plan_restore(objects, {}, MAPPING)
    assert [e.kind for e in plan.entries] == ["ConfigMap"]


def test_bad_policies_and_mappings_are_refused() -> None:
    objects = backed_up(config())
    with pytest.raises(ConfigError, match="use none or update"):
        plan_restore(objects, {}, MAPPING, existing_policy="overwrite")
    with pytest.raises(ConfigError, match="not valid namespace names"):
        plan_restore(objects, {}, {PROD: "Drill_Prod"})
    with pytest.raises(ConfigError, match="sends several namespaces to \\['drill'\\]"):
        plan_restore(objects, {}, {PROD: "drill", "kyb-staging": "drill"})


def test_rows_are_a_markdown_table_with_at_most_five_fields_named() -> None:
    wide = config()
    wide["data"] = {f"K{i}": "a" for i in range(8)}
    objects = backed_up(wide, secret())
    live_wide = restored(config())
    live_wide["data"] = {f"K{i}": "b" for i in range(8)}
    plan = plan_restore(objects, keyed((objects[0], live_wide)), MAPPING)
    rows = plan.rows()
    assert rows[:2] == [
        "| action | kind | namespace | name | differs in |",
        "|---|---|---|---|---|",
    ]
    assert rows[2] == (
        f"| keep-differs | ConfigMap | {SCRATCH} | kyb-api-config (from "
        "kyb-production/kyb-api-config) | `data.K0`, `data.K1`, `data.K2`, "
        "`data.K3`, `data.K4` and 3 more |"
    )
    assert rows[3] == (
        f"| create | Secret | {SCRATCH} | kyb-api-secrets (from "
        "kyb-production/kyb-api-secrets) | - |"
    )


def test_an_empty_plan_says_so() -> None:
    plan = RestorePlan(())
    assert plan.summary() == "nothing to restore"
    assert len(plan.rows()) == 2


# --- normalize and diff_paths ---


def test_normalize_drops_server_and_restore_fields_and_leaves_the_input_alone() -> None:
    body = deployment()
    before = json.dumps(body, sort_keys=True)
    clean = normalize(body, MAPPING)
    assert json.dumps(body, sort_keys=True) == before
    assert clean["metadata"] == {
        "name": "kyb-api",
        "namespace": SCRATCH,
        "labels": {"app": "kyb-api"},
    }
    assert "status" not in clean
    assert "creationTimestamp" not in clean["spec"]["template"]["metadata"]  # None is dropped
    assert clean["spec"]["replicas"] == 2


def test_normalize_drops_owner_references_and_deletion_fields() -> None:
    body = config()
    body["metadata"].update(
        ownerReferences=[{"kind": "Deployment", "name": "x", "uid": "u"}],
        deletionTimestamp="2026-11-26T00:00:00Z",
        selfLink="/api/v1/x",
        deletionGracePeriodSeconds=30,
        generateName="kyb-",
    )
    assert set(normalize(body)["metadata"]) == {"name", "namespace"}


def test_normalize_keeps_a_headless_service_cluster_ip_and_drops_assigned_ones() -> None:
    headless = service(cluster_ip="None")
    assert normalize(headless)["spec"]["clusterIP"] == "None"
    assigned = normalize(service())
    assert "clusterIP" not in assigned["spec"] and "clusterIPs" not in assigned["spec"]
    assert "nodePort" not in assigned["spec"]["ports"][0]


def test_normalize_maps_role_binding_subjects_and_namespace_names() -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": server_meta("reader", PROD, "rb-1"),
        "subjects": [{"kind": "ServiceAccount", "name": "kyb-api", "namespace": PROD}],
        "roleRef": {"kind": "Role", "name": "reader"},
    }
    clean = normalize(binding, MAPPING)
    assert clean["subjects"][0]["namespace"] == SCRATCH
    assert clean["metadata"]["namespace"] == SCRATCH
    ns = normalize(namespace(), MAPPING)
    assert ns["metadata"] == {"name": SCRATCH}


def test_normalize_drops_claim_binding_details() -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": server_meta(
            "data",
            PROD,
            "p-1",
            annotations={
                "pv.kubernetes.io/bind-completed": "yes",
                "volume.kubernetes.io/selected-node": "kind-worker",
            },
        ),
        "spec": {"volumeName": "pvc-1234", "resources": {"requests": {"storage": "1Gi"}}},
    }
    clean = normalize(claim)
    assert "annotations" not in clean["metadata"]
    assert clean["spec"] == {"resources": {"requests": {"storage": "1Gi"}}}


def test_diff_paths_names_paths_only() -> None:
    a = {"data": {"config.json": "x", "PLAIN": "1"}, "spec": {"ports": [1, 2], "list": [{"a": 1}]}}
    b = {
        "data": {"config.json": "y", "NEW": "2"},
        "spec": {"ports": [1], "list": [{"a": 2}]},
        "kind": "ConfigMap",
    }
    assert diff_paths(a, b) == [
        "data.NEW",
        "data.PLAIN",
        "data[config.json]",
        "kind",
        "spec.list[0].a",
        "spec.ports",
    ]
    assert diff_paths({"a": 1}, {"a": 1.0}) == []
    assert diff_paths({"a": {"b": 1}}, {"a": "text"}) == ["a"]
    assert diff_paths(1, 2) == ["(the whole object)"]


def test_a_restore_refused_only_for_an_unavailable_location_is_asked_again() -> None:
    from tasks.restore import refused_for_storage

    def restore(phase: str, *errors: str) -> dict:
        return {"status": {"phase": phase, "validationErrors": list(errors)}}

    unavailable = "The BSL default is unavailable, cannot retrieve the backup (backup=b-1)"
    assert refused_for_storage(restore("FailedValidation", unavailable))
    assert not refused_for_storage(restore("FailedValidation", unavailable, "no such namespace"))
    assert not refused_for_storage(restore("FailedValidation", "backup b-1 not found"))
    assert not refused_for_storage(restore("Failed", unavailable))
    assert not refused_for_storage(restore("FailedValidation"))

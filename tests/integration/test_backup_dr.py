"""Backups and disaster recovery with the real Velero servers, the S3 store and two clusters.

back up, delete, restore and compare; drills that pass and one that must fail; DR into the second
cluster with the typed DNS pause; bad input that restores nothing.
"""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kubernetes import client
from prefect.artifacts import Artifact

from blocks import KubernetesCluster, ObjectStore, VeleroInstall
from core.errors import ConfigError
from core.recovery.backups import backup_manifest, backup_name
from core.recovery.restore_plan import normalize
from flows.backup import backup, free_name
from flows.disaster_recovery import disaster_recovery
from flows.dr_drill import dr_drill
from sandbox.platform import Platform
from tasks import velero
from tasks.kube import api_for
from tests.integration.progress_helpers import assert_progressed, final_progress, tables
from tests.integration.release_helpers import resume_when_paused

IMAGE = "127.0.0.1:5001/kyb-platform@sha256:" + "7" * 64


def _objects(ns: str) -> list[dict]:
    labels = {"app": "web"}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-config"},
            "data": {"LOG_LEVEL": "info", "REGION": "eu"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "web-secrets"},
            "type": "Opaque",
            "stringData": {"API_KEY": "not-a-real-key"},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": IMAGE}]},
                },
            },
        },
    ]


def _create(cluster: KubernetesCluster, ns: str) -> None:
    api = api_for(cluster)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": ns}})
    writers = {
        "ConfigMap": core.create_namespaced_config_map,
        "Secret": core.create_namespaced_secret,
        "Service": core.create_namespaced_service,
        "Deployment": apps.create_namespaced_deployment,
    }
    for obj in _objects(ns):
        writers[obj["kind"]](ns, obj)


def _snapshot(cluster: KubernetesCluster, ns: str) -> dict[str, dict]:
    """kind/name -> normalized object, for the four kinds a restore must bring back."""
    api = api_for(cluster)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    lists = {
        ("deployments", "apps/v1", "Deployment"): apps.list_namespaced_deployment(ns).items,
        ("services", "v1", "Service"): core.list_namespaced_service(ns).items,
        ("configmaps", "v1", "ConfigMap"): core.list_namespaced_config_map(ns).items,
        ("secrets", "v1", "Secret"): core.list_namespaced_secret(ns).items,
    }
    out = {}
    for (plural, version, kind), items in lists.items():
        for item in items:
            if item.metadata.name == "kube-root-ca.crt":
                continue
            body = {**api.sanitize_for_serialization(item), "apiVersion": version, "kind": kind}
            out[f"{plural}/{item.metadata.name}"] = normalize(body)
    return out


def _delete_ns(cluster: KubernetesCluster, ns: str) -> None:
    core = client.CoreV1Api(api_for(cluster))
    try:
        core.delete_namespace(ns)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if ns not in {n.metadata.name for n in core.list_namespace().items}:
            return
        time.sleep(0.5)  # bounded: namespace deletion takes seconds here
    raise AssertionError(f"namespace {ns} still there after 120s")


def _ready(cluster: KubernetesCluster, ns: str, name: str = "web") -> tuple[str, int]:
    dep = client.AppsV1Api(api_for(cluster)).read_namespaced_deployment(name, ns)
    return dep.spec.template.spec.containers[0].image, dep.status.available_replicas or 0


@pytest.fixture
def local(platform: Platform) -> VeleroInstall:
    return VeleroInstall.load("local")


@pytest.fixture
def dr(platform: Platform) -> VeleroInstall:
    return VeleroInstall.load("dr")


@pytest.fixture
def app_ns(local: VeleroInstall, dr: VeleroInstall) -> Iterator[str]:
    ns = f"bk-{uuid.uuid4().hex[:8]}"
    _create(local.cluster, ns)
    yield ns
    _delete_ns(local.cluster, ns)
    _delete_ns(dr.cluster, ns)


def _mode(install: VeleroInstall) -> str:
    bsl = velero.get(install, "backupstoragelocations", install.storage_location) or {}
    return bsl.get("spec", {}).get("accessMode") or "ReadWrite"


def test_backup_delete_restore_brings_back_the_same_objects(local, app_ns) -> None:
    before = _snapshot(local.cluster, app_ns)
    assert {
        "deployments/web",
        "services/web",
        "configmaps/web-config",
        "secrets/web-secrets",
    } <= set(before)
    state = backup(
        namespaces=[app_ns],
        velero_install=VeleroInstall.load("local"),
        verify_contents=True,
        return_state=True,
    )
    done = state.result()
    assert done["phase"] == "Completed" and done["items"] >= 5, done
    stages = ["check namespaces", "create backup", "back up items", "check stored contents"]
    versions = assert_progressed("backup", state.state_details.flow_run_id, stages)
    items = next(r for r in versions[-1] if r["step"] == "back up items")
    assert items["detail"] == f"Completed: {done['items']} of {done['items']} items backed up"
    report = Artifact.get("backup-report")
    assert (
        report is not None
        and done["name"] in report.data
        and "size in the object store" in report.data
    )

    _delete_ns(local.cluster, app_ns)
    state = disaster_recovery(
        backup=done["name"],
        velero_install=VeleroInstall.load("local"),
        confirm_dns_as="tests",
        dns_service=f"{app_ns}/web",
        timeout_seconds=300,
        return_state=True,
    )
    out = state.result()
    stages = ["restore items", "deployments available", "check objects", "DNS switch", "report"]
    versions = assert_progressed("dr", state.state_details.flow_run_id, stages)
    rows = {r["step"]: r for r in versions[-1]}
    assert "restored" in rows["restore items"]["detail"], rows
    assert rows["deployments available"]["detail"].startswith("1 of 1 Deployments available")
    assert "confirmed by tests" in rows["DNS switch"]["detail"]
    assert out["backup"] == done["name"] and out["namespaces"] == [app_ns]
    assert out["rto_seconds"] > 0 and out["rpo_seconds"] >= 0
    after = _snapshot(local.cluster, app_ns)
    assert after == before  # every object back, as it was (secret data included)
    assert _ready(local.cluster, app_ns) == (IMAGE, 3)
    assert _mode(local) == "ReadWrite"  # the read-only switch was undone
    plan = Artifact.get("dr-restore-plan")
    assert plan is not None and "to create" in plan.data


def test_drill_passes_on_a_good_backup_and_cleans_up(local, dr, app_ns) -> None:
    done = backup(namespaces=[app_ns], velero_install=VeleroInstall.load("local"))
    name = done["name"]
    assert done["bytes"] is None  # by default the tarball is not downloaded: the drill proves it
    report = Artifact.get("backup-report")
    assert report is not None and name in report.data and "not read back" in report.data
    state = dr_drill(
        backup=name, velero_install=VeleroInstall.load("dr"), timeout_seconds=300, return_state=True
    )
    out = state.result()
    assert out["passed"] and out["backup"] == name
    stages = ["restore items", "deployments available", "check objects", "cleanup", "report"]
    versions = assert_progressed("dr-drill", state.state_details.flow_run_id, stages)
    assert {r["state"] for r in versions[-1]} == {"done"}
    assert out["rto_seconds"] > 0
    scratch = out["mapping"][app_ns]
    assert scratch != app_ns
    left = {n.metadata.name for n in client.CoreV1Api(api_for(dr.cluster)).list_namespace().items}
    assert scratch not in left
    report = Artifact.get("dr-drill-report")
    assert report is not None and "PASSED" in report.data


def _tamper(name: str, drop: str) -> None:
    """Rewrite the stored tarball without the objects whose path contains `drop` (a lost file)."""
    store = ObjectStore.load("local")
    url = f"{store.endpoint.rstrip('/')}/{store.bucket}/backups/{name}/{name}.tar.gz"
    data = httpx.get(url, timeout=30).raise_for_status().content
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        for member in src.getmembers():
            if drop not in member.name:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    httpx.put(url, content=out.getvalue(), timeout=30).raise_for_status()


def test_drill_fails_on_a_backup_that_lost_an_object(local, dr, app_ns) -> None:
    name = backup(namespaces=[app_ns], velero_install=VeleroInstall.load("local"))["name"]
    velero.wait_for(dr, "backups", name, velero.phase_in("Completed"), 90, "sync")
    _tamper(name, "configmaps/namespaces/")
    state = dr_drill(
        backup=name, velero_install=VeleroInstall.load("dr"), timeout_seconds=300, return_state=True
    )
    assert state.is_failed()
    assert "ConfigMap" in state.message and "web-config" in state.message, state.message
    report = Artifact.get("dr-drill-report")
    assert report is not None and "FAILED" in report.data and "web-config" in report.data


def test_dr_into_the_second_cluster_waits_for_the_dns_step(local, dr, app_ns) -> None:
    name = backup(namespaces=[app_ns], velero_install=VeleroInstall.load("local"))["name"]
    velero.wait_for(dr, "backups", name, velero.phase_in("Completed"), 90, "sync")
    answer = {"dns_updated": True, "confirmed_by": "alice", "note": "ttl 60"}
    resumer = resume_when_paused([answer], flow_name="disaster-recovery")
    out = disaster_recovery(
        backup="latest",
        namespaces=[app_ns],
        velero_install=VeleroInstall.load("dr"),
        dns_service=f"{app_ns}/web",
        timeout_seconds=300,
    )
    resumer.join(5)
    assert out["backup"] == name and out["dns_confirmed_by"] == "alice"
    assert _ready(dr.cluster, app_ns) == (IMAGE, 3)  # serving in the DR cluster
    assert _snapshot(dr.cluster, app_ns) == _snapshot(local.cluster, app_ns)
    assert _mode(dr) == "ReadWrite"
    report = Artifact.get("dr-report")
    assert report is not None and "alice" in report.data and "RTO" in report.data


def _restores(install: VeleroInstall) -> set[str]:
    return {o["metadata"]["name"] for o in velero.list_objects(install, "restores")}


def test_bad_input_restores_nothing(local, dr, app_ns) -> None:
    name = backup(namespaces=[app_ns], velero_install=VeleroInstall.load("local"))["name"]
    velero.wait_for(dr, "backups", name, velero.phase_in("Completed"), 90, "sync")
    before = _restores(dr)
    with pytest.raises(ConfigError, match="no-such-backup"):
        disaster_recovery(
            backup="no-such-backup", velero_install=VeleroInstall.load("dr"), confirm_dns_as="t"
        )
    with pytest.raises(ConfigError, match="does not hold namespace"):
        disaster_recovery(
            backup=name,
            namespaces=["not-there"],
            velero_install=VeleroInstall.load("dr"),
            confirm_dns_as="t",
        )
    with pytest.raises(ConfigError, match="do not exist"):
        backup(namespaces=["no-such-namespace"], velero_install=VeleroInstall.load("local"))
    assert _restores(dr) == before
    assert app_ns not in {
        n.metadata.name for n in client.CoreV1Api(api_for(dr.cluster)).list_namespace().items
    }
    assert _mode(dr) == "ReadWrite"


def test_unavailable_storage_location_is_a_clear_error(platform, local) -> None:
    bsl = velero.get(local, "backupstoragelocations", local.storage_location)
    config = {**bsl["spec"]["config"], "s3Url": "http://127.0.0.1:9"}  # nothing listens there
    broken = {
        "apiVersion": "velero.io/v1",
        "kind": "BackupStorageLocation",
        "metadata": {"name": "broken"},
        "spec": {**bsl["spec"], "default": False, "config": config},
    }
    velero.create(local, "backupstoragelocations", broken)
    try:
        # a new block (a model_copy of the loaded one would keep its document id and so
        # overwrite the saved `local` block under the new name)
        install = VeleroInstall(
            cluster=local.cluster, namespace=local.namespace, storage_location="broken"
        )
        install.save("broken-store", overwrite=True)
        state = backup(
            namespaces=["default"],
            velero_install=VeleroInstall.load("broken-store"),
            return_state=True,
        )
        assert state.is_failed()
        assert "broken" in state.message and "Unavailable" in state.message, state.message
        used = [o["spec"].get("storageLocation") for o in velero.list_objects(local, "backups")]
        assert "broken" not in used  # no Backup object was created
    finally:
        velero.delete(local, "backupstoragelocations", "broken")
        VeleroInstall.delete("broken-store")
    assert VeleroInstall.load("local").storage_location == "default"  # the saved block untouched


def test_a_restore_that_does_not_become_available_is_rolled_back(local, dr, app_ns) -> None:
    """The restored app never turns Ready: the DR run fails, no half-restored namespace is left."""
    apps = client.AppsV1Api(api_for(local.cluster))
    broken = {
        "spec": {
            "progressDeadlineSeconds": 5,
            "template": {
                "metadata": {"labels": {"app": "web", "sandbox.kyb.dev/not-ready": "true"}}
            },
        }
    }
    apps.patch_namespaced_deployment("web", app_ns, broken)
    name = backup(namespaces=[app_ns], velero_install=VeleroInstall.load("local"))["name"]
    velero.wait_for(dr, "backups", name, velero.phase_in("Completed"), 90, "sync")
    state = disaster_recovery(
        backup=name,
        velero_install=VeleroInstall.load("dr"),
        confirm_dns_as="t",
        dns_service=f"{app_ns}/web",
        timeout_seconds=120,
        return_state=True,
    )
    assert state.is_failed()
    assert f"{app_ns}/web" in state.message and "progress" in state.message, state.message
    core = client.CoreV1Api(api_for(dr.cluster))
    deadline = time.monotonic() + 60
    while app_ns in {n.metadata.name for n in core.list_namespace().items}:
        assert time.monotonic() < deadline, "the rolled-back namespace is still there"
        time.sleep(0.5)  # bounded: until the deletion the rollback started is done
    assert _mode(dr) == "ReadWrite"


def test_a_backup_velero_refuses_fails_loudly_with_its_reason(local, app_ns) -> None:
    """A read-only storage location: Velero fails the Backup validation; the run says why."""
    previous = velero.set_access_mode.fn(local, "ReadOnly")
    try:
        state = backup(
            namespaces=[app_ns], velero_install=VeleroInstall.load("local"), return_state=True
        )
    finally:
        velero.set_access_mode.fn(local, previous)
    assert state.is_failed()
    assert "FailedValidation" in state.message and "read-only" in state.message, state.message
    run = state.state_details.flow_run_id  # the progress stops where the failure came
    percent, text = final_progress("backup-progress", run)
    assert 0 < percent < 100 and "FailedValidation" in text, (percent, text)
    rows = tables("backup-steps", run)[-1]
    assert [r["state"] for r in rows if r["step"] == "back up items"] == ["failed"], rows
    report = Artifact.get("backup-report")
    assert report is not None and "FailedValidation" in report.data


def test_a_backup_never_adopts_another_runs_backup_of_the_same_name(local, app_ns) -> None:
    """Names go by the second: a second backup started in it takes the next second's name."""
    now = datetime.now(UTC)
    taken = backup_name(now)
    theirs = backup_manifest(
        taken,
        [app_ns],
        storage_location=local.storage_location,
        labels={velero.REQUEST_LABEL: "someone-else"},
        namespace=local.namespace,
    )
    velero.create(local, "backups", theirs)
    try:
        assert free_name.fn(local, now) == backup_name(now + timedelta(seconds=1))
        mine = {
            **theirs,
            "metadata": {**theirs["metadata"], "labels": {velero.REQUEST_LABEL: "me"}},
        }
        with pytest.raises(ConfigError, match="made by another run"):
            velero.create(local, "backups", mine)  # raced to the same name: refused, not adopted
        again = velero.create(local, "backups", theirs)  # its own retried create: found
        assert again["metadata"]["labels"][velero.REQUEST_LABEL] == "someone-else"
    finally:
        velero.wait_for(local, "backups", taken, velero.phase_in("Completed"), 120, "backup")

"""Restores with Velero: what a backup holds, the Restore itself, and the wait until it serves."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster, VeleroInstall
from core.errors import ConfigError, PipelineError
from core.recovery.backups import BackupInfo, is_terminal
from core.recovery.contents import BackedUpObject, object_key, read_backup_tarball
from core.recovery.errors import RestoreFailed
from core.recovery.selection import select_backup
from core.release.status import RolloutState
from tasks import RETRIES, velero
from tasks.kube import api_for, wait_for_rollout


@task(name="velero-list-backups", cache_policy=NO_CACHE, **RETRIES)
def backups(install: VeleroInstall) -> list[BackupInfo]:
    """Every backup Velero knows in this cluster (synced from the storage location)."""
    return [BackupInfo.from_object(o) for o in velero.list_objects(install, "backups")]


def _is_name(which: str) -> bool:
    return which != "latest" and not which.replace("-", "").isdigit()


@task(name="velero-find-backup", cache_policy=NO_CACHE, **RETRIES)
def find_backup(install: VeleroInstall, which: str, sync_seconds: float = 300) -> BackupInfo:
    """The backup `which` names ("latest", a day, or a name) among those Velero knows here.

    A backup made in another cluster reaches this one through Velero's backup sync; a name not
    seen yet is waited for until a sync that listed the store after the wait began has not brought
    it (up to `sync_seconds`); then it counts as unknown.

    Raises:
        ConfigError: no such completed backup (the message lists the newest that exist).
    """
    if _is_name(which) and velero.get(install, "backups", which) is None:
        get_run_logger().info(
            "backup %s is not in this cluster yet: waiting for Velero's backup sync (up to %.0f s)",
            which,
            sync_seconds,
        )
        # still unknown after that: select_backup below says so and lists what exists
        velero.await_synced(install, which, sync_seconds)
    found = [BackupInfo.from_object(o) for o in velero.list_objects(install, "backups")]
    return select_backup(found, which)


@task(name="velero-backup-objects", cache_policy=NO_CACHE, **RETRIES)
def backed_up(install: VeleroInstall, name: str) -> list[BackedUpObject]:
    """The objects in the backup's stored tarball (what a restore can bring back)."""
    return read_backup_tarball(velero.download(install, "BackupContents", name))


def _listing(dyn: DynamicClient, api_version: str, kind: str, ns: str | None) -> list[dict]:
    try:
        resource = dyn.resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError:
        return []  # the target cluster does not serve this kind: nothing of it exists
    try:
        found = resource.get(namespace=ns) if resource.namespaced else resource.get()
    except NotFoundError:
        return []
    # list items come without apiVersion and kind; put them back so objects compare whole
    return [{**item.to_dict(), "apiVersion": api_version, "kind": kind} for item in found.items]


def _target_name(obj: BackedUpObject, mapping: dict[str, str]) -> str:
    """A Namespace object is restored under its mapped name; everything else keeps its name."""
    if (obj.group, obj.resource) == ("", "namespaces"):
        return mapping.get(obj.name, obj.name)
    return obj.name


def in_namespaces(objects: list[BackedUpObject], names: list[str]) -> list[BackedUpObject]:
    """The objects of the named namespaces, the Namespace objects themselves included."""
    keep = set(names)
    return [
        o
        for o in objects
        if o.namespace in keep or ((o.group, o.resource) == ("", "namespaces") and o.name in keep)
    ]


def choose(
    install: VeleroInstall, which: str, namespaces: list[str] | None
) -> tuple[BackupInfo, list[str], list[BackedUpObject]]:
    """What a restore works from.

    the storage location checked, the backup `which` names, the namespaces to restore (default: all
    it holds) and their backed-up objects.

    Raises:
        StorageUnavailable, ConfigError: before anything is restored (unknown backup, or a
            namespace the backup does not hold).
    """
    velero.storage_location(install)
    chosen = find_backup(install, which)
    wanted = list(namespaces or chosen.included_namespaces)
    unknown = sorted(set(wanted) - set(chosen.included_namespaces))
    if unknown:
        raise ConfigError(
            f"backup {chosen.name} does not hold namespace(s) {unknown}: "
            f"choose from {chosen.included_namespaces}"
        )
    return chosen, wanted, in_namespaces(backed_up(install, chosen.name), wanted)


@task(name="k8s-existing-objects", cache_policy=NO_CACHE, **RETRIES)
def existing(
    cluster: KubernetesCluster, objects: list[BackedUpObject], mapping: dict[str, str]
) -> dict[tuple, dict[str, Any]]:
    """The target cluster's live objects that a restore of `objects` would meet.

    The target cluster's live objects that a restore of `objects` (namespaces mapped) would
    meet, keyed like core.recovery.restore_plan.object_key; one list call per kind and namespace.
    """
    dyn = DynamicClient(api_for(cluster))
    wanted: dict[tuple[str, str, str | None], set[str]] = defaultdict(set)
    groups: dict[tuple[str, str], tuple[str, str]] = {}
    for obj in objects:
        ns = mapping.get(obj.namespace, obj.namespace) if obj.namespace else None
        kind_key = (obj.body.get("apiVersion", ""), obj.body.get("kind", ""), ns)
        wanted[kind_key].add(_target_name(obj, mapping))
        groups[kind_key[:2]] = (obj.group, obj.resource)
    live: dict[tuple, dict[str, Any]] = {}
    for (api_version, kind, ns), names in wanted.items():
        group, resource = groups[(api_version, kind)]
        for item in _listing(dyn, api_version, kind, ns):
            name = item.get("metadata", {}).get("name")
            if name in names:
                live[object_key(group, resource, ns, name)] = item
    return live


@task(name="velero-create-restore", cache_policy=NO_CACHE)
def create_restore(install: VeleroInstall, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create the Restore object (no Prefect retries: it runs inside the restore transaction)."""
    return velero.create(install, "restores", manifest)


def refused_for_storage(restore: dict[str, Any]) -> bool:
    """Whether Velero refused a Restore only because its storage location was Unavailable.

    Velero marks a location Unavailable for a validation period after one failed check (seen
    here: its AWS plugin once read the credentials file while Velero rewrote it), and refuses
    every restore meanwhile (phase FailedValidation, "The BSL <name> is unavailable ..."). That
    refusal says nothing about the backup: the same restore, asked again once the location is
    Available, runs.
    """
    status = restore.get("status", {})
    errors = status.get("validationErrors") or []
    return (
        status.get("phase") == "FailedValidation"
        and bool(errors)
        and all("is unavailable" in e for e in errors)
    )


@task(name="velero-wait-restore", cache_policy=NO_CACHE)
def wait_restore(
    install: VeleroInstall,
    name: str,
    timeout: float,
    seen: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Watch the Restore to its end; Failed/PartiallyFailed raise with Velero's own errors.

    A Restore refused only because the storage location was briefly Unavailable is asked again
    once, under a new name, after the location is Available again (see refused_for_storage).
    `seen` gets the Restore at every event the watch sees (its status.progress moves there).
    """
    done = lambda o: is_terminal(o.get("status", {}).get("phase", "New"))  # noqa: E731
    final = velero.wait_for(install, "restores", name, done, timeout, f"restore {name}", seen)
    if refused_for_storage(final):
        velero.storage_location.fn(install, wait_seconds=60)
        again = {
            "apiVersion": final["apiVersion"],
            "kind": final["kind"],
            "metadata": {
                "name": f"{name[:60]}-r2",
                "namespace": final["metadata"]["namespace"],
                "labels": final["metadata"].get("labels") or {},
            },
            "spec": final["spec"],
        }
        velero.create(install, "restores", again)
        name = again["metadata"]["name"]
        final = velero.wait_for(install, "restores", name, done, timeout, f"restore {name}", seen)
    status = final.get("status", {})
    if status.get("phase") != "Completed":
        # the failed restore stays the news: if its results cannot be read, say why
        try:
            found = velero.results(install, "RestoreResults", name)
            detail = "; ".join(velero.messages(found, "errors", limit=5))
        except PipelineError as exc:
            detail = f"its errors cannot be read: {exc}"
        reason = status.get("failureReason") or "; ".join(status.get("validationErrors") or [])
        raise RestoreFailed(
            f"restore {name} ended {status.get('phase')} with {status.get('errors', 0)} "
            f"error(s){': ' + reason if reason else ''}{': ' + detail if detail else ''}",
            backup=final.get("spec", {}).get("backupName"),
        )
    return final


def restore_manifest(
    name: str,
    backup: str,
    namespaces: list[str],
    mapping: dict[str, str],
    existing_policy: str = "none",
) -> dict[str, Any]:
    """A velero.io/v1 Restore of `namespaces` from `backup` (no volumes: nothing to restore)."""
    if existing_policy not in ("none", "update"):
        raise ConfigError(f"existing_policy {existing_policy!r}: use none or update")
    spec: dict[str, Any] = {
        "backupName": backup,
        "includedNamespaces": namespaces,
        "existingResourcePolicy": existing_policy,
        "restorePVs": False,
    }
    if mapping:
        spec["namespaceMapping"] = mapping
    return {
        "apiVersion": "velero.io/v1",
        "kind": "Restore",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kyb-pipeline"}},
        "spec": spec,
    }


@task(name="k8s-wait-available", cache_policy=NO_CACHE)
def wait_available(
    cluster: KubernetesCluster,
    namespaces: list[str],
    timeout: float,
    seen: Callable[[int, int, str], None] | None = None,
) -> int:
    """Wait until every Deployment in `namespaces` is available; return how many there are.

    `seen(available, total, "namespace/name")` is called as each one becomes available.
    """
    api = api_for(cluster)
    apps = client.AppsV1Api(api)
    deadline = time.monotonic() + timeout
    names = [
        (ns, dep.metadata.name)
        for ns in namespaces
        for dep in apps.list_namespaced_deployment(ns).items
    ]
    for count, (ns, name) in enumerate(names, start=1):
        left = max(1.0, deadline - time.monotonic())
        state, reason = wait_for_rollout(api, ns, name, timeout=left)
        if state is not RolloutState.COMPLETE:
            raise RestoreFailed(f"restored Deployment {ns}/{name}: {reason}")
        if seen is not None:
            seen(count, len(names), f"{ns}/{name}")
    return len(names)


@task(name="k8s-delete-namespaces", cache_policy=NO_CACHE, **RETRIES)
def delete_namespaces(cluster: KubernetesCluster, names: list[str], timeout: float = 120) -> None:
    """Delete namespaces (absent is fine) and wait until they are gone."""
    core = client.CoreV1Api(api_for(cluster))
    for name in names:
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        listed = core.list_namespace()
        present = {n.metadata.name for n in listed.items} & set(names)
        if not present:
            return
        stream = watch.Watch().stream(  # from that list on: each DELETED event is one gone
            core.list_namespace,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=max(1, int(left)),
        )
        for event in stream:
            if event["type"] == "DELETED":
                present.discard(event["object"].metadata.name)
            if not present:
                return
    raise RestoreFailed(f"namespaces {sorted(set(names))} still terminating after {timeout:.0f}s")


@task(name="k8s-namespaces", cache_policy=NO_CACHE, **RETRIES)
def namespaces(cluster: KubernetesCluster) -> set[str]:
    """Names of the cluster's namespaces."""
    return {n.metadata.name for n in client.CoreV1Api(api_for(cluster)).list_namespace().items}

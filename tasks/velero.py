"""The Velero boundary: Backup, Restore, DownloadRequest and storage location objects."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import VeleroInstall
from core.errors import ConfigError
from core.recovery.errors import StorageUnavailable, VeleroTimeout
from core.recovery.stored import gunzip_json
from tasks import RETRIES
from tasks.kube import api_for

GROUP, VERSION = "velero.io", "v1"


def _objects(install: VeleroInstall) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_for(install.cluster))


def get(install: VeleroInstall, plural: str, name: str) -> dict[str, Any] | None:
    """One Velero object (backups, restores, backupstoragelocations, ...), or None if absent."""
    try:
        return _objects(install).get_namespaced_custom_object(
            GROUP, VERSION, install.namespace, plural, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def list_objects(install: VeleroInstall, plural: str) -> list[dict[str, Any]]:
    """Every Velero object of one kind in the install's namespace."""
    found = _objects(install).list_namespaced_custom_object(
        GROUP, VERSION, install.namespace, plural
    )
    return list(found.get("items", []))


#: The label naming the request (a flow run) that created an object, so a retried create
#: recognises its own object and never adopts another run's of the same name.
REQUEST_LABEL = "kyb.dev/request"


def create(install: VeleroInstall, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create a Velero object; if a retried call already created it, return that one.

    Raises:
        ConfigError: an object of that name exists that another request made (its
            `kyb.dev/request` label differs from the body's): nothing is created or adopted.
    """
    body = {**body, "metadata": {**body["metadata"], "namespace": install.namespace}}
    try:
        return _objects(install).create_namespaced_custom_object(
            GROUP, VERSION, install.namespace, plural, body
        )
    except ApiException as exc:
        if exc.status == 409:
            name = body["metadata"]["name"]
            existing = get(install, plural, name)
            mine = (body["metadata"].get("labels") or {}).get(REQUEST_LABEL)
            theirs = ((existing or {}).get("metadata", {}).get("labels") or {}).get(REQUEST_LABEL)
            if existing is not None and mine and theirs != mine:
                maker = theirs or "not the pipeline"
                raise ConfigError(
                    f"{plural} {name!r} already exists, made by another run ({maker}): start "
                    "again, the next name is free",
                    namespace=install.namespace,
                ) from None
            if existing is not None:
                return existing
        raise


def delete(install: VeleroInstall, plural: str, name: str) -> None:
    """Delete a Velero object; absent is fine."""
    try:
        _objects(install).delete_namespaced_custom_object(
            GROUP, VERSION, install.namespace, plural, name
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


def wait_for(
    install: VeleroInstall,
    plural: str,
    name: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float,
    what: str,
    seen: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Watch one Velero object until `done(obj)` holds; return it.

    `seen`, if given, is called with the object at every read and watch event (a Backup's or
    Restore's status.progress moves there), so progress is reported from what the watch shows.

    Raises:
        VeleroTimeout: not done within `timeout` seconds (the message says `what` we waited for
            and the object's last phase).
    """
    api = _objects(install)
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while (left := deadline - time.monotonic()) > 0:
        last = get(install, plural, name)
        if last is not None and seen is not None:
            seen(last)
        if last is not None and done(last):
            return last
        version = (last or {}).get("metadata", {}).get("resourceVersion")
        stream = watch.Watch().stream(
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            install.namespace,
            plural,
            field_selector=f"metadata.name={name}",
            resource_version=version,
            timeout_seconds=max(1, int(min(left, 30))),
        )
        try:
            for event in stream:
                if event["type"] not in ("ADDED", "MODIFIED"):
                    continue
                if seen is not None:
                    seen(event["object"])
                if done(event["object"]):
                    return event["object"]
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: the resourceVersion expired; read again
                raise
    phase = (last or {}).get("status", {}).get("phase", "absent" if last is None else "New")
    raise VeleroTimeout(
        f"{what}: still {phase} after {timeout:.0f}s",
        object=f"{plural}/{name}",
        namespace=install.namespace,
    )


def phase_in(*phases: str) -> Callable[[dict[str, Any]], bool]:
    """A `done` predicate for wait_for: the object's status.phase is one of `phases`."""
    return lambda obj: obj.get("status", {}).get("phase") in phases


@task(name="velero-storage-location", cache_policy=NO_CACHE, **RETRIES)
def storage_location(install: VeleroInstall, wait_seconds: float = 30) -> dict[str, Any]:
    """The install's BackupStorageLocation, once it reports Available.

    Velero re-validates a location every few seconds (the server's store-validation-frequency),
    so waiting `wait_seconds` rides out a short store outage; after that the location counts as
    down and nothing is backed up or restored.

    Raises:
        ConfigError: it does not exist (names the ones that do).
        StorageUnavailable: Velero still reports it Unavailable (the store is down, the bucket is
            missing or the credentials are refused), with Velero's own message.
    """
    name = install.storage_location
    bsl = get(install, "backupstoragelocations", name)
    if bsl is None:
        names = [o["metadata"]["name"] for o in list_objects(install, "backupstoragelocations")]
        raise ConfigError(
            f"backup storage location {name!r} does not exist in namespace "
            f"{install.namespace!r}: use one of {names or 'none (is Velero installed?)'}"
        )
    if phase_in("Available")(bsl):  # as it mostly is: no second read
        return bsl
    try:
        return wait_for(
            install,
            "backupstoragelocations",
            name,
            phase_in("Available"),
            wait_seconds,
            "storage location",
        )
    except VeleroTimeout:
        status = (get(install, "backupstoragelocations", name) or {}).get("status", {})
        raise StorageUnavailable(
            f"backup storage location {name!r} is {status.get('phase', 'not validated')} after "
            f"{wait_seconds:.0f}s: {status.get('message', 'Velero has not validated it yet')}",
            namespace=install.namespace,
        ) from None


def await_synced(install: VeleroInstall, name: str, timeout: float) -> bool:
    """Wait until Velero's backup sync brings backup `name` into this cluster; say if it came.

    Watches the storage location: a sync creates the backups it found before it records its
    `lastSyncedTime`, so the backup is looked for at each new sync time. The wait ends early,
    answering False, once two syncs have finished since it began: the second of them listed the
    store after the wait began, so a backup it did not bring is not there. Velero syncs on a
    one-minute tick when the location is due (its sync period, one minute by default, counts
    from the end of the last sync), so two syncs take up to ~4 min.
    """
    if get(install, "backups", name) is not None:
        return True
    syncs: list[str | None] = []

    def settled(bsl: dict[str, Any]) -> bool:
        last = bsl.get("status", {}).get("lastSyncedTime")
        if syncs and syncs[-1] == last:
            return False  # another status write (the store's validation), not a sync
        syncs.append(last)
        return len(syncs) > 2 or (len(syncs) > 1 and get(install, "backups", name) is not None)

    with contextlib.suppress(VeleroTimeout):  # still absent then: the caller says so
        location = install.storage_location
        wait_for(install, "backupstoragelocations", location, settled, timeout, "backup sync")
    return get(install, "backups", name) is not None


@task(name="velero-set-access-mode", cache_policy=NO_CACHE, **RETRIES)
def set_access_mode(install: VeleroInstall, mode: str) -> str:
    """Set the storage location's accessMode (ReadOnly or ReadWrite); return the previous one."""
    if mode not in ("ReadOnly", "ReadWrite"):
        raise ConfigError(f"accessMode {mode!r}: use ReadOnly or ReadWrite")
    name = install.storage_location
    before = get(install, "backupstoragelocations", name)
    if before is None:
        raise ConfigError(f"backup storage location {name!r} does not exist")
    _objects(install).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        install.namespace,
        "backupstoragelocations",
        name,
        {"spec": {"accessMode": mode}},
    )
    return before.get("spec", {}).get("accessMode") or "ReadWrite"


def download_url(install: VeleroInstall, kind: str, name: str, timeout: float = 60) -> str:
    """The URL Velero gives for one file it stored, through a DownloadRequest.

    Velero keeps everything it knows in the object store; its API for reading that back is the
    DownloadRequest: the server answers with a pre-signed URL of whatever form its object-store
    plugin makes (path-style or virtual-hosted, http or https, any host), so the flows never need
    S3 keys. The URL carries a signature: it is never logged.

    Args:
        install: the Velero that stored it.
        kind: the DownloadRequest target kind: BackupContents, BackupLog, BackupResults,
            BackupResourceList, RestoreLog, RestoreResults, ...
        name: the backup's or restore's name.
        timeout: seconds to wait for Velero to answer the request.

    Raises:
        VeleroTimeout: Velero did not process the request in time.
        ConfigError: Velero processed it without a URL.
    """
    request = f"{name}-{uuid.uuid4().hex[:8]}"[-63:].lstrip("-.")
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DownloadRequest",
        "metadata": {"name": request},
        "spec": {"target": {"kind": kind, "name": name}},
    }
    create(install, "downloadrequests", body)
    try:
        done = wait_for(
            install,
            "downloadrequests",
            request,
            phase_in("Processed"),
            timeout,
            f"download of {kind} {name}",
        )
    finally:
        delete(install, "downloadrequests", request)
    url = done.get("status", {}).get("downloadURL") or ""
    if not url:
        raise ConfigError(f"Velero processed the download of {kind} {name} but gave no URL")
    return url


def download(install: VeleroInstall, kind: str, name: str, timeout: float = 60) -> bytes:
    """What Velero stored for a backup or restore, read from the URL Velero gives.

    Read with VeleroInstall.read_stored: over TLS verified with the block's ca_cert (besides the
    default CAs), at most max_download_bytes, within download_timeout_seconds.

    Args:
        install: the Velero that stored it.
        kind: the DownloadRequest target kind (see `download_url`).
        name: the backup's or restore's name.
        timeout: seconds to wait for Velero to answer the request.

    Returns:
        The file as stored (gzip-compressed, as Velero writes all of them).

    Raises:
        ConfigError: the file is missing, larger than max_download_bytes, or the store's TLS
            certificate does not verify (the message says to set ca_cert).
        TransientError: the object store did not answer, or answered 5xx/429.
    """
    what = f"{kind} of {name}"
    data = install.read_stored(download_url(install, kind, name, timeout), what)
    if data is None:
        raise ConfigError(f"{what} is missing in the object store (HTTP 404)")
    return data


def results(install: VeleroInstall, kind: str, name: str) -> dict[str, Any]:
    """Velero's errors and warnings of a backup (BackupResults) or restore (RestoreResults).

    Velero uploads nothing for a backup or restore that failed validation (it never ran): its
    results are then empty, and its status.validationErrors say why. Any other results that
    cannot be read raise: an unreadable file never reads as "no errors".

    Raises:
        ConfigError: the results of one that ran are missing, too large, not gzip JSON, or the
            store's TLS certificate does not verify (the message says to set ca_cert).
        TransientError: the object store did not answer.
        VeleroTimeout: Velero did not answer the DownloadRequest.
    """
    what = f"{kind} of {name}"
    data = install.read_stored(download_url(install, kind, name, timeout=20), what)
    if data is None:
        plural = "restores" if kind.startswith("Restore") else "backups"
        phase = ((get(install, plural, name) or {}).get("status") or {}).get("phase")
        if phase == "FailedValidation":
            return {}
        raise ConfigError(
            f"{what} is missing in the object store although the {plural[:-1]} is "
            f"{phase or 'gone'}: its errors and warnings cannot be read"
        )
    return gunzip_json(data, install.max_download_bytes, what)


def messages(found: dict[str, Any], key: str, limit: int = 10) -> list[str]:
    """Flatten Velero's results ({errors|warnings: {velero, cluster, namespaces: {ns: []}}})."""
    section = found.get(key) or {}
    out = [f"velero: {m}" for m in section.get("velero") or []]
    out += [f"cluster: {m}" for m in section.get("cluster") or []]
    for ns, items in sorted((section.get("namespaces") or {}).items()):
        out += [f"{ns}: {m}" for m in items]
    return out[:limit]

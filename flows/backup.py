"""The `backup` flow: a Velero Backup of the configured namespaces, watched to its end."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from kubernetes import client
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from blocks import VeleroInstall
from core.errors import ConfigError, PipelineError
from core.recovery.backups import (
    DEFAULT_EXCLUDED,
    DEFAULT_NAMESPACES,
    DEFAULT_TTL,
    BackupInfo,
    backup_manifest,
    backup_name,
    backup_verdict,
    is_terminal,
)
from core.recovery.contents import read_backup_tarball
from core.recovery.errors import BackupFailed
from core.recovery.progress import BACKED_UP, BACKUP
from core.recovery.volumes import fs_backup_warning
from flows.form import titled
from flows.progress import FAILED, Progress
from tasks import RETRIES, velero
from tasks.kube import api_for, to_dict

ARTIFACT = "backup-report"


def _existing(install: VeleroInstall, namespaces: list[str]) -> None:
    """Fail unless every namespace exists."""
    present = {
        ns.metadata.name for ns in client.CoreV1Api(api_for(install.cluster)).list_namespace().items
    }
    missing = [ns for ns in namespaces if ns not in present]
    if missing:
        raise ConfigError(
            f"namespace(s) {missing} do not exist in the cluster: back up existing ones "
            f"(there are {sorted(present - {'kube-system', 'kube-public', 'kube-node-lease'})})"
        )


def _pods(install: VeleroInstall, namespace: str) -> list[dict[str, Any]]:
    """The namespace's pods (none if it does not exist), for the file-system warning."""
    api = api_for(install.cluster)
    return [to_dict(api, p) for p in client.CoreV1Api(api).list_namespaced_pod(namespace).items]


@task(name="velero-free-name", cache_policy=NO_CACHE, **RETRIES)
def free_name(install: VeleroInstall, now: datetime, tries: int = 30) -> str:
    """The first `<prefix>-YYYYMMDDhhmmss` from `now` on that no Backup has yet.

    Names go by the second, as a Velero Schedule's do: two backups started in one second (a
    person's and the schedule's) take the next second's name instead of one another's backup.

    Raises:
        ConfigError: `tries` seconds in a row are all taken.
    """
    for second in range(tries):
        name = backup_name(now + timedelta(seconds=second))
        if velero.get(install, "backups", name) is None:
            return name
    raise ConfigError(f"{tries} backup names from {backup_name(now)} on are taken: start again")


@task(name="backup-preflight", cache_policy=NO_CACHE, **RETRIES)
def preflight(
    install: VeleroInstall, namespaces: list[str], now: datetime
) -> tuple[list[dict[str, Any]], str]:
    """All that is checked before a Backup exists, in one task run.

    The namespaces exist (their pods, for the file-system warning), the storage location is
    Available, and a name is free.

    Raises:
        ConfigError: a namespace or the storage location does not exist; no free name.
        StorageUnavailable: Velero reports the storage location Unavailable.
    """
    with ThreadPoolExecutor(4, thread_name_prefix="backup-preflight") as pool:
        exist = pool.submit(_existing, install, namespaces)
        location = pool.submit(velero.storage_location.fn, install)
        name = pool.submit(free_name.fn, install, now)
        pods = [pool.submit(_pods, install, ns) for ns in namespaces]
        exist.result()  # the first failure, in this order: namespaces, location, name
        location.result()
        return [p for read in pods for p in read.result()], name.result()


@task(name="velero-create-backup", cache_policy=NO_CACHE, **RETRIES)
def create_backup(install: VeleroInstall, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create the Backup object (a retried call finds the one it already created)."""
    return velero.create(install, "backups", manifest)


@task(name="velero-wait-backup", cache_policy=NO_CACHE, **RETRIES)
def wait_backup(
    install: VeleroInstall,
    name: str,
    timeout: float,
    seen: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Watch the Backup until its phase is final (`seen` gets it at every event)."""
    done = lambda obj: is_terminal(obj.get("status", {}).get("phase", "New"))  # noqa: E731
    return velero.wait_for(install, "backups", name, done, timeout, f"backup {name}", seen)


@task(name="velero-backup-contents", cache_policy=NO_CACHE, **RETRIES)
def contents_size(install: VeleroInstall, name: str) -> tuple[int, int]:
    """(bytes in the object store, objects in the tarball): proves the tarball is readable."""
    data = velero.download(install, "BackupContents", name)
    return len(data), len(read_backup_tarball(data))


def _report(
    info: BackupInfo, stored: tuple[int, int] | None, warning: str | None, problems: list[str]
) -> str:
    seconds = info.duration.total_seconds() if info.duration else 0.0
    if stored is None:
        tarball = [("stored tarball", "not read back (`verify_contents` reads it)")]
    else:
        tarball = [
            ("objects in the stored tarball", str(stored[1])),
            ("size in the object store", f"{stored[0] / 1024:.1f} KiB"),
        ]
    rows = [
        ("backup", f"`{info.name}`"),
        ("phase", info.phase),
        ("namespaces", ", ".join(info.included_namespaces)),
        ("excluded resources", ", ".join(info.excluded_resources) or "-"),
        ("items backed up", f"{info.items_backed_up} of {info.total_items}"),
        *tarball,
        ("warnings / errors", f"{info.warnings} / {info.errors}"),
        ("duration", f"{seconds:.1f} s"),
        ("expires", info.expiration.isoformat() if info.expiration else "-"),
    ]
    lines = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    if warning:
        lines += ["", f"**Warning:** {warning}"]
    if problems:
        lines += ["", "Velero reported:", *(f"- {p}" for p in problems)]
    return "\n".join(lines)


@flow(name="backup")
def backup(
    namespaces: Annotated[list[str] | None, titled("Namespaces")] = None,
    ttl: Annotated[str, titled("Keep for (TTL)")] = DEFAULT_TTL,
    excluded_resources: Annotated[list[str] | None, titled("Excluded resources")] = None,
    velero_install: Annotated[VeleroInstall | None, titled("Velero")] = None,
    timeout_seconds: Annotated[float, titled("Timeout (seconds)")] = 1800,
    verify_contents: Annotated[bool, titled("Read the stored tarball back")] = False,
) -> dict[str, Any]:
    """Back up `namespaces` with Velero and wait for the result.

    The `backup` flow: a Velero Backup of the configured namespaces (the seed's nightly backup),
    watched to its end; a Failed or PartiallyFailed backup fails the run with Velero's own errors.

    Scheduled `0 2 * * *` in prefect.yaml. Each run publishes the `backup-report` artifact (items,
    warnings, size of what landed in the object store, duration) and, by completing, moves the
    `kyb_last_successful_backup_timestamp_seconds` metric of the pipeline's exporter
    (deployments/metrics.py).

    Args:
        namespaces: what to back up (default kyb-production and kyb-staging).
        ttl: how long Velero keeps the backup (a Go duration; the seed's 720h is 30 days).
        excluded_resources: resources left out (default pods and replicasets, as the seed:
            controllers recreate them on restore).
        velero_install: the KYB Velero install of the cluster to back up (unset: the block named
            "local").
        timeout_seconds: how long to wait for Velero to finish.
        verify_contents: download the stored tarball and count its objects (its size goes in
            the report). Off by default: the whole tarball crosses the network for it, and the
            weekly drill proves a restore from it anyway.

    Raises:
        ConfigError: a namespace does not exist, or a bad TTL or name (nothing is created).
        BackupFailed: Velero ended the backup Failed/PartiallyFailed (its errors are listed).
    """
    log = get_run_logger()
    install = velero_install or VeleroInstall.load("local")
    wanted = list(namespaces or DEFAULT_NAMESPACES)
    excluded = list(DEFAULT_EXCLUDED if excluded_resources is None else excluded_resources)
    progress = Progress("backup", title=f"backup of {', '.join(wanted)}", stages=BACKUP)
    with progress.stage("check namespaces", ", ".join(wanted)) as row:
        pods, name = preflight(install, wanted, datetime.now(UTC))
        progress.note(row, f"{', '.join(wanted)}; location {install.storage_location}; {name}")
    request = {velero.REQUEST_LABEL: str(flow_run.get_id() or uuid.uuid4())}
    manifest = backup_manifest(
        name,
        wanted,
        excluded,
        ttl,
        install.storage_location,
        labels=request,
        namespace=install.namespace,
    )
    warning = fs_backup_warning(excluded, pods, default_volumes_to_fs_backup=False)
    if warning:
        log.warning(warning)
    with progress.stage("create backup", name):
        create_backup(install, manifest)
    with progress.stage("back up items", counted=True) as items:
        seen = progress.items(items, BACKED_UP, "backed up")
        final = wait_backup(install, name, timeout_seconds, seen)
    info = BackupInfo.from_object(final)
    ok, reason = backup_verdict(info)
    found: dict[str, Any] = {}
    if not ok or info.errors or info.warnings:  # Velero's counts: nothing to read when both are 0
        with progress.stage("read results") as row:
            try:
                found = velero.results(install, "BackupResults", name)
            except PipelineError as exc:  # a failed backup's results may be unreadable: its
                if ok:  # failure first
                    raise
                reason = f"{reason} (its errors cannot be read: {exc})"
            progress.note(row, f"{info.errors} error(s), {info.warnings} warning(s)")
    problems = velero.messages(found, "errors") + velero.messages(found, "warnings")
    if not ok:
        create_markdown_artifact(
            _report(info, None, warning, problems),
            key=ARTIFACT,
            description=f"backup {name}: {info.phase}",
        )
        progress.end(items, f"{info.phase}: {reason}"[:300], state=FAILED)
        detail = "; ".join(velero.messages(found, "errors", limit=5))
        raise BackupFailed(f"{reason}" + (f": {detail}" if detail else ""), backup=name)
    stored = None
    if verify_contents:
        with progress.stage("check stored contents") as row:
            stored = contents_size(install, name)
            progress.note(row, f"{stored[1]} objects, {stored[0] / 1024:.1f} KiB in the store")
    progress.report(  # sent while the last moves are: the run's end waits for both at once
        ARTIFACT,
        _report(info, stored, warning, problems),
        f"backup {name}: {info.items_backed_up} items",
    )
    progress.finish(f"{info.items_backed_up} items backed up in {name}")
    seconds = info.duration.total_seconds() if info.duration else 0.0
    size = stored[0] if stored else None
    log.info(
        "backup %s completed: %d items, %d warnings in %.1fs",
        name,
        info.items_backed_up,
        info.warnings,
        seconds,
    )
    return {
        "name": name,
        "phase": info.phase,
        "items": info.items_backed_up,
        "warnings": info.warnings,
        "bytes": size,
        "seconds": seconds,
        "namespaces": wanted,
        "warning": warning,
    }

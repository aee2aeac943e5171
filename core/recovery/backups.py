"""Velero backups, pure: the Backup object to create, reading one back, which one to restore."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.durations import parse_duration
from core.errors import ConfigError
from core.names import is_dns_label, is_dns_subdomain

BACKUP_PREFIX = "kyb-platform-backup"
DEFAULT_NAMESPACES = ("kyb-production", "kyb-staging")
DEFAULT_EXCLUDED = ("pods", "replicasets")
DEFAULT_TTL = "720h"
VELERO_NAMESPACE = "velero"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kyb-pipeline"}

COMPLETED = "Completed"
FAILED_PHASES = ("Failed", "PartiallyFailed", "FailedValidation")
DELETING = "Deleting"
RUNNING_PHASES = (
    "New",
    "Queued",
    "ReadyToStart",
    "InProgress",
    "WaitingForPluginOperations",
    "WaitingForPluginOperationsPartiallyFailed",
    "Finalizing",
    "FinalizingPartiallyFailed",
)
TERMINAL_PHASES = (COMPLETED, *FAILED_PHASES, DELETING)

_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_RESOURCE = re.compile(r"\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
SHOWN_NAMES = 5


def parse_go_duration(text: str) -> timedelta:
    """A Go duration as Velero's `ttl` takes it (`720h`, `30m`, `1h30m`, `90s`), positive.

    Go durations have no day unit: 30 days is `720h`.

    Raises:
        ConfigError: not a Go duration, or not positive.
    """
    example = "a Go duration such as 720h (30 days), 168h or 1h30m"
    seconds = parse_duration(text, "ttl", bare_seconds=False, example=example)
    if seconds <= 0:
        raise ConfigError(f"ttl {text!r} must be longer than zero: use {example}")
    return timedelta(seconds=seconds)


def backup_name(now: datetime, prefix: str = BACKUP_PREFIX) -> str:
    """The backup's name as a Velero Schedule would give it: `<prefix>-YYYYMMDDhhmmss` (UTC).

    A naive `now` is taken as UTC.

    Raises:
        ConfigError: the name is not a valid DNS-1123 label of at most 63 characters (the prefix
            is too long, or has characters other than a-z, 0-9 and '-').
    """
    when = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    name = f"{prefix}-{when:%Y%m%d%H%M%S}"
    if not is_dns_label(name):
        raise ConfigError(
            f"backup name {name!r} is not a DNS-1123 label: the prefix {prefix!r} must be "
            "lowercase letters, digits and '-' and at most 48 characters"
        )
    return name


def _check_labels(labels: Mapping[str, str]) -> None:
    """Raise ConfigError for a label key or value Kubernetes would refuse."""
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if (
            not _LABEL_NAME.fullmatch(name)
            or len(name) > 63
            or (prefix and not is_dns_subdomain(prefix))
        ):
            raise ConfigError(
                f"label key {key!r} is invalid: use an optional DNS prefix and a name of at most "
                "63 letters, digits, '-', '_' or '.', e.g. app.kubernetes.io/part-of"
            )
        if not isinstance(value, str) or (
            value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value))
        ):
            raise ConfigError(
                f"label {key}={value!r} has an invalid value: use at most 63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit"
            )


def backup_manifest(
    name: str,
    namespaces: Iterable[str] = DEFAULT_NAMESPACES,
    excluded_resources: Iterable[str] = DEFAULT_EXCLUDED,
    ttl: str = DEFAULT_TTL,
    storage_location: str = "default",
    labels: Mapping[str, str] | None = None,
    namespace: str = VELERO_NAMESPACE,
) -> dict[str, Any]:
    """The velero.io/v1 Backup object of `namespaces`, without volume data.

    The seed backs up kyb-production and kyb-staging nightly (Schedule `0 2 * * *`, TTL 720h, pods
    and replicasets excluded) and its DR script restores `kyb-platform-backup-$BACKUP_DATE`
    (`latest` by default). The flows create velero.io/v1 Backup objects themselves, named as a
    Velero Schedule names its backups: `<prefix>-YYYYMMDDhhmmss` (UTC).

    Phases and status fields follow Velero v1.18 (pkg/apis/velero/v1/backup_types.go).

    The backup takes no volume snapshots and no file-system volume backups
    (`snapshotVolumes: false`, `defaultVolumesToFsBackup: false`): it holds the Kubernetes
    objects only (see `fs_backup_warning`). Namespaces repeated are kept once, in order.

    Args:
        name: the Backup's name (a DNS-1123 label, e.g. from `backup_name`).
        namespaces: the namespaces to back up (`spec.includedNamespaces`).
        excluded_resources: resources left out, e.g. pods, replicasets, replicasets.apps.
        ttl: how long Velero keeps the backup, a Go duration (`720h` is 30 days).
        storage_location: the BackupStorageLocation to write to.
        labels: extra labels; `app.kubernetes.io/managed-by: kyb-pipeline` is always set.
        namespace: where the Velero server runs (the Backup object's namespace).

    Raises:
        ConfigError: a bad name, namespace, resource, TTL, storage location or label.
    """
    if not is_dns_label(name):
        raise ConfigError(
            f"backup name {name!r} is not a DNS-1123 label: use lowercase letters, digits and "
            "'-', at most 63 characters"
        )
    wanted = list(dict.fromkeys([namespaces] if isinstance(namespaces, str) else namespaces))
    if not wanted:
        raise ConfigError("no namespace to back up: name at least one, e.g. kyb-production")
    bad = [ns for ns in wanted if not is_dns_label(ns)]
    if bad:
        raise ConfigError(
            f"namespace(s) {bad} are not valid namespace names: use lowercase letters, digits "
            "and '-', at most 63 characters (e.g. kyb-production)"
        )
    excluded = list(excluded_resources)
    odd = [r for r in excluded if not isinstance(r, str) or not _RESOURCE.fullmatch(r)]
    if odd:
        raise ConfigError(
            f"excluded resource(s) {odd} are invalid: use lowercase plural resource names, "
            "optionally with their API group, e.g. pods, replicasets.apps"
        )
    parse_go_duration(ttl)
    if not is_dns_subdomain(storage_location):
        raise ConfigError(
            f"storage location {storage_location!r} is not a valid object name: name a "
            "BackupStorageLocation, e.g. default"
        )
    if not is_dns_label(namespace):
        raise ConfigError(f"Velero namespace {namespace!r} is not a valid namespace name")
    all_labels = {**(labels or {}), **MANAGED_BY}
    _check_labels(all_labels)
    return {
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {"name": name, "namespace": namespace, "labels": all_labels},
        "spec": {
            "includedNamespaces": wanted,
            "excludedResources": excluded,
            "ttl": ttl.strip(),
            "storageLocation": storage_location,
            "snapshotVolumes": False,
            "defaultVolumesToFsBackup": False,
        },
    }


def parse_time(value: object, field: str = "timestamp") -> datetime | None:
    """An RFC 3339 time from a Kubernetes object (`2026-11-26T02:00:03Z`) as an aware UTC datetime.

    None when absent.

    Raises:
        ConfigError: present but not an RFC 3339 time.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).replace("z", "Z"))
        except ValueError:
            raise ConfigError(f"{field} {value!r} is not an RFC 3339 time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class BackupInfo:
    """What a velero.io/v1 Backup object says about one backup (times in UTC)."""

    name: str
    phase: str
    started: datetime | None = None
    completed: datetime | None = None
    expiration: datetime | None = None
    storage_location: str = ""
    included_namespaces: tuple[str, ...] = ()
    excluded_resources: tuple[str, ...] = ()
    items_backed_up: int = 0
    total_items: int = 0
    warnings: int = 0
    errors: int = 0
    failure_reason: str = ""
    validation_errors: tuple[str, ...] = ()

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> BackupInfo:
        """Read a Backup object (API JSON) as Velero writes it; a missing phase is `New`.

        Raises:
            ConfigError: not a Backup object (no metadata.name), or a time that does not parse.
        """
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ConfigError("not a Velero Backup object: it has no metadata.name")
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        progress = status.get("progress") or {}
        return cls(
            name=name,
            phase=status.get("phase") or "New",
            started=parse_time(status.get("startTimestamp"), f"{name} startTimestamp"),
            completed=parse_time(status.get("completionTimestamp"), f"{name} completionTimestamp"),
            expiration=parse_time(status.get("expiration"), f"{name} expiration"),
            storage_location=spec.get("storageLocation") or "",
            included_namespaces=tuple(spec.get("includedNamespaces") or ()),
            excluded_resources=tuple(spec.get("excludedResources") or ()),
            items_backed_up=_int(progress.get("itemsBackedUp")),
            total_items=_int(progress.get("totalItems")),
            warnings=_int(status.get("warnings")),
            errors=_int(status.get("errors")),
            failure_reason=status.get("failureReason") or "",
            validation_errors=tuple(status.get("validationErrors") or ()),
        )

    @property
    def duration(self) -> timedelta | None:
        """From start to completion; None until both are known."""
        if self.started is None or self.completed is None:
            return None
        return self.completed - self.started

    def covers(self, namespaces: Collection[str]) -> bool:
        """True when the backup includes every one of `namespaces` (no list or `*`: all)."""
        included = set(self.included_namespaces)
        return not included or "*" in included or set(namespaces) <= included


def is_terminal(phase: str) -> bool:
    """True once a Backup (or Restore) phase is final.

    Completed, Failed, PartiallyFailed, FailedValidation, or Deleting (the backup is going away and
    will not complete).

    Running phases (New, Queued, ReadyToStart, InProgress, WaitingForPluginOperations...,
    Finalizing...) and phases this code does not know are not final: a wait on them ends by its
    timeout, which names the phase.
    """
    return phase in TERMINAL_PHASES


def backup_verdict(info: BackupInfo) -> tuple[bool, str]:
    """Whether the backup can be trusted, and why, in one line.

    Only Completed is ok (its warnings are counted in the reason). Failed, PartiallyFailed and
    FailedValidation are not, with Velero's error count, failure reason and validation errors;
    a backup still running or being deleted is not ok either.
    """
    name, phase = info.name, info.phase
    if phase == COMPLETED:
        extra = f", {info.warnings} warning(s)" if info.warnings else ""
        return True, f"backup {name} completed: {info.items_backed_up} items backed up{extra}"
    if phase in FAILED_PHASES:
        parts = [f"backup {name} ended {phase} with {info.errors} error(s)"]
        if info.warnings:
            parts[0] += f" and {info.warnings} warning(s)"
        if info.failure_reason:
            parts.append(f"failure reason: {info.failure_reason}")
        if info.validation_errors:
            parts.append(f"validation errors: {'; '.join(info.validation_errors)}")
        return False, "; ".join(parts)
    if phase == DELETING:
        return False, f"backup {name} is being deleted"
    return False, f"backup {name} is still {phase}: it has not finished"

"""Velero backups, pure: the Backup object to create, reading one back, which one to restore.

The seed backs up kyb-production and kyb-staging nightly (Schedule `0 2 * * *`, TTL 720h, pods
and replicasets excluded) and its DR script restores `kyb-platform-backup-$BACKUP_DATE`
(`latest` by default). The flows create velero.io/v1 Backup objects themselves, named as a
Velero Schedule names its backups: `<prefix>-YYYYMMDDhhmmss` (UTC).

Phases and status fields follow Velero v1.18 (pkg/apis/velero/v1/backup_types.go).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.errors import ConfigError

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
    "New", "Queued", "ReadyToStart", "InProgress", "WaitingForPluginOperations",
    "WaitingForPluginOperationsPartiallyFailed", "Finalizing", "FinalizingPartiallyFailed",
)  # fmt: skip
TERMINAL_PHASES = (COMPLETED, *FAILED_PHASES, DELETING)

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_RESOURCE = re.compile(r"\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                 "m": 60.0, "h": 3600.0}  # fmt: skip
_SHOWN_NAMES = 5


def is_dns_label(text: str) -> bool:
    """True for an RFC 1123 label (a namespace name): a-z, 0-9 and '-', at most 63 characters,
    starting and ending with a letter or digit."""
    return isinstance(text, str) and len(text) <= 63 and bool(_DNS_LABEL.fullmatch(text))


def is_dns_subdomain(text: str) -> bool:
    """True for an RFC 1123 subdomain (most object names): dot-separated labels, at most 253."""
    return (
        isinstance(text, str)
        and 0 < len(text) <= 253
        and all(_DNS_LABEL.fullmatch(part) for part in text.split("."))
    )


def parse_go_duration(text: str) -> timedelta:
    """A Go duration as Velero's `ttl` takes it (`720h`, `30m`, `1h30m`, `90s`), positive.

    Go durations have no day unit: 30 days is `720h`.

    Raises:
        ConfigError: not a Go duration, or not positive.
    """
    example = "use a Go duration such as 720h (30 days), 168h or 1h30m"
    value = text.strip() if isinstance(text, str) else ""
    if value == "0":
        raise ConfigError(f"ttl {text!r} must be longer than zero: {example}")
    if not value or re.fullmatch(f"(?:{_DURATION.pattern})+", value) is None:
        hint = " (Go durations have no 'd' unit: 30d is 720h)" if "d" in value else ""
        raise ConfigError(f"ttl {text!r} is not a Go duration{hint}: {example}")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(value))
    if seconds <= 0:
        raise ConfigError(f"ttl {text!r} must be longer than zero: {example}")
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
    """An RFC 3339 time from a Kubernetes object (`2026-11-26T02:00:03Z`) as an aware UTC
    datetime; None when absent.

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
    """True once a Backup (or Restore) phase is final: Completed, Failed, PartiallyFailed,
    FailedValidation, or Deleting (the backup is going away and will not complete).

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


# --- file-system volume backups and excluded pods ---

FS_BACKUP_ANNOTATION = "backup.velero.io/backup-volumes"
FS_EXCLUDE_ANNOTATION = "backup.velero.io/backup-volumes-excludes"
_KUBE_STATE_SOURCES = ("hostPath", "secret", "configMap", "projected", "downwardAPI")
_POD_NAMES = {"pods", "pod", "po", "*"}


def _names(annotation: object) -> set[str]:
    """The volume names of a comma-separated annotation value."""
    return {v.strip() for v in str(annotation or "").split(",") if v.strip()}


def _fs_volumes(pod: Mapping[str, Any], default_fs: bool) -> list[str]:
    """The volumes of a pod whose data only the pod's file-system backup would save."""
    meta = pod.get("metadata") or {}
    notes = meta.get("annotations") or {}
    volumes = (pod.get("spec") or {}).get("volumes") or []
    opted_in = _names(notes.get(FS_BACKUP_ANNOTATION))
    opted_out = _names(notes.get(FS_EXCLUDE_ANNOTATION))
    found = []
    for vol in volumes:
        name = vol.get("name", "")
        if default_fs:
            if any(k in vol for k in _KUBE_STATE_SOURCES) or name in opted_out:
                continue
            if name.startswith("default-token"):
                continue
            found.append(name)
        elif name in opted_in or "persistentVolumeClaim" in vol:
            found.append(name)
    return found


def fs_backup_warning(
    excluded_resources: Iterable[str],
    pods: Iterable[Mapping[str, Any]],
    default_volumes_to_fs_backup: bool,
) -> str | None:
    """A warning when excluding pods drops volume data the backup would otherwise hold.

    Velero backs up a volume's files through the pod that mounts it (file-system backup,
    kopia): with pods excluded, no pod volume is backed up. The warning names the pod volumes
    whose data is lost that way (None when there are none, or pods are not excluded):

    - with `default_volumes_to_fs_backup`, every volume Velero would back up by default: all
      but hostPath, secret, configMap, projected and downwardAPI volumes (that data is in the
      Kubernetes objects, or not reachable), volumes named in the pod's
      `backup.velero.io/backup-volumes-excludes` annotation, and `default-token-*` volumes
      (emptyDir volumes count: Velero backs them up);
    - without it, the volumes the pod opts in through `backup.velero.io/backup-volumes`, and
      every persistentVolumeClaim volume: this pipeline's backups take no volume snapshots, so
      the pod is the only way to a claim's data; emptyDir scratch space is not counted.

    Args:
        excluded_resources: the backup's `excludedResources` (pods, pod, po or * exclude pods).
        pods: the pods of the backed-up namespaces (API JSON).
        default_volumes_to_fs_backup: the backup's `defaultVolumesToFsBackup`.
    """
    if not {str(r).strip().lower() for r in excluded_resources} & _POD_NAMES:
        return None
    lost: list[str] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        lost += [f"{where}:{vol}" for vol in _fs_volumes(pod, default_volumes_to_fs_backup)]
    if not lost:
        return None
    shown = ", ".join(lost[:_SHOWN_NAMES]) + (
        f" and {len(lost) - _SHOWN_NAMES} more" if len(lost) > _SHOWN_NAMES else ""
    )
    fix = "stop excluding pods"
    if not default_volumes_to_fs_backup:
        fix += f" and annotate the pods with {FS_BACKUP_ANNOTATION}=<volume names>"
    return (
        f"pods are excluded from the backup, so Velero backs up no pod volume: the data of "
        f"{len(lost)} volume(s) is not in it ({shown}); to keep it, {fix}"
    )


# --- which backup to restore ---

_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})|(\d{4})(\d{2})(\d{2})")


def _newest_first(backups: Iterable[BackupInfo]) -> list[BackupInfo]:
    """Backups newest first: by completion, then start time, then name."""
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(
        backups,
        key=lambda b: (b.completed or floor, b.started or floor, b.name),
        reverse=True,
    )


def _parse_day(text: str) -> date | None:
    """`YYYY-MM-DD` or `YYYYMMDD` as a date; None when the text has neither shape.

    Raises:
        ConfigError: the shape of a date but not a real one (2026-13-01).
    """
    found = _DAY.fullmatch(text)
    if found is None:
        return None
    try:
        return date(*(int(part) for part in found.groups() if part))
    except ValueError:
        raise ConfigError(f"backup date {text!r} is not a real date: use YYYY-MM-DD") from None


def select_backup(
    backups: Iterable[BackupInfo],
    which: str = "latest",
    prefix: str = BACKUP_PREFIX,
    namespaces: Collection[str] = (),
    location: str = "",
) -> BackupInfo:
    """The Completed backup to restore, chosen as the seed's DR script does.

    `which` (empty means latest) is one of:

    - `latest`: the newest Completed backup (by completion time) named `<prefix>-...`;
    - a UTC day, `YYYY-MM-DD` or `YYYYMMDD`: the newest Completed `<prefix>-...` backup that
      started that day;
    - a backup's name, or what follows `<prefix>-` in it (the seed's
      `kyb-platform-backup-$BACKUP_DATE`): that backup, which must be Completed.

    An empty prefix lets `latest` and days pick any backup. With `namespaces`, only backups that
    include all of them are candidates.

    Raises:
        ConfigError: no Completed backup at all; the named backup is not Completed (its phase is
            given); or nothing matches (up to five Completed backups are named, newest first).
    """
    which = (which or "").strip() or "latest"
    everything = list(backups)
    done = _newest_first(b for b in everything if b.phase == COMPLETED and b.covers(namespaces))
    where = f" {location!r}" if location else ""
    need = f" that includes {sorted(namespaces)}" if namespaces else ""
    if not done:
        raise ConfigError(f"no completed backup{need} exists in the storage location{where}")
    available = ", ".join(b.name for b in done[:_SHOWN_NAMES])

    def ours(b: BackupInfo) -> bool:
        return not prefix or b.name.startswith(f"{prefix}-")

    if which.lower() == "latest":
        found = [b for b in done if ours(b)]
        if found:
            return found[0]
        raise ConfigError(
            f"no completed backup named {prefix}-...{need} in the storage location{where}: "
            f"available: {available}"
        )
    day = _parse_day(which)
    if day is not None:
        found = [b for b in done if ours(b) and b.started and b.started.date() == day]
        if found:
            return found[0]
        raise ConfigError(
            f"no completed backup{need} started on {day.isoformat()} (UTC): restore one of "
            f"{available}, or use latest"
        )
    for name in (which, f"{prefix}-{which}" if prefix else which):
        named = [b for b in everything if b.name == name]
        if not named:
            continue
        backup = named[0]
        if backup.phase != COMPLETED:
            raise ConfigError(
                f"backup {name} is {backup.phase}, not Completed: restore one of {available}"
            )
        if not backup.covers(namespaces):
            raise ConfigError(
                f"backup {name} does not include {sorted(namespaces)}: restore one of {available}"
            )
        return backup
    also = f" (or {prefix}-{which})" if prefix else ""
    raise ConfigError(
        f"no backup named {which!r}{also}: use latest, a day (YYYY-MM-DD) or one of {available}"
    )


def recovery_times(
    started: datetime, healthy: datetime, backup_completed: datetime
) -> dict[str, float]:
    """A recovery's RTO and RPO in seconds.

    RTO: from the recovery's start to the moment the restored service is healthy.
    RPO: from the restored backup's completion to the recovery's start (the changes lost).

    Raises:
        ConfigError: a naive datetime, healthy before started, or the backup completed after
            the recovery started.
    """
    if any(t.tzinfo is None for t in (started, healthy, backup_completed)):
        raise ConfigError("recovery times must be timezone-aware (UTC) datetimes")
    if healthy < started:
        raise ConfigError(f"healthy at {healthy.isoformat()} is before the start {started}")
    if backup_completed > started:
        raise ConfigError(
            f"the backup completed at {backup_completed.isoformat()}, after the recovery "
            f"started at {started.isoformat()}"
        )
    return {
        "rto_seconds": (healthy - started).total_seconds(),
        "rpo_seconds": (started - backup_completed).total_seconds(),
    }

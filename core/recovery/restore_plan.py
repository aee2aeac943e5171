"""What a Velero restore will do, decided before it runs: per object, create, skip or differ."""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.errors import ConfigError
from core.names import is_dns_label
from core.recovery.contents import BackedUpObject, ObjectKey, object_key

__all__ = [
    "PlanEntry",
    "RestoreAction",
    "RestorePlan",
    "diff_paths",
    "made_by_kubernetes",
    "map_namespace",
    "normalize",
    "object_key",
    "plan_restore",
]

POLICIES = ("none", "update")
NON_RESTORABLE = frozenset(
    {
        "nodes",
        "events",
        "events.events.k8s.io",
        "backups.velero.io",
        "restores.velero.io",
        "resticrepositories.velero.io",
        "csinodes.storage.k8s.io",
        "volumeattachments.storage.k8s.io",
        "backuprepositories.velero.io",
    }
)
_METADATA_DROPPED = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "ownerReferences",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generateName",
)
_ANNOTATIONS_DROPPED = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
)
_KIND_ANNOTATIONS_DROPPED = {
    "PersistentVolumeClaim": (
        "pv.kubernetes.io/bind-completed",
        "pv.kubernetes.io/bound-by-controller",
        "volume.beta.kubernetes.io/storage-provisioner",
        "volume.kubernetes.io/storage-provisioner",
        "volume.kubernetes.io/selected-node",
    ),
}
_LABELS_DROPPED = ("velero.io/backup-name", "velero.io/restore-name")
_KIND_LABELS_DROPPED = {"Namespace": ("kubernetes.io/metadata.name",)}
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SHOWN_FIELDS = 5


def map_namespace(namespace: str | None, mapping: Mapping[str, str] | None) -> str | None:
    """The namespace an object lands in: its mapped name, else its own (None stays None)."""
    if namespace is None:
        return None
    return (mapping or {}).get(namespace, namespace)


def _prune(value: Any) -> Any:
    """Drop None values and empty maps and lists, at any depth (Kubernetes omits them)."""
    if isinstance(value, Mapping):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def normalize(obj: Mapping[str, Any], namespace_mapping: Mapping[str, str] | None = None) -> dict:
    """The part of an object that a restore brings back unchanged.

    The part of an object that a restore brings back unchanged, for comparing a backed-up
    object with a live or restored copy. The input is not modified.

    Removed: `status`; metadata uid, resourceVersion, generation, creationTimestamp,
    managedFields, selfLink, ownerReferences (Velero drops them on restore), deletionTimestamp,
    deletionGracePeriodSeconds, generateName; the annotations
    `kubectl.kubernetes.io/last-applied-configuration` and `deployment.kubernetes.io/revision`;
    the labels `velero.io/backup-name` and `velero.io/restore-name` (Velero adds them); for a
    Service its cluster IPs (unless headless) and node ports, which Velero resets; for a
    PersistentVolumeClaim its volumeName and binding annotations; for a Namespace the
    `kubernetes.io/metadata.name` label the API server sets. None values and empty maps and
    lists are dropped (Kubernetes omits them). Secret and ConfigMap data are kept.

    With `namespace_mapping`, metadata.namespace (a Namespace's own name, and RoleBinding or
    ClusterRoleBinding subjects' namespaces, as Velero's restore actions do) become the mapped
    names.
    """
    body = copy.deepcopy(dict(obj))
    kind = body.get("kind", "")
    body.pop("status", None)
    meta = body.get("metadata")
    meta = dict(meta) if isinstance(meta, Mapping) else {}
    body["metadata"] = meta
    for key in _METADATA_DROPPED:
        meta.pop(key, None)
    notes = dict(meta.get("annotations") or {})
    for key in _ANNOTATIONS_DROPPED + _KIND_ANNOTATIONS_DROPPED.get(kind, ()):
        notes.pop(key, None)
    meta["annotations"] = notes
    labels = dict(meta.get("labels") or {})
    for key in _LABELS_DROPPED + _KIND_LABELS_DROPPED.get(kind, ()):
        labels.pop(key, None)
    meta["labels"] = labels
    if meta.get("namespace"):
        meta["namespace"] = map_namespace(meta["namespace"], namespace_mapping)
    if kind == "Namespace" and meta.get("name"):
        meta["name"] = map_namespace(meta["name"], namespace_mapping)
    spec = body.get("spec")
    if kind == "Service" and isinstance(spec, dict):
        if spec.get("clusterIP") != "None":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        spec.pop("healthCheckNodePort", None)
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.pop("nodePort", None)
    if kind == "PersistentVolumeClaim" and isinstance(spec, dict):
        spec.pop("volumeName", None)
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        for subject in body.get("subjects") or []:
            if isinstance(subject, dict) and subject.get("namespace"):
                subject["namespace"] = map_namespace(subject["namespace"], namespace_mapping)
    return _prune(body)


def _join(path: str, key: object) -> str:
    """`spec.replicas`, `data[config.json]`, `spec.containers[0]`: where a value sits."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    text = str(key)
    if _PLAIN_KEY.fullmatch(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{text}]"


def diff_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """The field paths where two (normalized) objects differ, never their values.

    a Secret's changed key shows as `data[KEY]`. Lists of different lengths show as the list's path.
    """
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        found: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            if key not in before or key not in after:
                found.append(_join(path, key))
            else:
                found += diff_paths(before[key], after[key], _join(path, key))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            p
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for p in diff_paths(b, a, _join(path, i))
        ]
    return [] if before == after else [path or "(the whole object)"]


def made_by_kubernetes(group: str, resource: str, body: Mapping[str, Any]) -> bool:
    """True for objects Kubernetes creates by itself in every namespace.

    the `kube-root-ca.crt` ConfigMap, the `default` ServiceAccount and service-account token
    Secrets. A restore cannot meaningfully compare them: the cluster owns them.
    """
    name = (body.get("metadata") or {}).get("name")
    if group:
        return False
    if resource == "configmaps":
        return name == "kube-root-ca.crt"
    if resource == "serviceaccounts":
        return name == "default"
    return resource == "secrets" and body.get("type") == "kubernetes.io/service-account-token"


class RestoreAction(StrEnum):
    """What the restore does with one backed-up object."""

    CREATE = "create"  # absent: Velero creates it
    SKIP = "skip"  # exists and is the same: nothing to do
    KEEP_DIFFERS = "keep-differs"  # exists, differs, Velero leaves it as it is and warns
    UPDATE = "update"  # exists, differs, Velero patches it (existingResourcePolicy update)
    MERGE = "merge"  # a ServiceAccount that differs: Velero merges the backed-up one into it
    KUBERNETES = "left-to-kubernetes"  # made by Kubernetes itself (see made_by_kubernetes)


@dataclass(frozen=True)
class PlanEntry:
    """One backed-up object and what the restore does with it, under its restored name."""

    group: str
    resource: str
    kind: str
    namespace: str | None  # where it lands (mapped); None for cluster-scoped objects
    name: str  # its restored name (a Namespace's mapped name)
    action: RestoreAction
    fields: tuple[str, ...] = ()  # where the live copy differs (paths, never values)
    source: str = ""  # where it came from when mapped, e.g. kyb-production/web

    @property
    def key(self) -> ObjectKey:
        """The restored object's key (see object_key)."""
        return object_key(self.group, self.resource, self.namespace, self.name)


@dataclass(frozen=True)
class RestorePlan:
    """The plan of one restore: an entry per backed-up object it restores."""

    entries: tuple[PlanEntry, ...]
    existing_policy: str = "none"

    @property
    def counts(self) -> dict[str, int]:
        """Entries per action, every action listed (zero included)."""
        return {a.value: sum(e.action is a for e in self.entries) for a in RestoreAction}

    def of(self, action: RestoreAction) -> list[PlanEntry]:
        """The entries with one action."""
        return [e for e in self.entries if e.action is action]

    def summary(self) -> str:
        """One line, e.g. `12 to create, 3 already exist (skipped), 1 differs (kept as is)`."""
        if not self.entries:
            return "nothing to restore"
        n = self.counts
        parts = [f"{n[RestoreAction.CREATE]} to create"]
        words = (
            (RestoreAction.SKIP, "already exist (skipped)", "already exists (skipped)"),
            (RestoreAction.KEEP_DIFFERS, "differ (kept as is)", "differs (kept as is)"),
            (RestoreAction.UPDATE, "differ (updated)", "differs (updated)"),
            (RestoreAction.MERGE, "differ (merged)", "differs (merged)"),
            (
                RestoreAction.KUBERNETES,
                "made by Kubernetes (not compared)",
                "made by Kubernetes (not compared)",
            ),
        )
        parts += [f"{n[a]} {one if n[a] == 1 else many}" for a, many, one in words if n[a]]
        return ", ".join(parts)

    def rows(self) -> list[str]:
        """A markdown table, one row per object.

        action, kind, namespace, name, differing fields (at most five named).
        """
        lines = ["| action | kind | namespace | name | differs in |", "|---|---|---|---|---|"]
        for e in self.entries:
            shown = ", ".join(f"`{f}`" for f in e.fields[:_SHOWN_FIELDS])
            if len(e.fields) > _SHOWN_FIELDS:
                shown += f" and {len(e.fields) - _SHOWN_FIELDS} more"
            source = f" (from {e.source})" if e.source else ""
            lines.append(
                f"| {e.action} | {e.kind} | {e.namespace or '-'} | {e.name}{source} "
                f"| {shown or '-'} |"
            )
        return lines


def _check_mapping(mapping: Mapping[str, str]) -> None:
    bad = [t for t in mapping.values() if not is_dns_label(t)]
    if bad:
        raise ConfigError(
            f"namespace mapping target(s) {bad} are not valid namespace names: use lowercase "
            "letters, digits and '-', at most 63 characters"
        )
    targets = list(mapping.values())
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise ConfigError(
            f"namespace mapping sends several namespaces to {twice}: map each to its own"
        )


def _named(obj: BackedUpObject, names: Collection[str]) -> bool:
    """True when a resource filter names the object's resource.

    True when a resource filter names the object's resource (`*`, `configmaps`,
    `deployments.apps`, or its kind, e.g. `deployment`).
    """
    wanted = {str(n).strip().lower() for n in names}
    return bool(wanted & {"*", obj.resource, obj.group_resource, obj.kind.lower()})


def _selected(
    obj: BackedUpObject,
    namespaces: Collection[str] | None,
    included: Collection[str] | None,
    excluded: Collection[str] | None,
) -> bool:
    """Whether Velero's restore takes the object, given the restore's filters."""
    if obj.group_resource in NON_RESTORABLE:
        return False
    if included and not _named(obj, included):
        return False
    if excluded and _named(obj, excluded):
        return False
    if namespaces is None or "*" in namespaces:
        return True
    if obj.namespace is not None:
        return obj.namespace in namespaces
    # with a namespace filter Velero restores no cluster-scoped object but those namespaces
    return obj.group_resource == "namespaces" and obj.name in namespaces


def plan_restore(
    objects: Iterable[BackedUpObject],
    existing: Mapping[ObjectKey, Mapping[str, Any]],
    namespace_mapping: Mapping[str, str] | None = None,
    existing_policy: str = "none",
    included_resources: Collection[str] | None = None,
    excluded_resources: Collection[str] | None = None,
    included_namespaces: Collection[str] | None = None,
) -> RestorePlan:
    """What restoring `objects` into a cluster holding `existing` will do.

    What a Velero restore will do, decided before it runs: per object of the backup, create it,
    skip it (already there, the same), or meet a different copy already in the cluster.

    It follows Velero v1.18's restore (pkg/restore/restore.go,
    pkg/controller/restore_controller.go):

    - an object absent from the cluster is created, in its mapped namespace;
    - an existing object is compared with the backed-up one after Velero's own reset (metadata
      uid, resourceVersion, generation, creationTimestamp, ownerReferences... and status removed);
      equal: nothing happens; different: with `existingResourcePolicy: none` Velero leaves it as it
      is and only warns ("the in-cluster version is different than the backed-up version"), with
      `update` it patches it to the backed-up version;
    - Namespaces are never updated (an existing one is used as it is); ServiceAccounts that differ
      are always merged (secrets, image pull secrets, labels and annotations added);
    - nodes, events, Velero's own backups/restores/repositories, csinodes and volumeattachments are
      never restored.

    `normalize` is wider than Velero's reset: it also drops what a restore or the cluster rewrites
    anyway (managedFields, Service cluster IPs and node ports, restore labels, ...), so a plan lists
    only differences that matter; Velero, comparing more strictly, may warn about more objects.

    Args:
        objects: the backup's objects (read_backup_tarball).
        existing: the target cluster's live objects, keyed by object_key under their restored
            names (mapped namespace; a Namespace under its mapped name).
        namespace_mapping: source namespace -> namespace restored into (the Restore's
            `namespaceMapping`).
        existing_policy: the Restore's `existingResourcePolicy`: `none` or `update`.
        included_resources: the Restore's `includedResources` (`*`, `configmaps`,
            `deployments.apps`, ...).
        excluded_resources: the Restore's `excludedResources`; an excluded resource is never
            restored, even when also included.
        included_namespaces: the Restore's `includedNamespaces` (source names; None or `*`:
            all). With a list, cluster-scoped objects other than those namespaces are not
            restored, as Velero does by default.

    Raises:
        ConfigError: an unknown policy, or a mapping to invalid or shared namespace names.
    """
    if existing_policy not in POLICIES:
        raise ConfigError(f"existing_policy {existing_policy!r}: use none or update")
    mapping = dict(namespace_mapping or {})
    _check_mapping(mapping)
    entries = []
    for obj in objects:
        if not _selected(obj, included_namespaces, included_resources, excluded_resources):
            continue
        is_namespace = obj.group_resource == "namespaces"
        name = map_namespace(obj.name, mapping) if is_namespace else obj.name
        namespace = map_namespace(obj.namespace, mapping)
        source = ""
        if is_namespace and name != obj.name:
            source = obj.name
        elif namespace != obj.namespace:
            source = f"{obj.namespace}/{obj.name}"
        key = object_key(obj.group, obj.resource, namespace, name)
        live = existing.get(key)
        fields: tuple[str, ...] = ()
        if made_by_kubernetes(obj.group, obj.resource, obj.body):
            action = RestoreAction.KUBERNETES
        elif live is None:
            action = RestoreAction.CREATE
        else:
            fields = tuple(diff_paths(normalize(obj.body, mapping), normalize(live)))
            if not fields:
                action = RestoreAction.SKIP
            elif obj.group_resource == "serviceaccounts":
                action = RestoreAction.MERGE
            elif existing_policy == "update" and not is_namespace:
                action = RestoreAction.UPDATE
            else:
                action = RestoreAction.KEEP_DIFFERS
        entries.append(
            PlanEntry(obj.group, obj.resource, obj.kind, namespace, name, action, fields, source)
        )
    return RestorePlan(tuple(entries), existing_policy)

"""Restore drills, pure: restore a backup into scratch namespaces, then prove what came back."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError
from core.names import is_dns_label
from core.recovery.contents import BackedUpObject, ObjectKey
from core.recovery.restore_plan import diff_paths, made_by_kubernetes, map_namespace, normalize

DRILL_KINDS = ("deployments.apps", "services", "configmaps", "secrets")
_SHOWN_FIELDS = 5


def scratch_mapping(namespaces: Iterable[str], suffix: str) -> dict[str, str]:
    """Each namespace's scratch twin: `kyb-production` -> `drill-<suffix>-kyb-production`.

    A name longer than 63 characters is cut and ends with 8 hex characters of a hash of the
    full name, so it stays a valid namespace name, the same for the same input, and distinct
    between namespaces.

    Raises:
        ConfigError: an invalid namespace name, or a suffix that is not lowercase letters,
            digits and '-' (e.g. a date 20261126 or a run's short id).
    """
    if not is_dns_label(suffix):
        raise ConfigError(
            f"drill suffix {suffix!r} is invalid: use lowercase letters, digits and '-', e.g. "
            "20261126 or a run's short id"
        )
    mapping = {}
    for ns in namespaces:
        if not is_dns_label(ns):
            raise ConfigError(f"namespace {ns!r} is not a valid namespace name")
        full = f"drill-{suffix}-{ns}"
        if len(full) > 63:
            digest = hashlib.sha256(full.encode()).hexdigest()[:8]
            full = f"{full[:54].rstrip('-')}-{digest}"
        mapping[ns] = full
    return mapping


@dataclass(frozen=True)
class DrillFailure:
    """One backed-up object the restore did not bring back as it was."""

    kind: str
    namespace: str  # where it should be (the scratch namespace)
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}: {self.reason}"


@dataclass(frozen=True)
class DrillResult:
    """What a drill found: objects checked per kind, and each problem found (`findings`)."""

    checked: dict[str, int] = field(default_factory=dict)
    findings: tuple[DrillFailure, ...] = ()

    @property
    def failures(self) -> list[str]:
        """Each problem in one line, e.g.

        `Service drill-x-kyb-production/web: missing after the restore`.
        """
        return [str(f) for f in self.findings]

    @property
    def total(self) -> int:
        """Objects checked, all kinds."""
        return sum(self.checked.values())

    @property
    def failed(self) -> int:
        """Objects with at least one failure."""
        return len({(f.kind, f.namespace, f.name) for f in self.findings})

    @property
    def passed(self) -> bool:
        """True when objects were checked and none failed.

        True when objects were checked and none failed (a drill that checks nothing proves
        nothing and does not pass).
        """
        return self.total > 0 and not self.findings

    def summary(self) -> str:
        """One line: passed with what was checked, or how many objects failed."""
        if self.total == 0:
            return (
                "drill failed: nothing to check, the backup holds no Deployment, Service, "
                "ConfigMap or Secret"
            )
        what = ", ".join(_count(n, kind) for kind, n in self.checked.items() if n)
        if self.passed:
            return f"drill passed: {self.total} objects restored as backed up ({what})"
        return (
            f"drill failed: {self.failed} of {self.total} objects not restored as backed up "
            f"({what} checked)"
        )

    def rows(self) -> list[str]:
        """A markdown table: one row per kind (checked, failed), then one per failure."""
        lines = ["| kind | checked | failed |", "|---|---|---|"]
        for kind, n in self.checked.items():
            label = _KIND_NAMES.get(kind, kind)
            failed = len({(f.namespace, f.name) for f in self.findings if f.kind == label})
            lines.append(f"| {label} | {n} | {failed} |")
        if self.findings:
            lines += ["", "| object | problem |", "|---|---|"]
            lines += [f"| {f.kind} {f.namespace}/{f.name} | {f.reason} |" for f in self.findings]
        return lines


_KIND_NAMES = {
    "deployments.apps": "Deployment",
    "services": "Service",
    "configmaps": "ConfigMap",
    "secrets": "Secret",
}


def _count(n: int, kind: str) -> str:
    """`1 Deployment`, `3 Secrets`."""
    label = _KIND_NAMES.get(kind, kind)
    return f"{n} {label}" + ("s" if n != 1 else "")


def _fields(paths: list[str]) -> str:
    shown = ", ".join(paths[:_SHOWN_FIELDS])
    more = f" and {len(paths) - _SHOWN_FIELDS} more" if len(paths) > _SHOWN_FIELDS else ""
    return shown + more


def deployment_unavailable(live: Mapping[str, Any]) -> str:
    """Why a Deployment is not available ("" when it is).

    fewer available replicas than `spec.replicas` (default 1), or its Available condition False.
    """
    want = (live.get("spec") or {}).get("replicas", 1)
    status = live.get("status") or {}
    available = status.get("availableReplicas") or 0
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Available" and cond.get("status") == "False":
            why = cond.get("message") or cond.get("reason") or "Available is False"
            return f"not available: {why}"
    if available < want:
        return f"not available: {available} of {want} replicas available"
    return ""


def check_restore(
    backed_up: Iterable[BackedUpObject],
    restored: Mapping[ObjectKey, Mapping[str, Any]],
    namespace_mapping: Mapping[str, str] | None = None,
) -> DrillResult:
    """Check a drill's restore.

    A drill maps each backed-up namespace to a scratch one (`scratch_mapping`), restores into it
    and checks (`check_restore`) that every Deployment, Service, ConfigMap and Secret of the backup
    is there, equal to the backed-up one, and that every Deployment is available.

    every backed-up Deployment, Service, ConfigMap and Secret is in its scratch namespace, equal to
    the backed-up one (see restore_plan.normalize), and every Deployment is available.

    Objects Kubernetes makes itself (the kube-root-ca.crt ConfigMap, service-account token
    Secrets) are not checked. A difference names the fields, never their values.

    Args:
        backed_up: the backup's objects (read_backup_tarball).
        restored: the live objects of the scratch namespaces, keyed by object_key.
        namespace_mapping: source namespace -> scratch namespace (scratch_mapping).
    """
    checked = dict.fromkeys(DRILL_KINDS, 0)
    failures = []
    for obj in backed_up:
        kind = obj.group_resource
        if kind not in checked or obj.namespace is None:
            continue
        if made_by_kubernetes(obj.group, obj.resource, obj.body):
            continue
        checked[kind] += 1
        namespace = map_namespace(obj.namespace, namespace_mapping) or ""
        label = _KIND_NAMES[kind]
        live = restored.get((obj.group, obj.resource, namespace, obj.name))
        if live is None:
            failures.append(DrillFailure(label, namespace, obj.name, "missing after the restore"))
            continue
        fields = diff_paths(normalize(obj.body, namespace_mapping), normalize(live))
        if fields:
            reason = f"differs from the backup in {_fields(fields)}"
            failures.append(DrillFailure(label, namespace, obj.name, reason))
        if kind == "deployments.apps":
            why = deployment_unavailable(live)
            if why:
                failures.append(DrillFailure(label, namespace, obj.name, why))
    return DrillResult(checked, tuple(failures))

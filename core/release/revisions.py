"""Revision history and the undo patch of a Deployment, as `kubectl rollout undo` has them."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"


@dataclass(frozen=True)
class Revision:
    """One revision of a Deployment: the ReplicaSet that holds its pod template."""

    number: int
    replicaset: str
    image: str
    template: dict[str, Any]


def history(deployment: dict[str, Any], replicasets: list[dict[str, Any]]) -> list[Revision]:
    """Revisions of a Deployment (API JSON), oldest first, from the ReplicaSets it owns."""
    uid = deployment["metadata"]["uid"]
    found = []
    for rs in replicasets:
        meta = rs.get("metadata", {})
        owners = meta.get("ownerReferences") or []
        number = (meta.get("annotations") or {}).get(REVISION, "")
        if not any(o.get("uid") == uid for o in owners) or not number.isdigit():
            continue
        template = rs["spec"]["template"]
        containers = template.get("spec", {}).get("containers") or [{}]
        found.append(Revision(int(number), meta["name"], containers[0].get("image", ""), template))
    return sorted(found, key=lambda r: r.number)


def current_revision(deployment: dict[str, Any]) -> int:
    """The revision the Deployment is at (0 before its first rollout)."""
    value = (deployment["metadata"].get("annotations") or {}).get(REVISION, "0")
    return int(value) if value.isdigit() else 0


def rollback_target(revisions: list[Revision], current: int, to_revision: int = 0) -> Revision:
    """The revision to go back to: the one before current, or to_revision when given (> 0).

    Raises:
        ConfigError: no earlier revision exists, or to_revision is unknown or is the current one.
    """
    known = ", ".join(str(r.number) for r in revisions) or "none"
    if to_revision < 0:
        raise ConfigError(f"to_revision must be 0 (the previous one) or a revision: {known}")
    if to_revision:
        if to_revision == current:
            raise ConfigError(f"revision {to_revision} is already the current one", known=known)
        for rev in revisions:
            if rev.number == to_revision:
                return rev
        raise ConfigError(f"revision {to_revision} does not exist: choose one of {known}")
    earlier = [r for r in revisions if r.number < current]
    if not earlier:
        raise ConfigError(f"no revision before {current} to roll back to", known=known)
    return earlier[-1]


def undo_patch(target: Revision) -> list[dict[str, Any]]:
    """A JSON patch replacing the pod template with target's, without the ReplicaSet hash label.

    Replacing (not merging) the template is what `kubectl rollout undo` does: a container or env
    var that only the newer revision had must go too.
    """
    template = copy.deepcopy(target.template)
    labels = template.get("metadata", {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return [{"op": "replace", "path": "/spec/template", "value": template}]

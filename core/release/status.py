"""Read a Deployment's rollout state from its status, as `kubectl rollout status` does (pure)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class RolloutState(StrEnum):
    """Where a Deployment's rollout stands."""

    PROGRESSING = "Progressing"
    COMPLETE = "Complete"
    DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


def rollout_state(deployment: dict[str, Any]) -> tuple[RolloutState, str]:
    """Return the rollout state of a Deployment (API JSON, camelCase) and a one-line reason."""
    meta, spec, status = (deployment.get(k) or {} for k in ("metadata", "spec", "status"))
    generation = meta.get("generation", 0)
    observed = status.get("observedGeneration", 0)
    if observed < generation:
        return RolloutState.PROGRESSING, "waiting for the controller to observe the new spec"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return RolloutState.DEADLINE_EXCEEDED, cond.get(
                "message"
            ) or "progress deadline exceeded"
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < want:
        return RolloutState.PROGRESSING, f"{updated} of {want} new replicas updated"
    if total > updated:
        return RolloutState.PROGRESSING, f"{total - updated} old replicas pending termination"
    if available < updated:
        return RolloutState.PROGRESSING, f"{available} of {updated} updated replicas available"
    return RolloutState.COMPLETE, f"{updated} replicas updated and available"

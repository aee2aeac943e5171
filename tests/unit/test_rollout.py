"""Table tests for reading a Deployment's rollout state (pure, no cluster)."""

from __future__ import annotations

import pytest

from core.release.status import RolloutState, rollout_state

DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "web-2" has timed out progressing.',
}


def dep(generation=2, observed=2, replicas=3, updated=3, total=3, available=3, conditions=()):
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "replicas": total,
            "availableReplicas": available,
            "conditions": list(conditions),
        },
    }


@pytest.mark.parametrize(
    ("deployment", "state", "why"),
    [
        (dep(), RolloutState.COMPLETE, "3 replicas updated and available"),
        (dep(observed=1), RolloutState.PROGRESSING, "observe the new spec"),
        (dep(updated=1, total=4), RolloutState.PROGRESSING, "1 of 3 new replicas updated"),
        (dep(total=4), RolloutState.PROGRESSING, "1 old replicas pending termination"),
        (dep(available=2), RolloutState.PROGRESSING, "2 of 3 updated replicas available"),
        (dep(updated=1, conditions=[DEADLINE]), RolloutState.DEADLINE_EXCEEDED, "timed out"),
        (dep(observed=1, conditions=[DEADLINE]), RolloutState.PROGRESSING, "observe"),
        (dep(replicas=0, updated=0, total=0, available=0), RolloutState.COMPLETE, "0 replicas"),
        ({}, RolloutState.PROGRESSING, "0 of 1 new replicas"),
    ],
)
def test_rollout_state(deployment: dict, state: RolloutState, why: str) -> None:
    got, reason = rollout_state(deployment)
    assert got is state
    assert why in reason

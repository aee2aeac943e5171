"""The reconcile flow leaves live releases alone and corrects a record whose end was lost."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from uuid import UUID

from prefect import resume_flow_run
from prefect.client.orchestration import get_client

from blocks import KubernetesCluster
from flows.reconcile import reconcile
from tests.integration.release_helpers import V1, V2, Scripted, deployments, release_flow, spec
from tests.integration.test_release_events import _events
from tests.integration.test_rollback_preempts import CANARY, _paused_run


def _labels(run_id: UUID) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        return {k: v for k, v in client.read_flow_run(run_id).labels.items() if "kyb" in k}


def test_a_release_waiting_for_a_person_is_left_alone(namespace) -> None:
    cluster = KubernetesCluster.load("local")
    assert release_flow(spec(namespace, V1, CANARY), Scripted()).ok
    since, results = datetime.now(UTC), []
    waiting = threading.Thread(
        target=lambda: results.append(release_flow(spec(namespace, V2, CANARY), Scripted()))
    )
    waiting.start()
    run_id = _paused_run(since)
    try:
        # it still renews its lock: its run is alive, however long the person takes
        assert reconcile(namespaces=[namespace]) == []
        assert deployments(cluster, namespace)["web-canary"][1] > 0
        assert not any(k.endswith(".reconciled") for k in _labels(UUID(run_id)))
    finally:
        answer = {"choice": "promote-full", "decided_by": "test", "reason": "done looking"}
        resume_flow_run(UUID(run_id), run_input=answer)
        waiting.join(120)
    [released] = results
    assert released.ok, released.summary


def test_a_completed_run_whose_end_went_unrecorded_reads_succeeded(namespace) -> None:
    since = datetime.now(UTC)
    state = release_flow(spec(namespace, V1, CANARY), Scripted(), return_state=True)
    run_id = state.state_details.flow_run_id
    [result] = [k for k in _labels(run_id) if k.endswith(".result")]
    with get_client(sync_client=True) as client:  # as if the server was away at its end
        client.update_flow_run_labels(run_id, {result: "running"})

    [row] = reconcile(namespaces=[namespace])

    assert "nothing to do" in row["what was done"]
    labels = _labels(run_id)
    assert labels[result] == "succeeded"
    assert "its end went unrecorded" in labels[result.replace(".result", ".cause")]
    assert reconcile(namespaces=[namespace]) == []  # reconciled once
    # the event prefect.yaml's notify-reconciled-releases turns into a notification
    env = result.split(".")[2]
    found = _events(f"kyb.app.{env}.web", since, {"kyb.release.reconciled": 1})
    [told] = [e for e in found if e.event == "kyb.release.reconciled"]
    assert told.payload["run"] == str(run_id) and "nothing to do" in told.payload["action"]

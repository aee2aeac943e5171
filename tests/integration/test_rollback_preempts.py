"""An emergency rollback never waits behind a release that waits for a person: it aborts it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType

from blocks import KubernetesCluster
from flows.rollback import rollback
from tests.integration.release_helpers import V1, V2, Scripted, deployments, release_flow, spec

CANARY = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}}


def _paused_run(since: datetime, timeout: float = 120) -> str:
    """The id of the `release-under-test` run started since `since` once it waits at a pause."""
    where = FlowRunFilter(
        start_time=FlowRunFilterStartTime(after_=since),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            found = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["release-under-test"])),
                flow_run_filter=where,
            )
        if found:
            return str(found[0].id)
        time.sleep(0.5)
    raise AssertionError("the release never reached its pause")


def test_an_emergency_rollback_aborts_a_release_waiting_at_a_pause(namespace, record_property):
    cluster = KubernetesCluster.load("local")
    assert release_flow(spec(namespace, V1, CANARY), Scripted()).ok  # a first deploy: no pause
    since = datetime.now(UTC)
    results: list = []
    waiting = threading.Thread(
        target=lambda: results.append(release_flow(spec(namespace, V2, CANARY), Scripted()))
    )
    waiting.start()
    run_id = _paused_run(since)
    canary = deployments(cluster, namespace)["web-canary"]
    assert canary[0] == V2 and canary[1] > 0  # the canary serves, and the release waits

    started = time.monotonic()
    done = rollback("web", namespace)
    took = time.monotonic() - started
    waiting.join(120)
    record_property("seconds_to_clean", round(took, 1))  # benchmarks/faults.py prints it

    assert done["preempted"] == [run_id]
    assert done["image"] == V1 and "nothing further back" in done["summary"]
    assert took < 120, f"the rollback took {took:.0f}s"  # not the lock's 1800 s
    [released] = results
    assert not released.ok
    assert released.decisions[-1].decided_by.startswith("rollback ")
    assert "emergency rollback" in released.decisions[-1].reason
    assert released.record.result == "aborted"
    found = deployments(cluster, namespace)
    assert found["web"][:2] == (V1, 3)
    assert found.get("web-canary", (V2, 0))[1] == 0

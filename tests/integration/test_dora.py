"""DORA figures from real flow runs on the platform's Prefect server, and the published report."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prefect import flow
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Completed, Crashed, Failed, Running, State

from core.delivery.dora import dora
from flows.dora import dora_report
from sandbox.platform import Platform
from tasks.dora import facts_from_prefect


@flow(name="release")
def fake_release(spec: dict[str, Any], commit_time: str = "", fail: bool = False) -> str:
    """Stands in for the release flow: same name and `spec`; raises as a rolled-back one does."""
    if fail:
        raise RuntimeError("rolled back")
    return spec["image"]


@flow(name="rollback")
def fake_rollback(app: str, namespace: str) -> None:
    """Stands in for the manual rollback flow: same name and parameters."""


@flow(name="delivery")
def fake_delivery(app: str, environment: str, commit: str, commit_time: str) -> str:
    """Stands in for the delivery flow: releases to production as a subflow."""
    return fake_release({"app": app, "namespace": f"kyb-{environment}", "image": "kyb:2"})


def record(run_flow: Any, parameters: dict[str, Any], end: State) -> None:
    """A flow run of `run_flow` created Running and then moved to `end`, as a worker would."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(run_flow, parameters=parameters, state=Running())
        if end.is_final():
            client.set_flow_run_state(run.id, end, force=True)


def ago(hours: float) -> str:
    """An ISO timestamp `hours` ago."""
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


@pytest.fixture
def app(platform: Platform) -> str:
    """An app name no other test's runs share."""
    return f"dora-{uuid.uuid4().hex[:8]}"


def test_dora_figures_from_real_runs(app: str) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    prod = {"app": app, "namespace": "kyb-production", "image": "kyb:1"}
    record(fake_release, {"spec": prod, "commit_time": ago(1)}, Completed())  # 1: lead 1h
    record(fake_release, {"spec": prod}, Failed())  # 2: rolled back automatically
    record(fake_release, {"spec": prod, "commit_time": ago(2)}, Completed())  # 3: lead 2h
    record(fake_release, {"spec": prod, "commit_time": ago(3)}, Completed())  # 4: lead 3h
    record(fake_rollback, {"app": app, "namespace": "kyb-production"}, Completed())  # undoes 4
    record(fake_release, {"spec": prod}, Crashed())  # 5: crashed
    record(fake_release, {"spec": {**prod, "namespace": "kyb-staging"}}, Failed())  # not prod
    record(fake_release, {"spec": prod}, Cancelled())  # not a fact
    record(fake_release, {"spec": prod}, Running())  # still running: not a fact
    state = fake_delivery(app, "production", "abc123", ago(0.5), return_state=True)  # 6: 30m
    assert state.is_completed()
    until = datetime.now(UTC) + timedelta(minutes=1)

    facts = facts_from_prefect(since, until, app=app)
    assert len(facts) == 8  # 6 production releases, the staging one, the rollback
    assert sum(f.commit == "abc123" for f in facts) == 1  # lent by the delivery run
    report = dora(facts, since, until)
    assert (report.attempts, report.deployments) == (6, 4)
    # 2 failed automatically, 4 was rolled back by hand, 5 crashed: 3 / 6
    assert report.change_failure_rate.value == pytest.approx(0.5)
    assert report.failures == {"automatic rollback": 1, "manual rollback": 1, "crashed": 1}
    # leads 30m, 1h, 2h, 3h (plus the seconds the runs took): median 1.5h, p90 the 4th, 3h
    assert report.lead_time_median.sample == 4
    assert report.lead_time_median.value == pytest.approx(1.5 * 3600, abs=300)
    assert report.lead_time_p90.value == pytest.approx(3 * 3600, abs=300)
    assert report.lead_time_missing == 0
    # three incidents (2 -> 3, the rollback itself, 5 -> 6), each restored within the test
    assert report.recovery_median.sample == 3
    assert report.unrecovered == 0
    assert 0 < report.recovery_median.value < (until - since).total_seconds()


def test_dora_report_publishes_the_artifact(app: str) -> None:
    prod = {"app": app, "namespace": "kyb-production", "image": "kyb:1"}
    record(fake_release, {"spec": prod, "commit_time": ago(2)}, Completed())
    record(fake_release, {"spec": prod}, Failed())

    result = dora_report(days=1, app=app)
    assert (result["attempts"], result["deployments"]) == (2, 1)
    assert result["change_failure_rate"]["value"] == pytest.approx(0.5)
    assert result["band"] == "elite"  # one deployment in a one-day window
    artifact = Artifact.get("dora-report")
    assert artifact is not None
    assert "| Change failure rate | 50% | 2 |" in str(artifact.data)
    assert app in str(artifact.description)

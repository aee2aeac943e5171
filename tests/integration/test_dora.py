"""DORA figures and the metrics from real release and rollback runs on the platform.

Each attempt is recorded in its run's labels (core/delivery/record.py) by the code that made it;
the report and the exporter read them back from the Prefect server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prefect import flow
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.states import Crashed, Running

from blocks import KubernetesCluster
from core.delivery.dora import dora
from core.delivery.record import RECORD_TAG, Attempt, Result, labels_of
from core.release.actions import Pause
from core.release.decisions import Choice, Decision
from core.release.observed import Outcome
from core.release.spec import ReleaseSpec
from deployments.metrics import families, read_snapshot
from flows import record
from flows.dora import dora_report
from flows.release.flow import perform_release
from flows.rollback import rollback
from sandbox.platform import BLOCK_NAME
from tasks.dora import facts_from_prefect
from tests.integration.release_helpers import V1, V2, V3, Scripted, spec

CANARY = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}
ANALYSED = {
    "canary": {
        "steps": [{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "error-rate"}]}}]
    }
}


def promote(pause: Pause, spec: ReleaseSpec) -> Decision:
    return Decision(Choice.PROMOTE, "ana", "looks fine")


def abort(pause: Pause, spec: ReleaseSpec) -> Decision:
    return Decision(Choice.ABORT, "ana", "errors up on the dashboard")


@flow(name="release-recorded")
def released(s: ReleaseSpec, runner: Scripted, aborts: bool = False, checks_fail: bool = False):
    """A release as the release flow or a delivery makes it; a delivery's failed checks after."""
    cluster = KubernetesCluster.load(BLOCK_NAME)
    result = perform_release(s, cluster, runner, ask=abort if aborts else promote)
    if checks_fail:  # what flows/delivery.py does when the post-deployment checks fail
        record.mark(result.record, Result.CHECKS_FAILED, "5xx: 34.6% of requests failed")
    return result


def crashed_run(env: str, app: str, ns: str) -> None:
    """A release run whose process died mid-release: its record still says running."""
    attempt = Attempt("release", app, env, ns, Result.RUNNING, datetime.now(UTC), strategy="canary")
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(released, state=Running(), tags=[RECORD_TAG])
        client.update_flow_run_labels(run.id, labels_of(attempt))
        client.set_flow_run_state(run.id, Crashed(), force=True)


def test_every_attempt_counts_as_what_it_was(environment, namespace) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    ok = Scripted()
    assert released(spec(namespace, V1, CANARY), ok).ok  # 1 succeeded (a first deploy)
    assert released(spec(namespace, V2, CANARY), ok).ok  # 2 succeeded
    failing = Scripted({"error-rate": Outcome.FAILED})
    assert not released(spec(namespace, V3, ANALYSED), failing).ok  # 3 rolled back
    assert not released(spec(namespace, V3, CANARY), ok, aborts=True).ok  # 4 aborted
    released(spec(namespace, V3, CANARY), ok, checks_fail=True)  # 5 checks failed
    rollback("web", namespace)  # a manual rollback (of 5)
    crashed_run(environment, "web", namespace)  # 6 crashed
    until = datetime.now(UTC) + timedelta(seconds=5)

    facts = facts_from_prefect(since, until, app="web")
    mine = [f for f in facts if f.environment == environment]
    assert sorted((f.kind, f.result) for f in mine) == sorted(
        [("release", "succeeded")] * 2
        + [
            ("release", "rolled_back"),
            ("release", "aborted"),
            ("release", "checks_failed"),
            ("release", "crashed"),
            ("rollback", "succeeded"),
        ]
    )
    assert {f.strategy for f in mine if f.kind == "release"} == {"canary"}
    report = dora(mine, since, until, (environment,))
    assert (report.attempts, report.deployments) == (6, 3)  # 5's release went through
    assert report.failures == {
        "automatic rollback": 1,
        "aborted": 1,
        "failed checks": 1,
        "crashed": 1,
    }

    series = {
        (m.name, tuple(sorted(s.labels.items()))): s.value
        for m in families(read_snapshot(1))
        for s in m.samples
        if s.labels.get("environment") == environment
    }
    releases = {
        dict(labels)["result"]: value
        for (name, labels), value in series.items()
        if name == "kyb_releases"
    }
    assert releases == {
        "succeeded": 2,
        "rolled_back": 1,
        "aborted": 1,
        "checks_failed": 1,
        "crashed": 1,
    }
    manual = ("kind", "manual")
    assert [
        v for (n, labels), v in series.items() if n == "kyb_rollbacks" and manual in labels
    ] == [1]


def test_a_release_into_a_namespace_no_environment_names_is_not_guessed(namespace) -> None:
    assert released(spec(namespace, V1, CANARY), Scripted()).ok
    assert record.environment_for(namespace) == f"ns-{namespace}"
    since = datetime.now(UTC) - timedelta(minutes=5)
    facts = facts_from_prefect(since, datetime.now(UTC), app="web")
    assert f"ns-{namespace}" in {f.environment for f in facts}


def test_dora_report_publishes_the_artifact(environment, namespace) -> None:
    assert released(spec(namespace, V1, CANARY), Scripted()).ok
    failing = Scripted({"error-rate": Outcome.FAILED})
    assert not released(spec(namespace, V2, ANALYSED), failing).ok

    result = dora_report(days=1, app="web", production=[environment])
    assert (result["attempts"], result["deployments"]) == (2, 1)
    assert result["change_failure_rate"]["value"] == pytest.approx(0.5)
    assert result["band"] == "elite"  # one deployment in a one-day window
    artifact = Artifact.get("dora-report")
    assert artifact is not None
    assert "| Change failure rate | 50% | 2 |" in str(artifact.data)

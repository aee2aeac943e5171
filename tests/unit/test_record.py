"""The delivery record: an attempt written into a run's labels reads back as the same attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.delivery.record import Attempt, Result, attempts_from, labels_of, release_result
from core.release.decisions import Choice, Decision

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def attempt(**kw) -> Attempt:
    base = {
        "kind": "release",
        "app": "web",
        "environment": "production",
        "namespace": "kyb-production",
        "result": Result.SUCCEEDED,
        "started": T0,
        "ended": T0 + timedelta(minutes=5),
        "strategy": "canary",
        "image": "reg/web@sha256:ab",
    }
    return Attempt(**{**base, **kw})


def test_an_attempt_reads_back_from_its_labels() -> None:
    a = attempt(result=Result.ROLLED_BACK, cause="error-rate ended Failed: 34.6% > 5%")
    labels = {**labels_of(a), "kyb.commit": "abc123", "kyb.commit_time": "2026-12-01T09:00:00Z"}
    [back] = attempts_from(labels, run_final=True, run_id="r1")
    assert back == attempt(
        result=Result.ROLLED_BACK,
        cause="error-rate ended Failed: 34.6% > 5%",
        commit="abc123",
        commit_time=T0 - timedelta(hours=1),
        run_id="r1",
    )
    assert labels["kyb.release.production.result"] == "rolled_back"
    assert labels["kyb.release.production.strategy"] == "canary"


def test_the_cluster_block_an_attempt_wrote_to_reads_back() -> None:
    labels = labels_of(attempt(result=Result.RUNNING, ended=None, cluster="prod-eu"))
    assert labels["kyb.release.production.cluster"] == "prod-eu"  # where reconcile looks
    [back] = attempts_from(labels, run_final=True, run_ended=T0 + timedelta(minutes=1))
    assert (back.cluster, back.result) == ("prod-eu", Result.CRASHED)
    assert "kyb.release.production.cluster" not in labels_of(attempt())  # unsaved: none


def test_one_delivery_run_records_each_environment() -> None:
    labels = {
        **labels_of(attempt(environment="staging", namespace="kyb-staging")),
        **labels_of(attempt(started=T0 + timedelta(minutes=9), result=Result.CHECKS_FAILED)),
    }
    found = attempts_from(labels, run_final=True)
    assert [(a.environment, a.result) for a in found] == [
        ("staging", Result.SUCCEEDED),
        ("production", Result.CHECKS_FAILED),
    ]


def test_an_attempt_still_running_in_a_finished_run_crashed() -> None:
    labels = labels_of(attempt(result=Result.RUNNING, ended=None))
    end = T0 + timedelta(minutes=3)
    [crashed] = attempts_from(labels, run_final=True, run_ended=end)
    assert (crashed.result, crashed.ended) == (Result.CRASHED, end)
    [running] = attempts_from(labels, run_final=False)
    assert (running.result, running.ended) == (Result.RUNNING, None)


def test_refusals_and_labels_that_do_not_read_are_no_attempts() -> None:
    assert attempts_from(labels_of(attempt(result=Result.REFUSED)), run_final=True) == []
    assert attempts_from({"kyb.release.production.result": "succeeded"}, run_final=True) == []
    bad = {**labels_of(attempt()), "kyb.release.production.result": "maybe"}
    assert attempts_from(bad, run_final=True) == []
    assert attempts_from({"team": "payments"}, run_final=True) == []


def test_a_cause_is_one_short_line() -> None:
    labels = labels_of(attempt(result=Result.FAILED, cause="a\n  b " + "x" * 500))
    assert labels["kyb.release.production.cause"].startswith("a b x")
    assert len(labels["kyb.release.production.cause"]) == 200


def test_how_a_release_ended_from_its_decisions() -> None:
    person = Decision(Choice.ABORT, "ana", "errors up")
    timeout = Decision(Choice.ABORT, "timeout", "no answer within 60s")
    analysis = Decision(Choice.ABORT, "error-rate analysis", "ended Failed")
    demo = Decision(Choice.ABORT, "demo-mode", "not promoted on no data")
    assert release_result(True, [person]) is Result.SUCCEEDED
    assert release_result(False, [person]) is Result.ABORTED
    assert release_result(False, [timeout]) is Result.ABORTED
    assert release_result(False, [analysis]) is Result.ROLLED_BACK
    assert release_result(False, [demo]) is Result.ROLLED_BACK
    assert release_result(False, []) is Result.ROLLED_BACK

"""AnalysisRun semantics: each limit's edge, no data never Successful, dry-run never deciding."""

from __future__ import annotations

import pytest

from core.analysis.criteria import Criteria
from core.analysis.run import (
    ERROR_RETRY_SECONDS,
    AnalysisRun,
    Measurement,
    MetricRun,
    MetricVerdict,
    combine,
)
from core.analysis.templates import MetricTemplate
from core.release import defaults
from core.release.observed import Outcome

PROM = {"prometheus": {"query": "q"}}
MAX = "result[0] <= 0.05"
OK, BAD, NODATA, ERR = (
    Measurement([0.01]),
    Measurement([0.2]),
    Measurement([]),
    Measurement(None, error="prometheus down"),
)


def metric(name: str = "error-rate", condition: str = MAX, **fields: object) -> MetricTemplate:
    return MetricTemplate(name=name, provider=PROM, success_condition=condition, **fields)


def criteria(condition: str = MAX, failure: str = "") -> Criteria:
    return Criteria.of(metric(condition=condition, failure_condition=failure), {})


def run_of(*measurements: Measurement, **fields: object) -> MetricRun:
    template = metric(**fields)
    run = MetricRun(template, Criteria.of(template, {}))
    for m in measurements:
        run.record(m)
    return run


@pytest.mark.parametrize(
    ("measurement", "outcome"),
    [
        (OK, Outcome.SUCCESSFUL),
        (Measurement([0.05]), Outcome.SUCCESSFUL),
        (Measurement(0.05), Outcome.ERROR),  # a scalar cannot be indexed, as in Argo
        (BAD, Outcome.FAILED),
        (NODATA, Outcome.INCONCLUSIVE),
        (Measurement(None), Outcome.INCONCLUSIVE),
        (Measurement([float("nan")]), Outcome.INCONCLUSIVE),
        (Measurement(float("nan")), Outcome.INCONCLUSIVE),
        (ERR, Outcome.ERROR),
    ],
)
def test_each_measurement_is_classified(measurement: Measurement, outcome: Outcome) -> None:
    assert measurement.outcome(criteria()) is outcome


@pytest.mark.parametrize(
    ("success", "failure", "result", "outcome"),
    [
        # Argo's rules: one condition alone, the other is its negation
        ("result[0] >= 0.95", "", [0.99], Outcome.SUCCESSFUL),
        ("result[0] >= 0.95", "", [0.90], Outcome.FAILED),
        ("", "result[0] > 0.05", [0.01], Outcome.SUCCESSFUL),
        ("", "result[0] > 0.05", [0.2], Outcome.FAILED),
        # both: failure first, success next, neither is Inconclusive
        ("result[0] < 0.01", "result[0] > 0.05", [0.03], Outcome.INCONCLUSIVE),
        ("result[0] < 0.01", "result[0] > 0.05", [0.2], Outcome.FAILED),
        ("result[0] < 0.01", "result[0] > 0.05", [0.001], Outcome.SUCCESSFUL),
        # no data is Inconclusive even where the condition would say success
        ("len(result) == 0 || result[0] < 0.01", "", [], Outcome.INCONCLUSIVE),
        ("len(result) == 0 || result[0] < 0.01", "", [0.001], Outcome.SUCCESSFUL),
        # several series: Argo hands conditions the whole vector
        ("all(result, {# < 0.05})", "", [0.01, 0.02], Outcome.SUCCESSFUL),
        ("all(result, {# < 0.05})", "", [0.01, 0.2], Outcome.FAILED),
        ("result[1] < 0.05", "", [0.01], Outcome.ERROR),  # index out of range
    ],
)
def test_conditions_decide_as_argo_does(
    success: str, failure: str, result: object, outcome: Outcome
) -> None:
    assert Measurement(result).outcome(criteria(success, failure)) is outcome


@pytest.mark.parametrize(
    ("measurements", "fields", "outcome", "done"),
    [
        # failure_limit: at the limit the metric goes on, one over it fails
        ([BAD], {"count": 3, "failure_limit": 1}, Outcome.INCONCLUSIVE, False),
        ([BAD, BAD], {"count": 3, "failure_limit": 1}, Outcome.FAILED, True),
        ([BAD], {"count": 3}, Outcome.FAILED, True),
        # inconclusive_limit
        ([NODATA, NODATA], {"count": 5, "inconclusive_limit": 2}, Outcome.INCONCLUSIVE, False),
        ([NODATA] * 3, {"count": 5, "inconclusive_limit": 2}, Outcome.INCONCLUSIVE, True),
        # consecutive_error_limit (Argo's default 4: the 5th error in a row decides)
        ([ERR] * 4, {"count": 9}, Outcome.INCONCLUSIVE, False),
        ([ERR] * 5, {"count": 9}, Outcome.ERROR, True),
        (
            [ERR, ERR, OK, ERR, ERR],
            {"count": 9, "consecutive_error_limit": 2},
            Outcome.INCONCLUSIVE,
            False,
        ),
        ([ERR, ERR, ERR], {"count": 9, "consecutive_error_limit": 2}, Outcome.ERROR, True),
        # count reached within limits
        ([OK, BAD, OK], {"count": 3, "failure_limit": 1}, Outcome.SUCCESSFUL, True),
        (
            [OK, NODATA, OK],
            {"count": 3, "inconclusive_limit": 1},
            Outcome.SUCCESSFUL,
            True,
        ),
        # within every limit but never successful: no data is never a success
        (
            [BAD, NODATA],
            {"count": 2, "failure_limit": 1, "inconclusive_limit": 1},
            Outcome.INCONCLUSIVE,
            True,
        ),
        # errors are retried: they do not use up `count`
        ([OK, ERR, OK], {"count": 3}, Outcome.INCONCLUSIVE, False),
        ([OK, ERR, OK, OK], {"count": 3}, Outcome.SUCCESSFUL, True),
        # no count: one measurement (no interval), or until the release ends (an interval)
        ([OK], {}, Outcome.SUCCESSFUL, True),
        ([OK] * 50, {"interval": "30s"}, Outcome.INCONCLUSIVE, False),
    ],
)
def test_limits_compare_strictly_like_argo(
    measurements: list[Measurement], fields: dict, outcome: Outcome, done: bool
) -> None:
    verdict = run_of(*measurements, **fields).verdict()
    assert (verdict.outcome, verdict.done) == (outcome, done)


def test_default_consecutive_error_limit_is_argos() -> None:
    assert run_of().template.consecutive_error_limit == defaults.CONSECUTIVE_ERROR_LIMIT == 4
    assert "consecutive errors 5 > consecutiveErrorLimit 4" in run_of(*[ERR] * 5).verdict().reason


def test_no_data_is_never_successful_and_says_so() -> None:
    verdict = run_of(NODATA, BAD, count=2, inconclusive_limit=1, failure_limit=1).verdict()
    assert verdict.outcome is Outcome.INCONCLUSIVE and verdict.done
    assert "none successful: no data is never a success" in verdict.reason
    assert verdict.inconclusives == 1 and verdict.failures == 1


def test_a_metric_that_runs_until_the_end_is_judged_when_terminated() -> None:
    run = run_of(OK, OK, interval="10s")
    assert not run.verdict().done
    verdict = run.terminate()
    assert verdict.outcome is Outcome.SUCCESSFUL
    assert "2/until the release ends measured" in verdict.reason


def test_reason_names_metric_values_and_threshold() -> None:
    verdict = run_of(OK, BAD, BAD, count=5, failure_limit=1).verdict()
    assert verdict.reason.startswith(
        "error-rate: values [0.01], [0.2], [0.2], want success: result[0] <= 0.05"
    )
    assert "failed 2 > failureLimit 1" in verdict.reason
    assert "\n" not in verdict.reason


def test_a_done_metric_takes_no_more_measurements() -> None:
    run = run_of(BAD)
    with pytest.raises(ValueError, match="done"):
        run.record(OK)


def test_terminate_judges_what_exists() -> None:
    assert run_of(OK, count=5).terminate().outcome is Outcome.SUCCESSFUL
    assert run_of(count=5).terminate().outcome is Outcome.INCONCLUSIVE


def test_next_due_follows_initial_delay_interval_and_error_retry() -> None:
    template = metric("m", count=3, interval="1m", initial_delay="30s")
    run = MetricRun(template, Criteria.of(template, {}), started_at=100)
    assert run.next_due(now=100) == 130
    assert run.next_due(now=200) == 200  # overdue: now
    run.record(Measurement([0.01], at=130))
    assert run.next_due(now=131) == 190
    run.record(Measurement(None, error="timeout", at=190))
    assert run.next_due(now=191) == 190 + ERROR_RETRY_SECONDS
    run.record(Measurement([0.01], at=200))
    assert run.next_due(now=201) == 260  # the error did not use up the count of 3
    run.record(Measurement([0.01], at=260))
    assert run.next_due(now=261) is None


def _v(outcome: Outcome, dry_run: bool = False, done: bool = True) -> MetricVerdict:
    return MetricVerdict(f"m-{outcome}", outcome, f"m-{outcome} why", done, dry_run)


@pytest.mark.parametrize(
    ("verdicts", "outcome", "done"),
    [
        ([_v(Outcome.SUCCESSFUL), _v(Outcome.FAILED)], Outcome.FAILED, True),
        ([_v(Outcome.ERROR), _v(Outcome.FAILED)], Outcome.FAILED, True),
        ([_v(Outcome.ERROR), _v(Outcome.INCONCLUSIVE)], Outcome.ERROR, True),
        ([_v(Outcome.SUCCESSFUL), _v(Outcome.INCONCLUSIVE)], Outcome.INCONCLUSIVE, True),
        ([_v(Outcome.SUCCESSFUL), _v(Outcome.SUCCESSFUL)], Outcome.SUCCESSFUL, True),
        (
            [_v(Outcome.SUCCESSFUL), _v(Outcome.INCONCLUSIVE, done=False)],
            Outcome.INCONCLUSIVE,
            False,
        ),
        ([_v(Outcome.FAILED), _v(Outcome.INCONCLUSIVE, done=False)], Outcome.FAILED, True),
        # dry-run metrics are reported, never decide
        ([_v(Outcome.SUCCESSFUL), _v(Outcome.FAILED, dry_run=True)], Outcome.SUCCESSFUL, True),
        ([_v(Outcome.SUCCESSFUL), _v(Outcome.ERROR, dry_run=True)], Outcome.SUCCESSFUL, True),
        ([_v(Outcome.SUCCESSFUL, dry_run=True)], Outcome.INCONCLUSIVE, True),
    ],
)
def test_combine(verdicts: list[MetricVerdict], outcome: Outcome, done: bool) -> None:
    result = combine(verdicts)
    assert (result.outcome, result.done) == (outcome, done)
    assert len(result.metrics) == len(verdicts)


def test_dry_run_failure_is_reported_in_the_reason() -> None:
    result = combine([_v(Outcome.SUCCESSFUL), _v(Outcome.FAILED, dry_run=True)])
    assert "dry-run m-Failed why" in result.reason


def test_analysis_run_end_to_end() -> None:
    metrics = [
        metric("error-rate", count=2, interval="1m"),
        metric("latency", "result[0] <= 0.5", count=2, interval="1m", dry_run=True),
    ]
    run = AnalysisRun.start(metrics, {m.name: Criteria.of(m, {}) for m in metrics}, 0)
    assert set(run.due(now=0)) == {"error-rate", "latency"}
    run.record("latency", Measurement([3.0], at=0))  # dry-run fails
    run.record("error-rate", Measurement([0.01], at=0))
    verdict = run.record("error-rate", Measurement([0.02], at=60))
    assert verdict.outcome is Outcome.SUCCESSFUL and verdict.done
    assert run.due(now=61) == {}

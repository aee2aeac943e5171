"""DORA figures computed from known sequences of release and rollback runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from core.delivery.dora import Kind, Outcome, RunFact, dora, frequency_band

T0 = datetime(2025, 1, 1, tzinfo=UTC)  # the window: five days from T0
END = T0 + timedelta(days=5)
H = 3600.0
OK, FAILED, CRASHED = Outcome.SUCCEEDED, Outcome.FAILED, Outcome.CRASHED


def at(day: int, hour: float) -> datetime:
    """A moment `hour` hours into day `day` of the window."""
    return T0 + timedelta(days=day, hours=hour)


def release(
    ended: datetime,
    outcome: Outcome = OK,
    lead_hours: float | None = None,
    app: str = "kyb",
    env: str = "production",
) -> RunFact:
    """A ten-minute release ending at `ended`, its commit `lead_hours` before that."""
    commit = ended - timedelta(hours=lead_hours) if lead_hours is not None else None
    return RunFact(Kind.RELEASE, app, env, ended - timedelta(minutes=10), ended, outcome, commit)


def rollback(
    started: datetime, minutes: float = 15, outcome: Outcome = OK, app: str = "kyb"
) -> RunFact:
    """A manual rollback of `app` in production."""
    ended = started + timedelta(minutes=minutes)
    return RunFact(Kind.ROLLBACK, app, "production", started, ended, outcome)


# Ten production releases over five days: R2 and R7 rolled back automatically, R4 rolled back
# by hand an hour after it ended, R5 without a commit time; plus runs that must not count.
SEQUENCE = [
    release(at(-1, 23), lead_hours=5),  # before the window
    release(at(0, 10), lead_hours=1),  # R1: lead 1h
    release(at(0, 14), FAILED, lead_hours=2),  # R2: failed, opens incident I1 at 14:00
    release(at(0, 16), lead_hours=0.5),  # R3: lead 30m; restores I1 after 2h
    release(at(1, 10), lead_hours=4),  # R4: lead 4h
    rollback(at(1, 11)),  # R4 failed by hand; incident I2 11:00 -> 11:15, 15m
    release(at(2, 9)),  # R5: no commit time
    release(at(2, 10), FAILED, app="kyb", env="staging"),  # not production
    release(at(2, 12), lead_hours=2),  # R6: lead 2h
    release(at(3, 8), FAILED, lead_hours=1),  # R7: failed, opens incident I3 at 08:00
    release(at(3, 11), lead_hours=1),  # R8: lead 1h; restores I3 after 3h
    release(at(4, 10), lead_hours=6),  # R9: lead 6h
    release(at(4, 20), lead_hours=1 / 3),  # R10: lead 20m
    release(at(5, 1), FAILED),  # after the window
    rollback(at(5, 2)),  # after the window
]


def test_a_known_sequence_gives_the_hand_computed_figures() -> None:
    report = dora(SEQUENCE, T0, END)
    # 10 attempts (R1-R10), 8 succeeded (all but R2 and R7): 8 / 5 days = 1.6 a day, elite.
    assert (report.attempts, report.deployments) == (10, 8)
    assert report.frequency.value == pytest.approx(1.6)
    assert report.frequency.sample == 8
    assert report.band == "elite"
    # Lead times of R1, R3, R4, R6, R8, R9, R10 (R5 has none), sorted:
    # 20m, 30m, 1h, 1h, 2h, 4h, 6h -> median 1h; p90 = ceil(0.9 * 7) = 7th = 6h.
    assert report.lead_time_median.value == pytest.approx(H)
    assert report.lead_time_median.sample == 7
    assert report.lead_time_p90.value == pytest.approx(6 * H)
    assert (report.lead_time_missing, report.lead_time_invalid) == (1, 0)
    # R2 and R7 rolled back automatically, R4 by hand: 3 / 10.
    assert report.change_failure_rate.value == pytest.approx(0.3)
    assert report.change_failure_rate.sample == 10
    assert report.failures == {"automatic rollback": 2, "manual rollback": 1}
    # Incidents: I1 2h, I2 15m, I3 3h -> median 2h.
    assert report.recovery_median.value == pytest.approx(2 * H)
    assert report.recovery_median.sample == 3
    assert report.unrecovered == 0


def test_an_empty_window_gives_no_figures_and_says_why() -> None:
    report = dora([], T0, END)
    assert (report.attempts, report.deployments, report.band) == (0, 0, None)
    for fig in (
        report.frequency,
        report.lead_time_median,
        report.lead_time_p90,
        report.change_failure_rate,
        report.recovery_median,
    ):
        assert fig.value is None
        assert fig.sample == 0
        assert fig.note
    assert "no production deployment attempt" in report.frequency.note


def test_runs_outside_the_window_are_ignored() -> None:
    facts = [release(at(-1, 12), FAILED), release(at(5, 0)), rollback(at(6, 0))]
    report = dora(facts, T0, END)
    assert report.attempts == 0
    assert report.recovery_median.note == "no failure seen in the window"


def test_non_production_runs_are_ignored() -> None:
    facts = [release(at(0, 1), env="staging"), release(at(0, 2), FAILED, env="kyb-dev")]
    assert dora(facts, T0, END).attempts == 0
    assert dora(facts, T0, END, production=("staging", "kyb-dev")).attempts == 2


def test_a_manual_rollback_fails_the_release_before_it_only() -> None:
    facts = [release(at(0, 1)), release(at(0, 2)), rollback(at(0, 3)), release(at(0, 4))]
    report = dora(facts, T0, END)
    # the rollback follows the second release (the first was followed by a release first)
    assert report.failures == {"manual rollback": 1}
    assert report.change_failure_rate.value == pytest.approx(1 / 3)
    assert report.deployments == 3  # it was deployed, then undone
    assert report.recovery_median.value == pytest.approx(15 * 60)


def test_a_manual_rollback_after_an_automatic_one_is_one_failure() -> None:
    facts = [release(at(0, 1), FAILED), rollback(at(0, 2), minutes=30)]
    report = dora(facts, T0, END)
    assert report.failures == {"automatic rollback": 1}
    # one incident: seen at 01:00, restored by the rollback at 02:30
    assert report.recovery_median.value == pytest.approx(1.5 * H)
    assert report.recovery_median.sample == 1


def test_recovery_from_an_automatic_rollback_runs_to_the_next_success() -> None:
    facts = [
        release(at(0, 1), FAILED),  # seen at 01:00
        release(at(0, 2), FAILED),  # still the same incident
        release(at(0, 5), app="other"),  # another app restores nothing here
        release(at(0, 7)),  # restored at 07:00: 6h
    ]
    report = dora(facts, T0, END)
    assert report.recovery_median.value == pytest.approx(6 * H)
    assert (report.recovery_median.sample, report.unrecovered) == (1, 0)
    assert report.change_failure_rate.value == pytest.approx(2 / 4)


def test_a_failure_not_restored_by_the_window_end_is_counted_open() -> None:
    facts = [release(at(0, 1)), release(at(4, 23), CRASHED), rollback(at(4, 23.9), minutes=30)]
    report = dora(facts, T0, END)
    assert report.failures == {"crashed": 1}
    assert report.recovery_median.value is None
    assert report.recovery_median.note == "no failure restored yet"
    assert report.unrecovered == 1


def test_a_failed_rollback_restores_nothing() -> None:
    facts = [release(at(0, 1)), rollback(at(0, 2), outcome=FAILED), rollback(at(0, 3))]
    report = dora(facts, T0, END)
    assert report.recovery_median.value == pytest.approx(H + 15 * 60)  # 02:00 -> 03:15


def test_lead_time_skips_commit_times_after_the_release() -> None:
    facts = [release(at(0, 1), lead_hours=-1), release(at(0, 2), lead_hours=2)]
    report = dora(facts, T0, END)
    assert report.lead_time_invalid == 1
    assert (report.lead_time_median.value, report.lead_time_median.sample) == (2 * H, 1)


def test_only_failed_attempts_give_a_zero_frequency_not_none() -> None:
    report = dora([release(at(0, 1), FAILED)], T0, END)
    assert report.frequency.value == 0
    assert report.band == "low"
    assert report.change_failure_rate.value == 1
    assert report.lead_time_median.note == "no successful production deployment in the window"


@pytest.mark.parametrize(
    ("per_day", "band"),
    [
        (3, "elite"),
        (1, "elite"),
        (0.99, "high"),
        (1 / 7, "high"),
        (0.14, "medium"),
        (1 / 30, "medium"),
        (0.033, "low"),
        (0, "low"),
    ],
)
def test_band_boundaries(per_day: float, band: str) -> None:
    assert frequency_band(per_day) == band


def test_a_week_with_one_deployment_is_high() -> None:
    report = dora([release(at(0, 1))], T0, T0 + timedelta(days=7))
    assert report.band == "high"


def test_the_report_renders_as_markdown_and_json() -> None:
    report = dora(SEQUENCE, T0, END)
    text = report.as_markdown()
    assert "| Deployment frequency | 1.60/day (11.2/week) | 8 |" in text
    assert "| Change failure rate | 30% | 10 |" in text
    assert "| Failed deployment recovery time (median) | 2h 0m | 3 |" in text
    data = json.loads(json.dumps(report.as_dict()))
    assert data["change_failure_rate"] == {"value": 0.3, "sample": 10, "unit": "ratio", "note": ""}
    assert "| - | 0 |" in dora([], T0, END).as_markdown()


def test_a_window_must_have_a_length() -> None:
    with pytest.raises(ValueError, match="must be after"):
        dora([], END, T0)


def test_the_record_s_result_says_why_a_change_failed() -> None:
    def failed(day: int, result: str) -> RunFact:
        outcome = {"crashed": CRASHED, "checks_failed": OK}.get(result, FAILED)
        return RunFact(
            Kind.RELEASE, "kyb", "production", at(day, 1), at(day, 2), outcome, result=result
        )

    facts = [failed(0, r) for r in ("rolled_back", "aborted", "checks_failed", "failed", "crashed")]
    report = dora([*facts, release(at(1, 1))], T0, END)
    assert report.failures == {
        "automatic rollback": 1,
        "aborted": 1,
        "failed checks": 1,
        "failed mid-release": 1,
        "crashed": 1,
    }
    assert (report.attempts, report.deployments) == (6, 2)  # checks failed after deploying
    assert report.recovery_median.sample == 1  # all one incident, restored by the last release

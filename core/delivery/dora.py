"""DORA's four keys computed from the pipeline's own release and rollback runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

PRODUCTION = "production"
DAY = 86400.0
WEEK_PER_DAY = 1 / 7  # deployments a day at once a week
MONTH_PER_DAY = 1 / 30  # deployments a day at once a month (a 30-day month)


class Kind(StrEnum):
    """What a run did: a release (automatic rollback included) or a manual rollback."""

    RELEASE = "release"
    ROLLBACK = "rollback"


class Outcome(StrEnum):
    """How a run ended: succeeded; failed (a release: rolled back automatically); crashed."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CRASHED = "crashed"


@dataclass(frozen=True)
class RunFact:
    """One finished release or rollback run of one app in one environment (UTC datetimes)."""

    kind: Kind
    app: str
    environment: str
    started: datetime
    ended: datetime
    outcome: Outcome
    commit_time: datetime | None = None
    image: str = ""
    commit: str = ""
    run_id: str = ""
    result: str = ""  # the record's result (core/delivery/record.py Result), which says why
    strategy: str = ""


def frequency_band(per_day: float) -> str:
    """The DORA performance band of a deployment frequency (deployments a day).

    The bands follow the deployment-frequency answers of the DORA "State of DevOps" reports
    (2022-2024): "on demand (multiple deploys per day)", "between once per day and once per
    week", "between once per week and once per month", and less often. The reports are surveys
    with these answer buckets, not continuous thresholds, and their clusters are recomputed each
    year (which bucket counts as medium or low differs between reports), so the cut-offs here
    are this module's reading of the buckets, a value on a boundary getting the better band:

    - elite: at least once a day on average,
    - high: at least once a week (1/7 a day),
    - medium: at least once a month (1/30 a day),
    - low: less often.
    """
    if per_day >= 1:
        return "elite"
    if per_day >= WEEK_PER_DAY:
        return "high"
    if per_day >= MONTH_PER_DAY:
        return "medium"
    return "low"


@dataclass(frozen=True)
class Figure:
    """One measured value with its unit and sample size; value None says why in `note`."""

    value: float | None
    sample: int
    unit: str
    note: str = ""


@dataclass(frozen=True)
class DoraReport:
    """The four keys over one window; see `dora` for the rules."""

    window_start: datetime
    window_end: datetime
    deployments: int
    attempts: int
    frequency: Figure
    band: str | None
    lead_time_median: Figure
    lead_time_p90: Figure
    lead_time_missing: int
    lead_time_invalid: int
    change_failure_rate: Figure
    failures: dict[str, int]
    recovery_median: Figure
    unrecovered: int

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (datetimes as ISO 8601 strings)."""
        data = asdict(self)
        data["window_start"] = self.window_start.isoformat()
        data["window_end"] = self.window_end.isoformat()
        return data

    def as_markdown(self) -> str:
        """The report as a markdown artifact: one row per figure, sample sizes included."""
        days = (self.window_end - self.window_start).total_seconds() / DAY
        causes = ", ".join(f"{n} {c}" for c, n in sorted(self.failures.items())) or "none"
        rows = [
            (
                "Deployment frequency",
                _per_day(self.frequency),
                self.frequency,
                f"band: "
                f"{self.band or '-'}; {self.deployments} deployments of {self.attempts} attempts",
            ),
            (
                "Lead time for changes (median)",
                _duration(self.lead_time_median.value),
                self.lead_time_median,
                f"{self.lead_time_missing} without a commit time, "
                f"{self.lead_time_invalid} with a commit time after the release",
            ),
            (
                "Lead time for changes (p90)",
                _duration(self.lead_time_p90.value),
                self.lead_time_p90,
                "nearest rank",
            ),
            (
                "Change failure rate",
                _percent(self.change_failure_rate.value),
                self.change_failure_rate,
                f"failed changes: {causes}",
            ),
            (
                "Failed deployment recovery time (median)",
                _duration(self.recovery_median.value),
                self.recovery_median,
                f"{self.unrecovered} not restored by the window's end",
            ),
        ]
        lines = [
            f"# DORA keys, production, {self.window_start:%Y-%m-%d %H:%M} to "
            f"{self.window_end:%Y-%m-%d %H:%M} UTC ({days:g} days)",
            "",
            "| key | value | sample | note |",
            "|---|---|---|---|",
        ]
        for name, value, fig, extra in rows:
            note = "; ".join(n for n in (fig.note, extra) if n)
            lines.append(f"| {name} | {value} | {fig.sample} | {note} |")
        return "\n".join(lines)


@dataclass
class _Change:
    """A production release and, once known, why it counts as a failed change."""

    fact: RunFact
    failed_by: str = ""


@dataclass
class _Incident:
    """A failure seen at `detected`, restored at `restored` (None: not yet)."""

    detected: datetime
    restored: datetime | None = None


def dora(
    facts: Iterable[RunFact],
    window_start: datetime,
    window_end: datetime,
    production: Collection[str] = (PRODUCTION,),
) -> DoraReport:
    """DORA's four keys for the runs in environments named in `production` over a window.

    Only what was known at `window_end` counts: runs (and rollbacks) after it are ignored.
    A release belongs to the window its run ended in.

    - Deployment frequency: successful production releases in the window, per day.
    - Lead time for changes: commit time to the end of the successful production release, over
      the releases that carry a commit time (median, and p90 by nearest rank); a commit time
      after the release's end is counted as invalid and left out.
    - Change failure rate: failed changes / production release attempts. A change failed if
      its release failed (rolled back automatically), crashed (its outcome is unknown, so it
      never counts as a success), or if a manual rollback of the same app in the same
      environment started after it ended and before the next release of that app ended.
    - Failed deployment recovery time: from the moment a failure was seen (a failed or crashed
      release's end, or a manual rollback's start, whichever opens it) to the next successful
      state of that app in that environment (a successful rollback's end or a successful
      release's end); median over the failures seen in the window that were restored by its
      end. A failure seen while another is still open belongs to the open one.

    Every figure carries its sample size; a figure with no sample is None with a reason, never
    zero.

    Raises:
        ValueError: window_end is not after window_start.
    """
    if window_end <= window_start:
        raise ValueError(f"window_end {window_end} must be after window_start {window_start}")
    changes, incidents = _replay([f for f in facts if f.environment in production], window_end)

    def inside(when: datetime) -> bool:
        return window_start <= when < window_end

    window = [c for c in changes if inside(c.fact.ended)]
    deployed = [c.fact for c in window if c.fact.outcome == Outcome.SUCCEEDED]
    days = (window_end - window_start).total_seconds() / DAY
    failures: dict[str, int] = {}
    for c in window:
        if c.failed_by:
            failures[c.failed_by] = failures.get(c.failed_by, 0) + 1

    leads = [(f.ended - f.commit_time).total_seconds() for f in deployed if f.commit_time]
    valid = sorted(x for x in leads if x >= 0)
    seen = [i for i in incidents if inside(i.detected)]
    restored = [(i.restored - i.detected).total_seconds() for i in seen if i.restored]

    none_deployed = "no successful production deployment in the window"
    if window:
        frequency = Figure(len(deployed) / days, len(deployed), "per day")
        cfr = Figure(sum(failures.values()) / len(window), len(window), "ratio")
    else:
        why = "no production deployment attempt in the window (or none maps to production)"
        frequency, cfr = Figure(None, 0, "per day", why), Figure(None, 0, "ratio", why)
    if valid:
        median, p90 = (
            Figure(statistics.median(valid), len(valid), "s"),
            Figure(_nearest_rank(valid, 90), len(valid), "s"),
        )
    else:
        why = "no valid commit time on any deployment" if deployed else none_deployed
        median, p90 = Figure(None, 0, "s", why), Figure(None, 0, "s", why)
    if restored:
        recovery = Figure(statistics.median(restored), len(restored), "s")
    else:
        why = "no failure seen in the window" if not seen else "no failure restored yet"
        recovery = Figure(None, 0, "s", why)
    return DoraReport(
        window_start=window_start,
        window_end=window_end,
        deployments=len(deployed),
        attempts=len(window),
        frequency=frequency,
        band=frequency_band(frequency.value) if frequency.value is not None else None,
        lead_time_median=median,
        lead_time_p90=p90,
        lead_time_missing=sum(1 for f in deployed if f.commit_time is None),
        lead_time_invalid=len(leads) - len(valid),
        change_failure_rate=cfr,
        failures=failures,
        recovery_median=recovery,
        unrecovered=len(seen) - len(restored),
    )


def _replay(facts: list[RunFact], until: datetime) -> tuple[list[_Change], list[_Incident]]:
    """Walk each app's runs in time order up to `until`: its changes and its incidents."""
    points: list[tuple[datetime, int, RunFact]] = []
    for f in facts:
        if f.kind == Kind.RELEASE:
            points.append((f.ended, 0, f))
        else:
            points.append((f.started, 1, f))
            if f.outcome == Outcome.SUCCEEDED:
                points.append((f.ended, 2, f))
    changes: list[_Change] = []
    incidents: list[_Incident] = []
    last: dict[tuple[str, str], _Change] = {}
    open_: dict[tuple[str, str], _Incident] = {}
    for when, step, f in sorted(points, key=lambda p: (p[0], p[1])):
        if when >= until:
            break
        key = (f.app, f.environment)
        good = step == 2  # a rollback ended well
        if step == 0:  # a release ended
            change = _Change(f, _failed_by(f))
            changes.append(change)
            last[key] = change
            good = not change.failed_by
        elif step == 1 and key in last and not last[key].failed_by:  # a manual rollback began
            last[key].failed_by = "manual rollback"
        if good:  # a good state again
            if key in open_:
                open_.pop(key).restored = when
        elif key not in open_:
            open_[key] = _Incident(when)
            incidents.append(open_[key])
    return changes, incidents


_FAILED_BY = {Outcome.FAILED: "automatic rollback", Outcome.CRASHED: "crashed"}
CAUSES = {
    "rolled_back": "automatic rollback",
    "aborted": "aborted",
    "checks_failed": "failed checks",
    "failed": "failed mid-release",
    "crashed": "crashed",
}  # by the record's result


def _failed_by(fact: RunFact) -> str:
    """Why a release counts as a failed change ("" if it succeeded).

    A release whose post-deployment checks failed was deployed (it counts as a deployment) and is
    a failed change.
    """
    if fact.result == "checks_failed":
        return CAUSES[fact.result]
    if fact.outcome == Outcome.SUCCEEDED:
        return ""
    return CAUSES.get(fact.result) or _FAILED_BY.get(fact.outcome, "failed")


def _nearest_rank(ordered: list[float], percent: float) -> float:
    """The nearest-rank percentile of an ascending, non-empty list (always an observed value)."""
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _duration(seconds: float | None) -> str:
    """A duration for people: 2d 3h, 4h 5m, 6m 7s, 8s ("-" for None)."""
    if seconds is None:
        return "-"
    s = round(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {s % 60}s" if m else f"{s}s"


def _per_day(fig: Figure) -> str:
    """Deployments a day, with a week's worth beside it."""
    return "-" if fig.value is None else f"{fig.value:.2f}/day ({fig.value * 7:.1f}/week)"


def _percent(ratio: float | None) -> str:
    """A ratio as a percentage ("-" for None)."""
    return "-" if ratio is None else f"{ratio:.0%}"

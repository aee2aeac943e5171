"""Prometheus metrics derived from the pipeline's own Prefect runs: releases, rollbacks, backups."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.delivery.dora import Kind, Outcome, RunFact, dora
from tasks.dora import PAGE, facts_from_prefect

DEFAULT_DAYS = 30
DEFAULT_CACHE_SECONDS = 10.0
BACKUP_FLOW = "backup"
DURATION_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)  # seconds; +Inf is added
STRATEGIES = {
    "rolling": "rolling",
    "blueGreen": "blueGreen",
    "blue_green": "blueGreen",
    "canary": "canary",
}
ROLLED_BACK_ERROR = "ReleaseFailed"  # what flows.release raises after an automatic rollback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    """One finished release run: its fact, its strategy kind and its result label."""

    fact: RunFact
    strategy: str
    result: str

    @property
    def seconds(self) -> float:
        """How long the run took, start to end (human pauses included)."""
        return max(0.0, (self.fact.ended - self.fact.started).total_seconds())


@dataclass(frozen=True)
class Snapshot:
    """What one read of the Prefect API found for the window since..until."""

    since: datetime
    until: datetime
    facts: list[RunFact]
    releases: list[Release]
    last_backup: datetime | None


def strategy_of(parameters: Mapping[str, Any]) -> str:
    """The strategy kind (rolling, blueGreen, canary) a run's parameters name, else "unknown".

    A `release` run holds the ReleaseSpec as JSON with aliases, so `spec.strategy` has one of
    `rolling`, `blueGreen`, `canary` set and the others null; a plain string is taken as is.
    """
    spec = parameters.get("spec")
    strategy = spec.get("strategy") if isinstance(spec, Mapping) else None
    strategy = strategy or parameters.get("strategy")
    if isinstance(strategy, str):
        return STRATEGIES.get(strategy, "unknown")
    if isinstance(strategy, Mapping):
        for key, value in strategy.items():
            if value is not None and key in STRATEGIES:
                return STRATEGIES[key]
    return "unknown"


def result_of(fact: RunFact, state_message: str) -> str:
    """The result of a release run, one of the exporter's `result` labels.

    succeeded, rolled_back (the release failed and was rolled back automatically), failed
    (it failed before or outside the rollout, e.g. an invalid spec) or crashed.
    """
    if fact.outcome == Outcome.SUCCEEDED:
        return "succeeded"
    if fact.outcome == Outcome.CRASHED:
        return "crashed"
    return "rolled_back" if ROLLED_BACK_ERROR in state_message else "failed"


def read_snapshot(days: float, now: datetime | None = None) -> Snapshot:
    """Read the release, rollback and backup runs of the last `days` days from the Prefect API."""
    until = now or datetime.now(UTC)
    since = until - timedelta(days=days)
    facts = facts_from_prefect.fn(since, until)  # the plain function: no task run per scrape
    ids = [f.run_id for f in facts if f.kind == Kind.RELEASE and f.run_id]
    with get_client(sync_client=True) as client:
        runs: dict[str, FlowRun] = {}
        for i in range(0, len(ids), PAGE):
            where = FlowRunFilter(id=FlowRunFilterId(any_=ids[i : i + PAGE]))
            runs |= {str(r.id): r for r in client.read_flow_runs(flow_run_filter=where, limit=PAGE)}
        backups = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[BACKUP_FLOW])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
            sort=FlowRunSort.END_TIME_DESC,
            limit=1,
        )
    releases = []
    for fact in facts:
        if fact.kind != Kind.RELEASE:
            continue
        run = runs.get(fact.run_id)
        message = (run.state.message or "") if run and run.state else ""
        strategy = strategy_of(run.parameters) if run else "unknown"
        releases.append(Release(fact, strategy, result_of(fact, message)))
    last = backups[0].end_time if backups else None
    return Snapshot(since, until, facts, releases, last)


def families(snapshot: Snapshot) -> list[Metric]:
    """The metric families for one snapshot (see the module docstring for the semantics)."""
    days = (snapshot.until - snapshot.since).total_seconds() / 86400
    window = f"in the last {days:g} days"
    out: list[Metric] = [
        _gauge(
            "kyb_releases",
            f"Release runs that ended {window}, by result "
            "(succeeded, rolled_back, failed, crashed).",
            ("app", "environment", "strategy", "result"),
            Counter((*_release_key(r), r.result) for r in snapshot.releases),
        ),
        _durations(snapshot.releases, window),
        _gauge(
            "kyb_rollbacks",
            f"Rollbacks {window}: automatic (a release rolled back) or "
            "manual (a finished rollback run, whatever its outcome).",
            ("app", "environment", "kind"),
            _rollbacks(snapshot),
        ),
        _gauge(
            "kyb_time_to_recover_seconds",
            f"Median failed deployment recovery time {window}"
            " (failure seen to the next good state), per app and environment.",
            ("app", "environment"),
            _recovery(snapshot),
        ),
    ]
    out += _dora(snapshot, window)
    backup = GaugeMetricFamily(
        "kyb_last_successful_backup_timestamp_seconds",
        f"End of the last Completed run of the `{BACKUP_FLOW}` flow (Unix time); absent if none.",
    )
    if snapshot.last_backup:
        backup.add_metric([], snapshot.last_backup.timestamp())
    return [*out, backup]


def _release_key(release: Release) -> tuple[str, str, str]:
    return release.fact.app, release.fact.environment, release.strategy


def _gauge(
    name: str, doc: str, labels: Sequence[str], values: Mapping[tuple[str, ...], float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def _durations(releases: Iterable[Release], window: str) -> GaugeHistogramMetricFamily:
    """Release run durations per app, environment, strategy and result, as a gauge histogram."""
    family = GaugeHistogramMetricFamily(
        "kyb_release_duration_seconds",
        f"Durations of the release runs that ended {window} (start to end, pauses included).",
        labels=["app", "environment", "strategy", "result"],
    )
    groups: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for r in releases:
        groups[(*_release_key(r), r.result)].append(r.seconds)
    for key, seconds in sorted(groups.items()):
        buckets = [
            (str(float(le)), float(sum(s <= le for s in seconds))) for le in DURATION_BUCKETS
        ]
        family.add_metric(list(key), [*buckets, ("+Inf", float(len(seconds)))], sum(seconds))
    return family


def _rollbacks(snapshot: Snapshot) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter(
        (r.fact.app, r.fact.environment, "automatic")
        for r in snapshot.releases
        if r.result == "rolled_back"
    )
    counts.update(
        (f.app, f.environment, "manual") for f in snapshot.facts if f.kind == Kind.ROLLBACK
    )
    return counts


def _recovery(snapshot: Snapshot) -> dict[tuple[str, ...], float]:
    """Median recovery per app and environment, by core.delivery.dora's incident rules."""
    groups: dict[tuple[str, str], list[RunFact]] = defaultdict(list)
    for f in snapshot.facts:
        groups[(f.app, f.environment)].append(f)
    medians = {}
    for (app, env), facts in groups.items():
        figure = dora(facts, snapshot.since, snapshot.until, (env,)).recovery_median
        if figure.value is not None:
            medians[(app, env)] = figure.value
    return medians


def _dora(snapshot: Snapshot, window: str) -> list[Metric]:
    """DORA's change failure rate, deployment frequency and median lead time per environment."""
    cfr, frequency, lead = {}, {}, {}
    for env in sorted({f.environment for f in snapshot.facts}):
        report = dora(snapshot.facts, snapshot.since, snapshot.until, (env,))
        for values, figure in (
            (cfr, report.change_failure_rate),
            (frequency, report.frequency),
            (lead, report.lead_time_median),
        ):
            if figure.value is not None:
                values[(env,)] = figure.value
    return [
        _gauge(
            "kyb_dora_change_failure_rate",
            f"Failed changes / release attempts {window} (see core.delivery.dora).",
            ("environment",),
            cfr,
        ),
        _gauge(
            "kyb_dora_deployment_frequency_per_day",
            f"Successful releases a day {window}.",
            ("environment",),
            frequency,
        ),
        _gauge(
            "kyb_dora_lead_time_seconds",
            f"Median commit-to-release time {window}, over releases that carry a commit time.",
            ("environment",),
            lead,
        ),
    ]


class PipelineCollector(Collector):
    """A custom collector: reads the runs of the last `days` days at most every `cache_seconds`.

    The metrics are read back from the Prefect API on each scrape (cached for a few seconds), so
    they survive exporter restarts and need no push gateway. Every count is over a sliding lookback
    window (the last `days` days), so counts can go down as old runs leave the window: they are
    gauges with plain names (`kyb_releases`, not `kyb_releases_total`), and the duration histogram
    is a gauge histogram (`_bucket`, `_gcount`, `_gsum`). A value that cannot be measured (no
    sample in the window, no backup ever) is an absent series, never 0.

    When the Prefect API cannot be read, only `kyb_metrics_prefect_up 0` is exposed, so every
    other series goes absent instead of reporting stale or zero values.
    """

    def __init__(
        self, days: float = DEFAULT_DAYS, cache_seconds: float = DEFAULT_CACHE_SECONDS
    ) -> None:
        if days <= 0:
            raise ValueError(f"days must be positive, not {days}")
        self.days = days
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()  # the HTTP server scrapes from several threads
        self._cached: list[Metric] = []
        self._read_at = -float("inf")

    def collect(self) -> Iterable[Metric]:
        """The cached metric families, refreshed from the Prefect API when older than the cache."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.cache_seconds:
                self._cached = self._refresh()
                self._read_at = time.monotonic()
            return list(self._cached)

    def _refresh(self) -> list[Metric]:
        up = GaugeMetricFamily(
            "kyb_metrics_prefect_up", "1 if the last read of the Prefect API succeeded, else 0."
        )
        started = time.monotonic()
        try:
            found = families(read_snapshot(self.days))
        except Exception as exc:  # a scrape must answer; the reason goes to the log
            log.warning(
                "could not read the pipeline's runs from the Prefect API: %s: %s",
                type(exc).__name__,
                exc,
            )
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        took = GaugeMetricFamily(
            "kyb_metrics_read_seconds", "How long the last read of the Prefect API took."
        )
        took.add_metric([], time.monotonic() - started)
        window = GaugeMetricFamily(
            "kyb_metrics_window_days", "The lookback window of the kyb_* counts, in days."
        )
        window.add_metric([], self.days)
        return [up, took, window, *found]


def pipeline_registry(
    days: float = DEFAULT_DAYS, cache_seconds: float = DEFAULT_CACHE_SECONDS
) -> CollectorRegistry:
    """A registry of its own holding only the pipeline collector (no process metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(days, cache_seconds))
    return registry

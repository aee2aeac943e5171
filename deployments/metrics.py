"""Prometheus metrics derived from the pipeline's own Prefect runs: releases, rollbacks, backups."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from core.delivery.dora import Kind, RunFact, dora
from core.delivery.record import Result
from deployments.metrics_health import health, totals
from deployments.metrics_read import RecordCache, Snapshot, read_snapshot

DEFAULT_DAYS = 30
DEFAULT_CACHE_SECONDS = 10.0
DURATION_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)  # seconds; +Inf is added
STRATEGIES = {
    "rolling": "rolling",
    "blueGreen": "blueGreen",
    "blue_green": "blueGreen",
    "canary": "canary",
}


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


def releases_of(facts: Iterable[RunFact]) -> list[Release]:
    """The release attempts among `facts`, with their strategy kind and result labels."""
    return [
        Release(f, STRATEGIES.get(f.strategy, "unknown"), f.result or "failed")
        for f in facts
        if f.kind == Kind.RELEASE
    ]


def families(snapshot: Snapshot) -> list[Metric]:
    """The metric families for one snapshot (see the module docstring for the semantics)."""
    days = (snapshot.until - snapshot.since).total_seconds() / 86400
    window = f"in the last {days:g} days"
    releases = releases_of(snapshot.facts)
    out: list[Metric] = [
        *totals(snapshot),
        _gauge(
            "kyb_releases",
            f"Release attempts that ended {window}, by result "
            "(succeeded, rolled_back, aborted, checks_failed, failed, crashed).",
            ("app", "environment", "strategy", "result"),
            Counter((*_release_key(r), r.result) for r in releases),
        ),
        _durations(releases, window),
        _gauge(
            "kyb_rollbacks",
            f"Rollbacks {window}: automatic (a release rolled back) or "
            "manual (a finished rollback run, whatever its outcome).",
            ("app", "environment", "kind"),
            _rollbacks(snapshot.facts, releases),
        ),
        _gauge(
            "kyb_time_to_recover_seconds",
            f"Median failed deployment recovery time {window}"
            " (failure seen to the next good state), per app and environment.",
            ("app", "environment"),
            _recovery(snapshot),
        ),
    ]
    return [*out, *_dora(snapshot, window), *health(snapshot)]


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


def _rollbacks(facts: Iterable[RunFact], releases: Iterable[Release]) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter(
        (r.fact.app, r.fact.environment, "automatic")
        for r in releases
        if r.result == Result.ROLLED_BACK
    )
    counts.update((f.app, f.environment, "manual") for f in facts if f.kind == Kind.ROLLBACK)
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
    """DORA's change failure rate, frequency, median lead time and sample, per environment."""
    cfr, frequency, lead, attempts = {}, {}, {}, {}
    for env in sorted({f.environment for f in snapshot.facts}):
        report = dora(snapshot.facts, snapshot.since, snapshot.until, (env,))
        attempts[(env,)] = report.attempts
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
            "kyb_dora_release_attempts",
            f"Release attempts {window}: the sample the change failure rate is over.",
            ("environment",),
            attempts,
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
        self._records = RecordCache()  # every attempt so far, for the *_total counters

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
            found = families(read_snapshot(self.days, cache=self._records))
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

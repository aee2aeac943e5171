"""The counters and the pipeline's own health gauges, which the alert rules read.

Counters count every attempt recorded since the beginning (so `rate()` and `increase()` work)
and exist from the start: zero for every saved Environment, strategy and result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from core.delivery.record import ATTEMPT_RESULTS, Attempt, Result
from deployments.metrics_read import Snapshot

STRATEGIES = {"rolling": "rolling", "blueGreen": "blueGreen", "canary": "canary"}
ROLLBACK_KINDS = ("automatic", "manual")


def _ended(attempts: Iterable[Attempt]) -> list[Attempt]:
    return [a for a in attempts if a.result is not Result.RUNNING]


def totals(snapshot: Snapshot) -> list[Metric]:
    """kyb_release_attempts_total and kyb_rollbacks_total, zero where nothing happened yet."""
    ended = _ended(snapshot.attempts)
    envs = sorted(set(snapshot.environments) | {a.environment for a in ended})
    releases: Counter[tuple[str, str, str]] = Counter(
        {(e, s, str(r)): 0 for e in envs for s in STRATEGIES for r in ATTEMPT_RESULTS}
    )
    rollbacks: Counter[tuple[str, str]] = Counter({(e, k): 0 for e in envs for k in ROLLBACK_KINDS})
    for a in ended:
        if a.kind == "rollback":
            rollbacks[(a.environment, "manual")] += 1
            continue
        releases[(a.environment, STRATEGIES.get(a.strategy, "unknown"), str(a.result))] += 1
        if a.result is Result.ROLLED_BACK:
            rollbacks[(a.environment, "automatic")] += 1
    attempts = CounterMetricFamily(
        "kyb_release_attempts",
        "Release attempts since the first recorded one, by environment, strategy and result "
        "(succeeded, rolled_back, aborted, checks_failed, failed, crashed).",
        labels=["environment", "strategy", "result"],
    )
    for key, value in sorted(releases.items()):
        attempts.add_metric(list(key), value)
    undone = CounterMetricFamily(
        "kyb_rollback_attempts",
        "Rollbacks since the first recorded one: automatic (a release rolled back) or manual "
        "(a rollback run, whatever its outcome).",
        labels=["environment", "kind"],
    )
    for key, value in sorted(rollbacks.items()):
        undone.add_metric(list(key), value)
    return [attempts, undone]


def health(snapshot: Snapshot) -> list[Metric]:
    """Backups, drills, releases waiting past their pause's timeout, deliveries failing."""
    backup = GaugeMetricFamily(
        "kyb_last_successful_backup_timestamp_seconds",
        "End of the last Completed run of the `backup` flow (Unix time); absent if none.",
    )
    if snapshot.last_backup:
        backup.add_metric([], snapshot.last_backup.timestamp())
    drill = GaugeMetricFamily(
        "kyb_last_drill_timestamp_seconds",
        "End of the last finished run of the `dr-drill` flow (Unix time); absent if none.",
    )
    passed = GaugeMetricFamily(
        "kyb_last_drill_success", "1 if the last finished DR drill completed, 0 if it failed."
    )
    if snapshot.last_drill:
        ended, ok = snapshot.last_drill
        drill.add_metric([], ended.timestamp())
        passed.add_metric([], 1.0 if ok else 0.0)
    paused = GaugeMetricFamily(
        "kyb_release_pause_timeout_timestamp_seconds",
        "When the human pause a release run waits at should have ended (Unix time), per run.",
        labels=["app", "environment", "run"],
    )
    for p in snapshot.paused:
        paused.add_metric([p.app, p.environment, p.run], p.timeout.timestamp())
    failing = GaugeMetricFamily(
        "kyb_deliveries_failed_in_a_row",
        "How many of an app's latest finished deliveries failed in a row (0 after a success).",
        labels=["app"],
    )
    for app, count in sorted(snapshot.failing.items()):
        failing.add_metric([app], count)
    return [backup, drill, passed, paused, failing]

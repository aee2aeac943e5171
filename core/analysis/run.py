"""Argo's AnalysisRun semantics as a pure state machine: measurements in, verdicts out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.analysis.templates import MetricTemplate, Threshold
from core.release.observed import Outcome

#: After an Error measurement, retry this soon instead of waiting a full interval (Argo's
#: DefaultErrorRetryInterval).
ERROR_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Measurement:
    """One measurement: a value, or None with no error (no data), or an error message."""

    value: float | None
    error: str | None = None
    at: float = 0.0

    def outcome(self, threshold: Threshold) -> Outcome:
        """Classify this measurement against `threshold`."""
        if self.error is not None:
            return Outcome.ERROR
        if self.value is None or math.isnan(self.value):
            return Outcome.INCONCLUSIVE
        return Outcome.SUCCESSFUL if threshold.contains(self.value) else Outcome.FAILED


@dataclass(frozen=True)
class MetricVerdict:
    """A metric's state: outcome, one-line reason and counters. Not `done`: still Inconclusive."""

    metric: str
    outcome: Outcome
    reason: str
    done: bool = False
    dry_run: bool = False
    successes: int = 0
    failures: int = 0
    inconclusives: int = 0
    errors: int = 0
    consecutive_errors: int = 0


def _values(measurements: Sequence[Measurement]) -> str:
    shown = [
        "error" if m.error else "no data" if m.value is None else f"{m.value:g}"
        for m in measurements[-5:]
    ]
    more = "..., " if len(measurements) > 5 else ""
    return f"values {more}{', '.join(shown)}" if shown else "no measurements"


@dataclass
class MetricRun:
    """Measurements of one metric; `verdict` applies the template's limits.

    Args:
        template: The metric's template (schedule, limits, dry-run).
        threshold: Its success range after argument overrides (see `templates.thresholds`).
        started_at: When the analysis started (the initial delay counts from here).
    """

    template: MetricTemplate
    threshold: Threshold
    started_at: float = 0.0
    measurements: list[Measurement] = field(default_factory=list)
    terminated: bool = False

    def record(self, measurement: Measurement) -> MetricVerdict:
        """Add a measurement and return the new verdict.

        Raises:
            ValueError: The metric already has its final verdict.
        """
        if self.verdict().done:
            raise ValueError(f"metric {self.template.name} is done; no more measurements")
        self.measurements.append(measurement)
        return self.verdict()

    def terminate(self) -> MetricVerdict:
        """End the metric early (its release finished) and judge the measurements so far."""
        self.terminated = True
        return self.verdict()

    def next_due(self, now: float) -> float | None:
        """When to measure next (never before `now`); None once the metric is done."""
        if self.verdict().done:
            return None
        if not self.measurements:
            due = self.started_at + self.template.initial_delay_seconds
        elif self.measurements[-1].error is not None:
            due = self.measurements[-1].at + ERROR_RETRY_SECONDS
        else:
            due = self.measurements[-1].at + self.template.interval_seconds
        return max(due, now)

    def verdict(self) -> MetricVerdict:
        """The metric's verdict from the measurements so far."""
        t = self.template
        counts = {o: 0 for o in Outcome}
        consecutive, decided, seen = 0, None, 0
        for m in self.measurements:
            seen += 1
            outcome = m.outcome(self.threshold)
            counts[outcome] += 1
            consecutive = consecutive + 1 if outcome is Outcome.ERROR else 0
            decided = self._limit_crossed(counts, consecutive)
            if decided:
                break
        stats = {
            "successes": counts[Outcome.SUCCESSFUL],
            "failures": counts[Outcome.FAILED],
            "inconclusives": counts[Outcome.INCONCLUSIVE],
            "errors": counts[Outcome.ERROR],
            "consecutive_errors": consecutive,
        }
        head = f"{t.name}: {_values(self.measurements[:seen])}, want {self.threshold}"
        errors = [m.error for m in self.measurements[:seen] if m.error is not None]
        if errors:
            head += f" (last error: {errors[-1]})"
        if decided:
            outcome, why = decided
            return MetricVerdict(t.name, outcome, f"{head}; {why}", True, t.dry_run, **stats)
        measured = seen - counts[Outcome.ERROR]
        if measured >= t.count or self.terminated:
            done = f"{measured}/{t.count} measured"
            if stats["successes"] >= t.min_samples:
                why = f"{done}, {stats['successes']} successful"
                return MetricVerdict(
                    t.name, Outcome.SUCCESSFUL, f"{head}; {why}", True, t.dry_run, **stats
                )
            why = (
                f"{done}, only {stats['successes']} successful; at least {t.min_samples} "
                "needed (minimum sample size)"
            )
            return MetricVerdict(
                t.name, Outcome.INCONCLUSIVE, f"{head}; {why}", True, t.dry_run, **stats
            )
        why = f"running, {measured}/{t.count} measured"
        return MetricVerdict(
            t.name, Outcome.INCONCLUSIVE, f"{head}; {why}", False, t.dry_run, **stats
        )

    def _limit_crossed(
        self, counts: Mapping[Outcome, int], consecutive: int
    ) -> tuple[Outcome, str] | None:
        t = self.template
        if counts[Outcome.FAILED] > t.failure_limit:
            return (
                Outcome.FAILED,
                f"failed {counts[Outcome.FAILED]} > failureLimit {t.failure_limit}",
            )
        if counts[Outcome.INCONCLUSIVE] > t.inconclusive_limit:
            n = counts[Outcome.INCONCLUSIVE]
            return Outcome.INCONCLUSIVE, (
                f"no data {n} > inconclusiveLimit {t.inconclusive_limit}; at least "
                f"{t.min_samples} successful measurements needed (minimum sample size)"
            )
        if consecutive > t.consecutive_error_limit:
            return Outcome.ERROR, (
                f"consecutive errors {consecutive} > consecutiveErrorLimit "
                f"{t.consecutive_error_limit}"
            )
        return None


@dataclass(frozen=True)
class AnalysisVerdict:
    """The combined verdict of an analysis: outcome, one-line reason, and every metric's verdict."""

    outcome: Outcome
    reason: str
    done: bool
    metrics: tuple[MetricVerdict, ...]


def combine(verdicts: Sequence[MetricVerdict]) -> AnalysisVerdict:
    """Combine metric verdicts: Failed, then Error, then Inconclusive, else Successful.

    Dry-run metrics are listed but never decide. The analysis is done once every deciding metric
    is done, or as soon as one is Failed or Error (Argo terminates the other metrics then).
    An analysis with no deciding metric is Inconclusive: nothing was judged.
    """
    deciding = [v for v in verdicts if not v.dry_run]
    dry = "".join(f" [dry-run {v.reason}]" for v in verdicts if v.dry_run)
    if not deciding:
        return AnalysisVerdict(
            Outcome.INCONCLUSIVE, f"no deciding metric{dry}", True, tuple(verdicts)
        )
    for outcome in (Outcome.FAILED, Outcome.ERROR):
        hit = [v for v in deciding if v.done and v.outcome is outcome]
        if hit:
            reason = "; ".join(v.reason for v in hit) + dry
            return AnalysisVerdict(outcome, reason, True, tuple(verdicts))
    done = all(v.done for v in deciding)
    pending = [v for v in deciding if v.outcome is not Outcome.SUCCESSFUL]
    if pending or not done:
        reason = "; ".join(v.reason for v in pending) + dry
        return AnalysisVerdict(Outcome.INCONCLUSIVE, reason, done, tuple(verdicts))
    reason = "; ".join(v.reason for v in deciding) + dry
    return AnalysisVerdict(Outcome.SUCCESSFUL, reason, True, tuple(verdicts))


@dataclass
class AnalysisRun:
    """Several metric runs judged together (one AnalysisTemplate, or several merged).

    Each measurement of a metric is classified: Successful (value within the threshold), Failed
    (outside), Inconclusive (no data: no value, or NaN such as 0/0 with no traffic) or Error (the
    provider failed). A `MetricRun` then applies Argo's limits, all compared strictly as in Argo's
    `assessMetricFailureInconclusiveOrError`:

    * failures > failure_limit                        -> Failed
    * inconclusives > inconclusive_limit              -> Inconclusive
    * consecutive errors > consecutive_error_limit    -> Error (a non-error measurement resets it;
      Argo's default limit is 4, so the 5th error in a row decides)

    A metric stops at the first limit crossed, so the limits never compete. Errors do not count
    towards `count` (as in Argo, they are retried after ERROR_RETRY_SECONDS); once `count` non-error
    measurements are taken with no limit crossed, the metric is
    Successful only if at least `min_samples` of them succeeded; otherwise Inconclusive: no data is
    never Successful (DESIGN.md, 4). An `AnalysisRun` combines its metrics; dry-run metrics are
    reported but never decide.
    """

    runs: dict[str, MetricRun]

    @classmethod
    def start(
        cls,
        metrics: Sequence[MetricTemplate],
        thresholds: Mapping[str, Threshold],
        started_at: float,
    ) -> AnalysisRun:
        """A run for `metrics`, with each one's threshold from `thresholds` (by metric name)."""
        return cls({m.name: MetricRun(m, thresholds[m.name], started_at) for m in metrics})

    def record(self, metric: str, measurement: Measurement) -> AnalysisVerdict:
        """Add a measurement to `metric` and return the combined verdict."""
        self.runs[metric].record(measurement)
        return self.verdict()

    def due(self, now: float) -> dict[str, float]:
        """{metric: when to measure next} for every metric still running."""
        if self.verdict().done:
            return {}
        times = {name: run.next_due(now) for name, run in self.runs.items()}
        return {name: t for name, t in times.items() if t is not None}

    def verdict(self) -> AnalysisVerdict:
        """The combined verdict so far."""
        return combine([run.verdict() for run in self.runs.values()])

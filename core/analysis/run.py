"""Argo's AnalysisRun semantics as a pure state machine: measurements in, verdicts out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.analysis.criteria import Criteria, no_data
from core.analysis.templates import MetricTemplate
from core.release.observed import Outcome

#: After an Error measurement, retry this soon instead of waiting a full interval (Argo's
#: DefaultErrorRetryInterval).
ERROR_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Measurement:
    """One measurement: the provider's result, or an error message.

    `result` is what Argo's conditions see: a float (a Prometheus scalar), a list of floats (a
    vector), or any JSON value (a web provider); None or empty means no data.
    """

    result: Any
    error: str | None = None
    at: float = 0.0

    def outcome(self, criteria: Criteria) -> Outcome:
        """Classify this measurement by the metric's conditions."""
        return self.judged(criteria)[0]

    def judged(self, criteria: Criteria) -> tuple[Outcome, str | None]:
        """(outcome, why it is an Error or Inconclusive) of this measurement."""
        if self.error is not None:
            return Outcome.ERROR, self.error
        return criteria.judge(self.result)

    def shown(self) -> str:
        """The result in a few characters: `0.012`, `[0.01, 0.02]`, `no data`, `error`."""
        if self.error is not None:
            return "error"
        return show(self.result)


def show(result: Any) -> str:
    """A result in a few characters, for reasons and reports."""
    if no_data(result):
        return "no data"
    if isinstance(result, float):
        return "no data" if math.isnan(result) else f"{result:.4g}"
    if isinstance(result, list | tuple):
        inner = ", ".join(show(v) if isinstance(v, float) else repr(v)[:20] for v in result[:3])
        return f"[{inner}{', ...' if len(result) > 3 else ''}]"
    return repr(result)[:40]


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
    shown = [m.shown() for m in measurements[-5:]]
    more = "..., " if len(measurements) > 5 else ""
    return f"values {more}{', '.join(shown)}" if shown else "no measurements"


@dataclass
class MetricRun:
    """Measurements of one metric; `verdict` applies the template's limits.

    Args:
        template: The metric's template (schedule, limits, dry-run).
        criteria: Its conditions with the analysis's argument values.
        started_at: When the analysis started (the initial delay counts from here).
    """

    template: MetricTemplate
    criteria: Criteria
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
            outcome = m.outcome(self.criteria)
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
        head = f"{t.name}: {_values(self.measurements[:seen])}, want {self.criteria}"
        judged = [m.judged(self.criteria) for m in self.measurements[:seen]]
        errors = [why for outcome, why in judged if outcome is Outcome.ERROR and why]
        if errors:
            head += f" (last error: {errors[-1]})"
        if decided:
            outcome, why = decided
            return MetricVerdict(t.name, outcome, f"{head}; {why}", True, t.dry_run, **stats)
        measured, wanted = seen - counts[Outcome.ERROR], t.measurements
        planned = "until the release ends" if wanted is None else f"{wanted}"
        if (wanted is not None and measured >= wanted) or self.terminated:
            done = f"{measured}/{planned} measured"
            if stats["successes"] >= 1:
                why = f"{done}, {stats['successes']} successful"
                return MetricVerdict(
                    t.name, Outcome.SUCCESSFUL, f"{head}; {why}", True, t.dry_run, **stats
                )
            why = f"{done}, none successful: no data is never a success"
            return MetricVerdict(
                t.name, Outcome.INCONCLUSIVE, f"{head}; {why}", True, t.dry_run, **stats
            )
        why = f"running, {measured}/{planned} measured"
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
                f"inconclusive {n} > inconclusiveLimit {t.inconclusive_limit}"
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
    measurements are taken with no limit crossed (or the release ended a metric that runs until
    then), the metric is Successful if at least one of them succeeded; otherwise Inconclusive: no
    data is never Successful (DESIGN.md, 4). An `AnalysisRun` combines its metrics; dry-run
    metrics are reported but never decide.
    """

    runs: dict[str, MetricRun]

    @classmethod
    def start(
        cls,
        metrics: Sequence[MetricTemplate],
        criteria: Mapping[str, Criteria],
        started_at: float,
    ) -> AnalysisRun:
        """A run for `metrics`, with each one's conditions from `criteria` (by metric name)."""
        return cls({m.name: MetricRun(m, criteria[m.name], started_at) for m in metrics})

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

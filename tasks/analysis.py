"""The Prometheus analysis runner: measures each metric on its schedule and judges it like Argo.

`PrometheusRunner.run` renders the templates an AnalysisRef names (core/templates.py), measures
every metric with an instant query when it is due (interval, count, initialDelay; after an error,
ERROR_RETRY_SECONDS), feeds the values to core.analysis_run.AnalysisRun (failureLimit,
inconclusiveLimit, consecutiveErrorLimit, minimum sample size, dry-run) and, when a judge is
configured, compares canary against stable with core.judge. Every analysis publishes a table
artifact with each metric's query, values, threshold, outcome and why.

Prometheus faults never raise out of `run`: a refused connection or a query error is an Error
measurement, counted towards consecutiveErrorLimit; the verdict is Error, never a promotion.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from prefect.artifacts import create_table_artifact
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from blocks import PrometheusServer
from core.actions import AnalysisPhase
from core.analysis import Verdict
from core.analysis_run import AnalysisRun, AnalysisVerdict, Measurement
from core.errors import ConfigError
from core.judge import Direction, JudgeConfig, JudgeResult, judge
from core.observed import Outcome
from core.spec import AnalysisRef, ReleaseSpec
from core.templates import BUILTINS, AnalysisTemplate, MetricTemplate, Threshold, render, thresholds

#: The `track` argument a phase measures unless the AnalysisRef passes one: the new version's
#: pods carry this label value (canary pods, the blue-green preview, the settled Deployment).
PHASE_TRACK = {
    "step": "canary",
    "background": "canary",
    "prePromotion": "preview",
    "postPromotion": "stable",
    "postDeploy": "stable",
}
QUERY_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Prepared:
    """An AnalysisRef resolved for one release: metrics, rendered queries and thresholds."""

    templates: tuple[AnalysisTemplate, ...]
    metrics: tuple[MetricTemplate, ...]
    queries: dict[str, str]
    thresholds: dict[str, Threshold]
    args: dict[str, str]
    windows: dict[str, str]

    def rendered(self, **overrides: str) -> dict[str, str]:
        """Every metric's query rendered with some arguments replaced (e.g. another track)."""
        args = {**self.args, **overrides}
        return {m.name: _render_one(t, m, {**args, "window": self.windows[m.name]})
                for t in self.templates for m in t.metrics}  # fmt: skip


def _render_one(template: AnalysisTemplate, metric: MetricTemplate, args: dict[str, str]) -> str:
    """One metric's query; a `window` the template does not declare is simply not used."""
    return render(template, args)[metric.name]


def implicit_args(phase: AnalysisPhase | str, spec: ReleaseSpec) -> dict[str, str]:
    """The arguments every analysis gets unless its AnalysisRef sets them."""
    track = PHASE_TRACK.get(str(phase), "stable")
    return {"service-name": spec.app, "namespace": spec.namespace, "track": track}


def window(metric: MetricTemplate, scrape_seconds: float) -> str:
    """A metric's rate window: its interval, as Flagger does (each measurement then sees only what
    happened since the previous one), but never under four scrapes (rate needs two samples)."""
    return f"{math.ceil(max(metric.interval_seconds, 4 * scrape_seconds))}s"


def prepare(
    ref: AnalysisRef,
    phase: AnalysisPhase | str,
    spec: ReleaseSpec,
    templates: Mapping[str, AnalysisTemplate],
    scrape_seconds: float = 15.0,
) -> Prepared:
    """Resolve `ref`'s templates, render their queries and thresholds (one AnalysisRun).

    A `window` argument the AnalysisRef does not set is each metric's `window()`.

    Raises:
        ConfigError: a template is unknown, two templates share a metric name, or an argument is
            missing or unsafe.
    """
    given = {a.name: a.value for a in ref.args}
    args = {**implicit_args(phase, spec), **given}
    used: list[AnalysisTemplate] = []
    metrics: list[MetricTemplate] = []
    queries: dict[str, str] = {}
    windows: dict[str, str] = {}
    limits: dict[str, Threshold] = {}
    for name in ref.names:
        template = templates.get(name)
        if template is None:
            known = ", ".join(sorted(templates))
            raise ConfigError(f"no analysis template {name!r}: use one of {known}, or pass it "
                              "in the flow's templates", app=spec.app)  # fmt: skip
        for metric in template.metrics:
            if metric.name in queries:
                raise ConfigError(f"metric {metric.name!r} is in two templates of one analysis: "
                                  "rename one", app=spec.app)  # fmt: skip
            windows[metric.name] = args.get("window") or window(metric, scrape_seconds)
            queries[metric.name] = _render_one(
                template, metric, {**args, "window": windows[metric.name]}
            )
        limits.update(thresholds(template, args))
        metrics.extend(template.metrics)
        used.append(template)
    return Prepared(tuple(used), tuple(metrics), queries, limits, args, windows)


def analysis_refs(spec: ReleaseSpec) -> list[tuple[str, AnalysisRef]]:
    """Every (phase, AnalysisRef) a spec holds, so that all can be checked before a release."""
    s, out = spec.strategy, []
    if s.canary is not None:
        if s.canary.analysis is not None:
            out.append(("background", s.canary.analysis))
        out += [("step", step.analysis) for step in s.canary.steps if step.analysis is not None]
    if s.blue_green is not None:
        for phase, ref in (("prePromotion", s.blue_green.pre_promotion_analysis),
                           ("postPromotion", s.blue_green.post_promotion_analysis)):  # fmt: skip
            if ref is not None:
                out.append((phase, ref))
    if s.rolling is not None and s.rolling.analysis is not None:
        out.append(("postDeploy", s.rolling.analysis))
    return out


def value_of(result: list) -> float | None:
    """The one number of an instant-query result; None for no data.

    Raises:
        ValueError: the query returned several series (aggregate them, e.g. with sum()).
    """
    if len(result) == 2 and not isinstance(result[0], dict):  # a scalar: [time, "value"]
        return float(result[1])
    if not result:
        return None
    if len(result) > 1:
        raise ValueError(f"the query returned {len(result)} series; aggregate them to one "
                         "(sum, avg or max)")  # fmt: skip
    return float(result[0]["value"][1])


def direction_of(threshold: Threshold) -> Direction:
    """Which change the judge counts as worse: a metric with only a minimum must not drop."""
    if threshold.min is not None and threshold.max is None:
        return Direction.DECREASE_IS_BAD
    return Direction.INCREASE_IS_BAD


def artifact_key(spec: ReleaseSpec, key: str) -> str:
    """The artifact key of one analysis of a release (lowercase letters, digits and dashes)."""
    raw = f"analysis-{spec.namespace}-{spec.app}-{key}".lower()
    return re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")[:100]


@dataclass
class PrometheusRunner:
    """Runs analyses against a Prometheus block; implements core.analysis.AnalysisRunner.

    Args:
        prometheus: the Prometheus server block.
        templates: templates by name: the built-ins plus any the user supplies.
        judge: compare canary against stable statistically in canary phases; None: thresholds only.
        baseline_track: the `track` the judge compares the canary against.
        judge_step_seconds: the resolution of the judge's range queries (one sample per step).
        clock, sleep: injectable for tests of the schedule; real time otherwise.
    """

    prometheus: PrometheusServer
    templates: Mapping[str, AnalysisTemplate] = field(default_factory=lambda: dict(BUILTINS))
    judge: JudgeConfig | None = None
    baseline_track: str = "stable"
    judge_step_seconds: float = 2.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    queries: int = 0  # Prometheus queries sent by this runner (benchmarks read it)

    def validate(self, spec: ReleaseSpec) -> None:
        """Raise ConfigError now if any analysis of `spec` could not run (before any write)."""
        for phase, ref in analysis_refs(spec):
            prepare(ref, phase, spec, self.templates, self.prometheus.scrape_interval_seconds)

    def run(
        self, ref: AnalysisRef, phase: AnalysisPhase, spec: ReleaseSpec, key: str = ""
    ) -> Verdict:
        """Measure and judge `ref` for `spec` until the verdict is final; publish the report."""
        try:
            scrape = self.prometheus.scrape_interval_seconds
            prepared = prepare(ref, phase, spec, self.templates, scrape)
        except ConfigError as exc:
            return Verdict(Outcome.ERROR, f"analysis cannot run: {exc}")
        started = self.clock()
        analysis = AnalysisRun.start(prepared.metrics, prepared.thresholds, started)
        conn = self.prometheus.connect()
        verdict = self._measure_until_done(conn, analysis, prepared)
        outcome, reason, judged = verdict.outcome, verdict.reason, None
        if self.judge is not None and str(phase) in ("step", "background"):
            judged = self._judge(conn, prepared, started)
            outcome, reason = _with_judge(outcome, reason, judged)
        report = artifact_key(spec, key or str(phase))
        _publish(report, spec, phase, prepared, analysis, outcome, reason, judged)
        return Verdict(outcome, reason, report)

    def _measure_until_done(
        self, conn: PrometheusConnect, analysis: AnalysisRun, prepared: Prepared
    ) -> AnalysisVerdict:
        while True:
            due = analysis.due(self.clock())
            if not due:
                return analysis.verdict()
            wait = min(due.values()) - self.clock()
            if wait > 0:
                self.sleep(wait)
            now = self.clock()
            for metric, at in sorted(due.items(), key=lambda item: item[1]):
                if at <= now and not analysis.verdict().done:
                    analysis.record(metric, self.measure(conn, prepared.queries[metric], now))

    def measure(self, conn: PrometheusConnect, query: str, at: float) -> Measurement:
        """One instant query; any failure is an Error measurement, never an exception."""
        self.queries += 1
        try:
            return Measurement(value_of(conn.custom_query(query, timeout=QUERY_TIMEOUT_SECONDS)),
                               at=at)  # fmt: skip
        except PrometheusApiClientException as exc:
            return Measurement(None, f"query rejected: {str(exc)[:200]}", at)
        except requests.RequestException as exc:  # the message may hold the URL; the type won't
            return Measurement(None, f"Prometheus unreachable ({type(exc).__name__})", at)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return Measurement(None, f"unusable result: {exc}", at)

    def _judge(self, conn: PrometheusConnect, prepared: Prepared, started: float) -> JudgeResult:
        """Range-query each deciding metric for the canary and the baseline since `started`."""
        start, end = datetime.fromtimestamp(started, UTC), datetime.fromtimestamp(self.clock(), UTC)
        baseline = prepared.rendered(track=self.baseline_track)
        samples: dict[str, tuple[list[float], list[float]]] = {}
        directions: dict[str, Direction] = {}
        for metric in prepared.metrics:
            if metric.dry_run:
                continue
            canary = self._series(conn, prepared.queries[metric.name], start, end)
            stable = self._series(conn, baseline[metric.name], start, end)
            samples[metric.name] = (canary, stable)
            directions[metric.name] = direction_of(prepared.thresholds[metric.name])
        return judge(samples, directions, self.judge)

    def _series(self, conn: PrometheusConnect, query: str, start: datetime,
                end: datetime) -> list[float]:  # fmt: skip
        """One series' values over [start, end]; none on any failure (the judge then abstains)."""
        self.queries += 1
        try:
            result = conn.custom_query_range(query, start, end, f"{self.judge_step_seconds:g}s")
        except (PrometheusApiClientException, requests.RequestException):
            return []
        if len(result) != 1:
            return []
        return [float(v) for _, v in result[0]["values"]]


def _with_judge(outcome: Outcome, reason: str, judged: JudgeResult) -> tuple[Outcome, str]:
    """Thresholds and judge must both pass; the worse outcome wins and both reasons are kept."""
    order = [Outcome.FAILED, Outcome.ERROR, Outcome.INCONCLUSIVE, Outcome.SUCCESSFUL]
    worst = min(outcome, judged.outcome, key=order.index)
    return worst, f"{reason}; judge {judged.outcome}: {judged.reason}"


def _publish(key: str, spec: ReleaseSpec, phase: AnalysisPhase, prepared: Prepared,
             analysis: AnalysisRun, outcome: Outcome, reason: str,
             judged: JudgeResult | None) -> None:  # fmt: skip
    rows = []
    for name, metric_run in analysis.runs.items():
        v = metric_run.verdict()
        values = ["error" if m.error else "no data" if m.value is None else f"{m.value:.4g}"
                  for m in metric_run.measurements]  # fmt: skip
        rows.append({"metric": name, "query": prepared.queries[name],
                     "values": ", ".join(values) or "-", "threshold": str(metric_run.threshold),
                     "outcome": v.outcome.value, "decides": "no (dry-run)" if v.dry_run else "yes",
                     "why": v.reason})  # fmt: skip
    for m in judged.metrics if judged else ():
        rows.append({"metric": f"judge: {m.metric}", "query": "canary vs stable, Mann-Whitney U",
                     "values": f"canary median {m.canary_median}, stable {m.baseline_median}",
                     "threshold": "fails if p < alpha and effect is large",
                     "outcome": m.classification.value, "decides": "yes",
                     "why": m.why})  # fmt: skip
    if judged is not None:
        score = "no score" if judged.score is None else f"score {judged.score:.0f}"
        rows.append({"metric": "judge: overall", "query": "share of metrics passing",
                     "values": score, "threshold": "see why", "outcome": judged.outcome.value,
                     "decides": "yes", "why": judged.reason})  # fmt: skip
    create_table_artifact(
        rows, key=key,
        description=f"{phase} analysis of {spec.app} in {spec.namespace}: {outcome}. {reason}",
    )  # fmt: skip

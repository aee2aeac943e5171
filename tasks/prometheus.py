"""The Prometheus boundary: instant queries, and the runner that measures and judges analyses."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from blocks import PrometheusServer
from core.analysis.builtins import BUILTINS
from core.analysis.jsonpath import json_path_value
from core.analysis.judge import Direction, JudgeConfig, JudgeResult, judge
from core.analysis.prepare import Prepared, analysis_refs, artifact_key, prepare, with_judge
from core.analysis.render import Rendered
from core.analysis.run import AnalysisRun, AnalysisVerdict, Measurement
from core.analysis.templates import AnalysisTemplate
from core.analysis.verdict import Verdict
from core.errors import ConfigError
from core.release.actions import AnalysisPhase
from core.release.observed import Outcome
from core.release.spec import AnalysisRef, ReleaseSpec
from tasks import RETRIES
from tasks.health import egress

QUERY_TIMEOUT_SECONDS = 10


@task(name="prometheus-instant-query", cache_policy=NO_CACHE, **RETRIES)
def instant_query(prometheus: PrometheusServer, query: str) -> list[dict[str, Any]]:
    """The result vector of one instant query (429, 5xx and connection errors are retried).

    Raises:
        httpx.HTTPStatusError: Prometheus refused the query (e.g. 400 for bad PromQL).
    """
    with httpx.Client(
        headers=prometheus.headers(), verify=prometheus.verify_tls, timeout=QUERY_TIMEOUT_SECONDS
    ) as http:
        answer = http.get(f"{prometheus.url}/api/v1/query", params={"query": query})
        answer.raise_for_status()
        return answer.json()["data"]["result"]


@dataclass
class PrometheusRunner:
    """Runs analyses against a Prometheus block; implements core.analysis.verdict.AnalysisRunner.

    `PrometheusRunner.run` renders the templates an AnalysisRef names (core/analysis/templates.py),
    measures every metric with an instant query when it is due (interval, count, initialDelay;
    after an error, ERROR_RETRY_SECONDS), feeds the values to core.analysis.run.AnalysisRun
    (failureLimit, inconclusiveLimit, consecutiveErrorLimit, minimum sample size, dry-run) and,
    when a judge is configured, compares canary against stable with core.analysis.judge. Every
    analysis publishes a table artifact with each metric's query, values, threshold, outcome and
    why.

    Prometheus faults never raise out of `run`: a refused connection or a query error is an
    Error measurement, counted towards consecutiveErrorLimit; the verdict is Error, never a
    promotion.

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
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    given: frozenset[str] = frozenset()  # templates passed to the flow: not looked up
    baseline_track: str = "stable"
    judge_step_seconds: float = 2.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    queries: int = 0  # Prometheus queries sent by this runner (benchmarks read it)

    def validate(self, spec: ReleaseSpec) -> None:
        """Raise ConfigError now if any analysis of `spec` could not run (before any write)."""
        for phase, ref in analysis_refs(spec):
            scrape = self.prometheus.scrape_interval_seconds
            prepare(ref, phase, spec, self.templates, scrape, self.secrets)

    def run(
        self, ref: AnalysisRef, phase: AnalysisPhase, spec: ReleaseSpec, key: str = ""
    ) -> Verdict:
        """Measure and judge `ref` for `spec` until the verdict is final; publish the report."""
        try:
            scrape = self.prometheus.scrape_interval_seconds
            prepared = prepare(ref, phase, spec, self.templates, scrape, self.secrets)
        except ConfigError as exc:
            return Verdict(Outcome.ERROR, f"analysis cannot run: {exc}")
        started = self.clock()
        analysis = AnalysisRun.start(prepared.metrics, prepared.criteria, started)
        conn = self.prometheus.connect(timeout=QUERY_TIMEOUT_SECONDS)
        verdict = self._measure_until_done(conn, analysis, prepared)
        outcome, reason, judged = verdict.outcome, verdict.reason, None
        if self.judge is not None and str(phase) in ("step", "background"):
            judged = self._judge(conn, prepared, started)
            outcome, reason = with_judge(outcome, reason, judged)
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
                    analysis.record(metric, self.measure(prepared.rendered[metric], now))

    def measure(self, rendered: Rendered, at: float) -> Measurement:
        """One measurement of a metric; any failure is an Error measurement, never an exception."""
        self.queries += 1
        provider = rendered.metric.provider
        timeout = float(
            (provider.prometheus.timeout if provider.prometheus else None)
            or (provider.web.timeout_seconds if provider.web else None)
            or QUERY_TIMEOUT_SECONDS
        )
        where = f"Prometheus {rendered.address or self.prometheus.url}"
        where = rendered.query if provider.web else where
        try:
            return Measurement(self._ask(rendered, timeout), at=at)
        except httpx.TimeoutException:
            late = f"{rendered.shown(where)} did not answer within {timeout:g}s"
            return Measurement(None, late, at)
        except httpx.HTTPStatusError as exc:
            text = rendered.shown(exc.response.text[:200])
            return Measurement(None, f"query rejected ({exc.response.status_code}): {text}", at)
        except httpx.HTTPError as exc:  # the message may hold the URL; the type won't
            gone = f"{rendered.shown(where)} unreachable ({type(exc).__name__})"
            return Measurement(None, gone, at)
        except ConfigError as exc:  # an address the egress allowlist does not list
            return Measurement(None, rendered.shown(exc.message), at)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return Measurement(None, f"unusable result: {rendered.shown(str(exc))[:200]}", at)

    def _ask(self, rendered: Rendered, timeout: float) -> Any:
        """The result Argo's conditions see: a float, a list of floats, or a JSON value."""
        web = rendered.metric.provider.web
        if web is not None:
            egress().require(urlsplit(rendered.query).hostname or "", "analysis web provider")
            with httpx.Client(timeout=timeout, verify=not web.insecure) as http:
                answer = http.request(
                    web.method, rendered.query, headers=rendered.headers, content=rendered.body
                )
                answer.raise_for_status()
                return json_path_value(answer.json(), web.json_path)
        prom = rendered.metric.provider.prometheus
        own = not rendered.address or rendered.address.rstrip("/") == self.prometheus.url
        headers = {**(self.prometheus.headers() if own else {}), **rendered.headers}
        verify = self.prometheus.verify_tls and not (prom and prom.insecure)
        base = self.prometheus.url if own else rendered.address.rstrip("/")
        if not own:
            egress().require(urlsplit(base).hostname or "", "analysis Prometheus address")
        with httpx.Client(headers=headers, verify=verify, timeout=timeout) as http:
            answer = http.get(f"{base}/api/v1/query", params={"query": rendered.query})
            answer.raise_for_status()
            return prometheus_result(answer.json()["data"])

    def _judge(self, conn: PrometheusConnect, prepared: Prepared, started: float) -> JudgeResult:
        """Range-query each deciding metric for the canary and the baseline since `started`."""
        start, end = datetime.fromtimestamp(started, UTC), datetime.fromtimestamp(self.clock(), UTC)
        baseline = prepared.rendered_with(track=self.baseline_track)
        samples: dict[str, tuple[list[float], list[float]]] = {}
        directions: dict[str, Direction] = {}
        for metric in prepared.metrics:
            if metric.dry_run or metric.provider.prometheus is None:
                continue
            canary = self._series(conn, prepared.queries[metric.name], start, end)
            stable = self._series(conn, baseline[metric.name], start, end)
            samples[metric.name] = (canary, stable)
            directions[metric.name] = prepared.criteria[metric.name].direction()
        return judge(samples, directions, self.judge)

    def _series(
        self, conn: PrometheusConnect, query: str, start: datetime, end: datetime
    ) -> list[float]:
        """One series' values over [start, end]; none on any failure (the judge then abstains)."""
        self.queries += 1
        try:
            result = conn.custom_query_range(
                query, start, end, f"{self.judge_step_seconds:g}s", timeout=QUERY_TIMEOUT_SECONDS
            )
        except (PrometheusApiClientException, requests.RequestException):
            return []
        if len(result) != 1:
            return []
        return [float(v) for _, v in result[0]["values"]]


def prometheus_result(data: Mapping[str, Any]) -> Any:
    """An instant query's result as Argo hands it to conditions.

    A scalar's float, or a vector's (or a matrix's) list of floats.

    Raises:
        ValueError: a result type conditions cannot read (a string).
    """
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return float(result[1])
    if kind == "vector":
        return [float(sample["value"][1]) for sample in result]
    if kind == "matrix":
        return [float(v) for series in result for _, v in series["values"]]
    raise ValueError(f"result type {kind!r} cannot be judged: return a number or a vector")


def _publish(
    key: str,
    spec: ReleaseSpec,
    phase: AnalysisPhase,
    prepared: Prepared,
    analysis: AnalysisRun,
    outcome: Outcome,
    reason: str,
    judged: JudgeResult | None,
) -> None:
    rows = []
    for metric in prepared.metrics:
        metric_run, rendered = analysis.runs[metric.name], prepared.rendered[metric.name]
        v = metric_run.verdict()
        kept = metric_run.measurements[-(metric.measurement_retention or 10) :]
        values = [m.shown() for m in kept]
        more = len(metric_run.measurements) - len(kept)
        rows.append(
            {
                "metric": metric.name,
                "query": rendered.shown(),
                "values": rendered.shown(
                    (f"({more} earlier), " if more else "") + ", ".join(values) or "-"
                ),
                "threshold": rendered.shown(str(metric_run.criteria)),
                "outcome": v.outcome.value,
                "decides": "no (dry-run)" if metric.dry_run else "yes",
                "why": rendered.shown(v.reason),
            }
        )
    for m in judged.metrics if judged else ():
        rows.append(
            {
                "metric": f"judge: {m.metric}",
                "query": "canary vs stable, Mann-Whitney U",
                "values": f"canary median {m.canary_median}, stable {m.baseline_median}",
                "threshold": "fails if p < alpha and effect is large",
                "outcome": m.classification.value,
                "decides": "yes",
                "why": m.why,
            }
        )
    if judged is not None:
        score = "no score" if judged.score is None else f"score {judged.score:.0f}"
        rows.append(
            {
                "metric": "judge: overall",
                "query": "share of metrics passing",
                "values": score,
                "threshold": "see why",
                "outcome": judged.outcome.value,
                "decides": "yes",
                "why": judged.reason,
            }
        )
    create_table_artifact(
        rows,
        key=key,
        description=f"{phase} analysis of {spec.app} in {spec.namespace}: {outcome}. {reason}",
    )

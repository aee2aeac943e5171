"""The Prometheus analysis runner against the real Prometheus and example-service instances.

The Prometheus analysis runner against the real Prometheus scraping real example-service
instances on loopback: healthy passes, 20% errors fail, added latency fails p95, idle is
Inconclusive, a stopped Prometheus is Error, dry-run metrics never decide, the judge compares
canary with stable, and every analysis leaves its table artifact.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow
from prefect.artifacts import Artifact

from blocks import PrometheusServer
from core.analysis.builtins import BUILTINS
from core.analysis.judge import JudgeConfig
from core.analysis.templates import AnalysisTemplate, rescheduled
from core.analysis.verdict import Verdict
from core.errors import ConfigError
from core.release.actions import AnalysisPhase
from core.release.observed import Outcome
from core.release.spec import AnalysisRef, ReleaseSpec
from sandbox import example
from sandbox.components.prometheus import Prometheus
from sandbox.fleet import scraped
from sandbox.load import Load
from sandbox.platform import BLOCK_NAME, Platform
from sandbox.settings import Ports, Settings
from tasks.prometheus import PrometheusRunner

NS = "analysis-test"
# Rates need two scrapes (2 s apart) of traffic: the initial delay waits for them, as Argo users do.
FAST = {"interval": 2, "count": 4, "initial_delay": 5}


def fast(name: str, **changes: object) -> AnalysisTemplate:
    """A built-in template measured every 2 s (the builtins measure every 60 s)."""
    return rescheduled(BUILTINS[name], **{**FAST, **changes})


def templates(**changes: object) -> dict[str, AnalysisTemplate]:
    return {name: fast(name, **changes) for name in BUILTINS}


def spec_for(app: str) -> ReleaseSpec:
    return ReleaseSpec.model_validate(
        {
            "app": app,
            "namespace": NS,
            "image": "127.0.0.1:5001/x@sha256:" + "a" * 64,
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        }
    )


def ref(*names: str, **args: str) -> AnalysisRef:
    return AnalysisRef.model_validate(
        {
            "templates": [{"templateName": n} for n in names],
            "args": [{"name": k, "value": v} for k, v in args.items()],
        }
    )


@flow(name="analysis-under-test")
def analyse(runner: PrometheusRunner, names: tuple[str, ...], app: str, key: str) -> Verdict:
    """Run one analysis inside a flow run, as a release does (artifacts need a run)."""
    return runner.run(ref(*names), AnalysisPhase.STEP, spec_for(app), key)


@pytest.fixture
def app() -> str:
    return f"an-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def prom(platform: Platform) -> PrometheusServer:
    return PrometheusServer.load(BLOCK_NAME)


def labels(app: str, track: str = "canary") -> dict[str, str]:
    return {"service": app, "namespace": NS, "track": track}


def table(key: str) -> list[dict]:
    artifact = Artifact.get(key)
    assert artifact is not None, f"no artifact {key}"
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def test_healthy_canary_passes_every_builtin(platform: Platform, prom, app) -> None:
    with scraped(platform.prometheus, labels(app)) as inst, Load([inst.url]):
        verdict = analyse(PrometheusRunner(prom, templates()), tuple(BUILTINS), app, "healthy")
    assert verdict.outcome is Outcome.SUCCESSFUL, verdict.reason
    assert "4/4 measured" in verdict.reason
    rows = table(verdict.report)
    assert {r["metric"] for r in rows} == set(BUILTINS)
    assert all(r["outcome"] == "Successful" for r in rows)
    assert any(f'service="{app}"' in r["query"] and 'track=~"canary"' in r["query"] for r in rows)


def test_twenty_percent_errors_fail_the_error_rate(platform: Platform, prom, app) -> None:
    with (
        scraped(platform.prometheus, labels(app), error_rate=0.2) as inst,
        Load([inst.url]),
    ):
        verdict = analyse(PrometheusRunner(prom, templates()), ("error-rate",), app, "errors")
    assert verdict.outcome is Outcome.FAILED, verdict.reason
    assert "failed 2 > failureLimit 1" in verdict.reason
    assert "want success: result[0] <= 0.05" in verdict.reason
    row = table(verdict.report)[0]
    assert row["outcome"] == "Failed" and row["values"].count(",") >= 1


def test_added_latency_fails_p95(platform: Platform, prom, app) -> None:
    with (
        scraped(platform.prometheus, labels(app), latency_ms=700) as inst,
        Load([inst.url]),
    ):
        verdict = analyse(PrometheusRunner(prom, templates()), ("latency-p95",), app, "slow")
    assert verdict.outcome is Outcome.FAILED, verdict.reason
    assert "latency-p95" in verdict.reason
    assert "want success: result[0] <= 0.5" in verdict.reason


def test_idle_service_is_inconclusive_never_successful(platform: Platform, prom, app) -> None:
    with scraped(platform.prometheus, labels(app)):  # scraped, but nobody calls it
        verdict = analyse(PrometheusRunner(prom, templates()), ("success-rate",), app, "idle")
    assert verdict.outcome is Outcome.INCONCLUSIVE, verdict.reason
    assert "values no data, no data, no data" in verdict.reason
    assert "inconclusive 3 > inconclusiveLimit 2" in verdict.reason


def test_dry_run_metric_is_reported_but_never_decides(platform: Platform, prom, app) -> None:
    both = {"error-rate": fast("error-rate"), "latency-p95": fast("latency-p95", dry_run=True)}
    with (
        scraped(platform.prometheus, labels(app), latency_ms=700) as inst,
        Load([inst.url]),
    ):
        verdict = analyse(PrometheusRunner(prom, both), tuple(both), app, "dry")
    assert verdict.outcome is Outcome.SUCCESSFUL, verdict.reason
    assert "[dry-run latency-p95" in verdict.reason
    rows = {r["metric"]: r for r in table(verdict.report)}
    assert rows["latency-p95"]["outcome"] == "Failed"
    assert rows["latency-p95"]["decides"] == "no (dry-run)"


def test_bad_query_is_error_and_names_the_rejection(prom, app) -> None:
    broken = one_metric("broken", "sum(rate(http_requests_total[5m])", "result[0] <= 1")
    verdict = analyse(PrometheusRunner(prom, {"broken": broken}), ("broken",), app, "broken")
    assert verdict.outcome is Outcome.ERROR
    assert "query rejected" in verdict.reason and "consecutiveErrorLimit 0" in verdict.reason


def one_metric(name: str, query: str, condition: str) -> AnalysisTemplate:
    """An Argo AnalysisTemplate of one Prometheus metric, measured once, no error allowed."""
    return AnalysisTemplate.model_validate(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": name},
            "spec": {
                "metrics": [
                    {
                        "name": name,
                        "successCondition": condition,
                        "consecutiveErrorLimit": 0,
                        "provider": {"prometheus": {"query": query}},
                    }
                ]
            },
        }
    )


def test_several_series_reach_the_conditions_as_argos_vector(prom, app) -> None:
    one = 'label_replace(vector({v}), "copy", "{c}", "", "")'
    two = f"{one.format(v=1, c='a')} or {one.format(v=3, c='b')}"  # two series, whatever is scraped
    every = one_metric("every", two, "len(result) == 2 && all(result, {# >= 1})")
    verdict = analyse(PrometheusRunner(prom, {"every": every}), ("every",), app, "every")
    assert verdict.outcome is Outcome.SUCCESSFUL, verdict.reason
    assert "[1, 3]" in verdict.reason
    first = one_metric("first", two, "result[0] >= 2")  # the first series alone: 1
    verdict = analyse(PrometheusRunner(prom, {"first": first}), ("first",), app, "first")
    assert verdict.outcome is Outcome.FAILED, verdict.reason
    beyond = one_metric("beyond", two, "result[2] >= 1")
    verdict = analyse(PrometheusRunner(prom, {"beyond": beyond}), ("beyond",), app, "beyond")
    assert verdict.outcome is Outcome.ERROR and "index out of range" in verdict.reason


def test_unknown_template_is_refused_before_any_query(prom, app) -> None:
    runner = PrometheusRunner(prom, templates())
    bad = spec_for(app).model_copy(deep=True)
    step = {"analysis": {"templates": [{"templateName": "no-such"}]}}
    bad = ReleaseSpec.model_validate(
        {
            **bad.model_dump(by_alias=True, exclude_none=True),
            "strategy": {"canary": {"steps": [step]}},
        }
    )
    with pytest.raises(ConfigError, match="no analysis template 'no-such'"):
        runner.validate(bad)
    assert runner.queries == 0


@pytest.fixture
def own_prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    """A second, private Prometheus this test may stop (the shared one keeps running)."""
    second = Prometheus(Settings(home=tmp_path, ports=Ports(prometheus=example.free_port())))
    second.up()
    try:
        yield second
    finally:
        second.down()


def test_prometheus_stopping_mid_analysis_gives_error_not_promotion(
    platform: Platform, own_prometheus: Prometheus, app: str
) -> None:
    block = PrometheusServer(url=own_prometheus.url)
    runner = PrometheusRunner(block, templates(count=30, consecutive_error_limit=1))
    with scraped(own_prometheus, labels(app)) as inst, Load([inst.url]):
        stopper = threading.Timer(5, own_prometheus.down)  # after a few good measurements
        stopper.start()
        started = time.monotonic()
        verdict = analyse(runner, ("error-rate",), app, "stopped")
        stopper.join()
    assert verdict.outcome is Outcome.ERROR, verdict.reason
    assert "Prometheus unreachable" in table(verdict.report)[0]["why"] or "error" in verdict.reason
    assert "consecutive errors 2 > consecutiveErrorLimit 1" in verdict.reason
    assert time.monotonic() - started < 60  # errors retry after 10 s, not a 2 s interval x 30


def test_judge_fails_a_slower_canary_that_thresholds_let_through(
    platform: Platform, prom, app
) -> None:
    loose = {"latency-p95": fast("latency-p95", count=12, success_condition="result[0] <= 5")}
    runner = PrometheusRunner(prom, loose, judge=JudgeConfig(min_samples=8))
    with (
        scraped(platform.prometheus, labels(app, "stable")) as stable,
        scraped(platform.prometheus, labels(app), latency_ms=300) as canary,
        Load([stable.url, canary.url]),
    ):
        verdict = analyse(runner, ("latency-p95",), app, "judged")
    assert verdict.outcome is Outcome.FAILED, verdict.reason
    assert "judge Failed" in verdict.reason and "canary median" in verdict.reason
    rows = {r["metric"]: r for r in table(verdict.report)}
    assert rows["latency-p95"]["outcome"] == "Successful"  # the threshold alone would pass
    assert rows["judge: latency-p95"]["outcome"] == "fail"
    overall = rows["judge: overall"]
    assert overall["outcome"] == "Failed" and overall["values"] == "score 0"
    assert "pass >= 95" in overall["why"]


def test_the_web_provider_judges_a_real_json_endpoint(platform: Platform, prom, app) -> None:
    def web(name: str, condition: str, path: str) -> AnalysisTemplate:
        return AnalysisTemplate.model_validate(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AnalysisTemplate",
                "metadata": {"name": name},
                "spec": {
                    "args": [{"name": "base"}],
                    "metrics": [
                        {
                            "name": name,
                            "successCondition": condition,
                            "provider": {"web": {"url": "{{args.base}}/health", "jsonPath": path}},
                        }
                    ],
                },
            }
        )

    healthy = web("healthy", 'result == "healthy"', "{$.status}")
    checks = web("checks", "len(result) >= 1", "{$.checks}")
    absent = web("absent", "result == 1", "{$.nothing.here}")
    runner = PrometheusRunner(prom, {t.name: t for t in (healthy, checks, absent)})

    def ref_to(url: str, *names: str) -> AnalysisRef:
        return AnalysisRef.model_validate(
            {
                "templates": [{"templateName": n} for n in names],
                "args": [{"name": "base", "value": url}],
            }
        )

    @flow(name="web-analysis-under-test")
    def run(ref: AnalysisRef, key: str) -> Verdict:  # artifacts need a run
        return runner.run(ref, AnalysisPhase.STEP, spec_for(app), key)

    with scraped(platform.prometheus, labels(app)) as inst:
        verdict = run(ref_to(inst.url, "healthy", "checks"), "web")
        nothing = run(ref_to(inst.url, "absent"), "web-absent")
    assert verdict.outcome is Outcome.SUCCESSFUL, verdict.reason
    rows = {r["metric"]: r for r in table(verdict.report)}
    assert rows["healthy"]["values"] == "'healthy'" and rows["healthy"]["query"].endswith("/health")
    assert nothing.outcome is Outcome.INCONCLUSIVE, nothing.reason  # nothing at the path: no data

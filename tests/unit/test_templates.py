"""Analysis templates in Argo's shapes: read as written, refused naming the field, rendered."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from core.analysis.builtins import BUILTINS, DOCUMENTS
from core.analysis.criteria import Criteria
from core.analysis.jsonpath import json_path_value
from core.analysis.render import render, values
from core.analysis.templates import AnalysisTemplate, load_templates, rescheduled
from core.errors import ConfigError
from core.release.observed import Outcome

ARGO = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
  namespace: shop
  resourceVersion: "123"
spec:
  args:
  - name: service-name
  - name: prometheus-port
    value: "9090"
  - name: api-token
    valueFrom:
      secretKeyRef: {name: prom-token, key: token}
  dryRun:
  - metricName: latency.*
  measurementRetention:
  - {metricName: success-rate, limit: 20}
  metrics:
  - name: success-rate
    interval: 1m30s
    initialDelay: 30s
    count: "5"
    failureLimit: 2
    inconclusiveLimit: 1
    consecutiveErrorLimit: 3
    successCondition: result[0] >= 0.95
    failureCondition: result[0] < 0.5
    provider:
      prometheus:
        address: http://prometheus.monitoring:{{args.prometheus-port}}
        timeout: 20
        headers:
        - {key: Authorization, value: "Bearer {{args.api-token}}"}
        query: |
          sum(irate(istio_requests_total{destination_service=~"{{args.service-name}}",
            response_code!~"5.*"}[5m])) /
          sum(irate(istio_requests_total{destination_service=~"{{args.service-name}}"}[5m]))
  - name: latency-p99
    interval: 1m
    successCondition: len(result) == 0 || result[0] < 0.5
    provider:
      prometheus:
        query: histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))
  - name: ready
    count: 1
    successCondition: result.status == "ok" && result.checks[0].ok == true
    provider:
      web:
        url: https://status.example/api/{{args.service-name}}
        method: POST
        headers:
        - {key: X-Token, value: "{{args.api-token}}"}
        body: '{"service": "{{args.service-name}}"}'
        timeoutSeconds: 5
        jsonPath: "{$.data}"
"""


def argo() -> dict[str, Any]:
    return yaml.safe_load(ARGO)


def test_an_argo_template_reads_as_written() -> None:
    t = AnalysisTemplate.model_validate(argo())
    assert (t.kind, t.name, t.key) == ("AnalysisTemplate", "success-rate", "success-rate")
    rate, latency, ready = t.metrics
    assert (rate.interval, rate.initial_delay, rate.count) == (90, 30, 5)
    assert (rate.failure_limit, rate.inconclusive_limit, rate.consecutive_error_limit) == (2, 1, 3)
    assert (rate.success_condition, rate.failure_condition) == (
        "result[0] >= 0.95",
        "result[0] < 0.5",
    )
    assert rate.provider.prometheus.timeout == 20
    assert rate.measurement_retention == 20 and not rate.dry_run
    assert latency.dry_run and latency.runs_until_ended and latency.measurements is None
    assert ready.provider.kind == "web" and ready.provider.web.json_path == "{$.data}"
    assert ready.measurements == 1
    assert t.args[2].value_from.secret_key_ref.name == "prom-token"


def test_a_cluster_template_is_keyed_apart() -> None:
    doc = argo() | {"kind": "ClusterAnalysisTemplate"}
    assert AnalysisTemplate.model_validate(doc).key == "cluster/success-rate"


def test_to_argo_round_trips() -> None:
    t = AnalysisTemplate.model_validate(argo())
    doc = t.to_argo()
    assert doc["apiVersion"] == "argoproj.io/v1alpha1" and doc["metadata"] == {"name": t.name}
    assert doc["spec"]["metrics"][0]["interval"] == "90s"
    assert doc["spec"]["dryRun"] == [{"metricName": "latency\\-p99"}]
    assert AnalysisTemplate.model_validate(doc) == t
    for builtin in BUILTINS.values():
        assert AnalysisTemplate.model_validate(builtin.to_argo()) == builtin


def test_rendering_fills_queries_addresses_headers_and_masks_secrets() -> None:
    t = AnalysisTemplate.model_validate(argo())
    out = render(t, {"service-name": "web"}, {"api-token": "s3cr3t"})
    rate, ready = out["success-rate"], out["ready"]
    assert 'destination_service=~"web"' in rate.query
    assert rate.address == "http://prometheus.monitoring:9090"
    assert rate.headers == {"Authorization": "Bearer s3cr3t"}
    assert ready.query == "https://status.example/api/web"
    assert ready.body == '{"service": "web"}' and ready.headers == {"X-Token": "s3cr3t"}
    assert ready.shown("token s3cr3t here") == "token *** here"
    with pytest.raises(ConfigError, match="comes from Secret prom-token key token"):
        render(t, {"service-name": "web"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("kind",), "got argoproj.io/v1alpha1/Rollout"),
        (("metadata",), "has no metadata.name"),
        (("spec", "templates"), "spec.templates is not read"),
        (("metric", "provider"), "provider.datadog is not supported: the datadog provider"),
        (("metric", "job"), "provider.job is not supported"),
        (("metric", "auth"), "provider.prometheus.authentication is not supported: credentials"),
        (("metric", "range"), "provider.prometheus.rangeQuery is not supported"),
        (("metric", "two"), "a provider needs exactly one of prometheus, web; got 2"),
        (("metric", "consecutiveSuccessLimit"), "metric.consecutiveSuccessLimit is not supported"),
        (("metric", "noCondition"), "neither successCondition nor failureCondition"),
        (("metric", "badCondition"), "successCondition 'result[0] >= 0.95 ?? 1'"),
        (("metric", "exec"), "exec"),
        (("metric", "undeclared"), "uses {{args.team}}, which the template does not declare"),
        (("metric", "templatedCount"), "is not a whole number"),
        (("metric", "jsonPath"), "jsonPath '$..x': only .name, [index] and ['name'] are read"),
        (("metric", "interval"), "duration '1d' is not a Go duration"),
    ],
)
def test_refused_naming_what_to_fix(change: tuple[str, ...], message: str) -> None:
    doc = argo()
    metric = doc["spec"]["metrics"][0]
    match change:
        case ("kind",):
            doc["kind"] = "Rollout"
        case ("metadata",):
            doc["metadata"] = {}
        case ("spec", key):
            doc["spec"][key] = []
        case ("metric", "provider"):
            metric["provider"] = {"datadog": {"query": "q"}}
        case ("metric", "job"):
            metric["provider"] = {"job": {"spec": {}}}
        case ("metric", "auth"):
            metric["provider"]["prometheus"]["authentication"] = {"sigv4": {}}
        case ("metric", "range"):
            metric["provider"]["prometheus"]["rangeQuery"] = {"step": "1m"}
        case ("metric", "two"):
            metric["provider"]["web"] = {"url": "http://x"}
        case ("metric", "noCondition"):
            del metric["successCondition"], metric["failureCondition"]
        case ("metric", "badCondition"):
            metric["successCondition"] = "result[0] >= 0.95 ?? 1"
        case ("metric", "exec"):
            metric["successCondition"] = 'exec("rm -rf /")'
        case ("metric", "undeclared"):
            metric["failureCondition"] = "result[0] < {{args.team}}"
        case ("metric", "templatedCount"):
            metric["count"] = "{{args.count}}"
        case ("metric", "jsonPath"):
            doc["spec"]["metrics"][2]["provider"]["web"]["jsonPath"] = "$..x"
        case ("metric", "interval"):
            metric["interval"] = "1d"
        case ("metric", key):
            metric[key] = 3
    with pytest.raises(ValidationError, match=re.escape(message)):
        AnalysisTemplate.model_validate(doc)


def test_builtins_are_argo_templates_with_conditions() -> None:
    assert set(BUILTINS) == {"success-rate", "error-rate", "latency-p95"}
    assert DOCUMENTS["error-rate"]["spec"]["metrics"][0]["successCondition"] == (
        "result[0] <= {{args.error-threshold}}"
    )
    query = render(BUILTINS["success-rate"], {"service-name": "kyb-platform-preview"})
    assert 'service="kyb-platform-preview"' in query["success-rate"].query
    assert (
        'status!~"5.."' in query["success-rate"].query and "{{" not in query["success-rate"].query
    )


def _criteria(given: dict[str, str]) -> Criteria:
    t = BUILTINS["error-rate"]
    return Criteria.of(t.metrics[0], values(t, given, {}))


def test_the_error_threshold_argument_moves_the_condition() -> None:
    assert _criteria({"service-name": "kyb"}).judge([0.08])[0] is Outcome.FAILED
    loose = _criteria({"service-name": "kyb", "error-threshold": "0.1"})
    assert loose.judge([0.08])[0] is Outcome.SUCCESSFUL
    assert str(loose) == "success: result[0] <= 0.1"
    odd = _criteria({"service-name": "kyb", "error-threshold": "lots"})
    assert odd.judge([0.08])[0] is Outcome.ERROR  # a number compared with text


@pytest.mark.parametrize(
    "value",
    ['kyb"} or vector(1) or {x="', "kyb\\", "kyb\nup", "", "a\x00b", 'x",status="200'],
)
def test_injection_attempts_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="service-name"):
        render(BUILTINS["success-rate"], {"service-name": value})


def _one(query: str, *args: dict[str, str]) -> AnalysisTemplate:
    return AnalysisTemplate.model_validate(
        {
            "name": "t",
            "args": list(args),
            "metrics": [
                {
                    "name": "m",
                    "successCondition": "result[0] < 1",
                    "provider": {"prometheus": {"query": query}},
                }
            ],
        }
    )


def test_an_argument_outside_quotes_must_be_a_window_or_a_number() -> None:
    t = _one(
        'rate(x{job="{{args.job}}"}[{{args.window}}]) > {{args.min}}',
        {"name": "job"},
        {"name": "window", "value": "5m"},
        {"name": "min"},
    )
    assert render(t, {"job": "api", "min": "0.5"})["m"].query == 'rate(x{job="api"}[5m]) > 0.5'
    for bad in ("5m] or up[", "0s", "1.5m", "5m\n", "up"):
        with pytest.raises(ConfigError, match="outside quotes"):
            render(t, {"job": "api", "window": bad, "min": "1"})
    with pytest.raises(ConfigError, match="outside quotes"):
        render(t, {"job": "api", "min": "vector(1)"})


def test_templates_are_frozen_and_rescheduled_validates_again() -> None:
    with pytest.raises(ValidationError):
        BUILTINS["error-rate"].name = "x"  # type: ignore[misc]
    fast = rescheduled(BUILTINS["error-rate"], interval=2, count=4)
    assert [(m.interval, m.count) for m in fast.metrics] == [(2, 4)]
    with pytest.raises(ValidationError):
        rescheduled(BUILTINS["error-rate"], count=0)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("{$}", {"data": {"ok": True, "items": [{"v": 3}]}}),
        ("{$.data.ok}", True),
        ("{$.data.items[0].v}", 3),
        ("$.data['items'][0]['v']", 3),
        ("{$.data.missing}", None),
        ("{$.data.items[5]}", None),
    ],
)
def test_json_path_reads_what_argo_docs_use(path: str, value: object) -> None:
    assert json_path_value({"data": {"ok": True, "items": [{"v": 3}]}}, path) == value


def test_a_file_of_templates_loads_every_document_or_names_the_bad_one() -> None:
    cluster = ARGO.replace("kind: AnalysisTemplate", "kind: ClusterAnalysisTemplate")
    loaded = load_templates(f"{ARGO}---\n{cluster}")
    assert [t.key for t in loaded] == ["success-rate", "cluster/success-rate"]
    with pytest.raises(ConfigError, match=r"(?s)document 2: .*x-successCondition"):
        load_templates(ARGO + "---\n" + ARGO.replace("successCondition", "x-successCondition"))

"""Analysis templates: typed thresholds, rendering with arguments, injection refused."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from core.analysis.templates import (
    BUILTINS,
    AnalysisTemplate,
    MetricTemplate,
    TemplateArg,
    Threshold,
    render,
    rescheduled,
    thresholds,
)
from core.errors import ConfigError


@pytest.mark.parametrize(
    ("threshold", "value", "inside"),
    [
        (Threshold(min=0.95), 0.95, True),
        (Threshold(min=0.95), 0.9499, False),
        (Threshold(max=0.05), 0.05, True),
        (Threshold(max=0.05), 0.0501, False),
        (Threshold(min=1, max=2), 1, True),
        (Threshold(min=1, max=2), 2, True),
        (Threshold(min=1, max=2), 2.01, False),
        (Threshold(max=0.5), math.inf, False),
        (Threshold(min=0.0), math.nan, False),
    ],
)
def test_threshold_is_an_inclusive_range(threshold: Threshold, value: float, inside: bool) -> None:
    assert threshold.contains(value) is inside


@pytest.mark.parametrize(
    ("threshold", "text"),
    [
        (Threshold(min=0.95), ">= 0.95"),
        (Threshold(max=0.5), "<= 0.5"),
        (Threshold(min=1, max=2), "in [1, 2]"),
    ],
)
def test_threshold_reads_as_a_condition(threshold: Threshold, text: str) -> None:
    assert str(threshold) == text


@pytest.mark.parametrize(
    "fields", [{}, {"min": 2, "max": 1}, {"min": math.nan}, {"max": 1, "min_arg": "x"}]
)
def test_threshold_rejects_empty_or_inverted_ranges(fields: dict) -> None:
    with pytest.raises(ValidationError):
        Threshold(**fields)


def test_builtins_render_with_the_seed_args() -> None:
    queries = render(BUILTINS["success-rate"], {"service-name": "kyb-platform-preview"})
    query = queries["success-rate"]
    assert 'service="kyb-platform-preview"' in query
    assert 'status!~"5.."' in query
    assert "{{" not in query
    latency = render(BUILTINS["latency-p95"], {"service-name": "kyb", "track": "canary"})
    assert latency["latency-p95"].startswith("histogram_quantile(0.95, sum by (le)")
    assert 'track=~"canary"' in latency["latency-p95"]


def test_unknown_args_are_ignored_and_defaults_fill_in() -> None:
    query = render(BUILTINS["error-rate"], {"service-name": "kyb", "other": "x"})["error-rate"]
    assert 'namespace=~".*"' in query


def test_missing_arg_raises_naming_it() -> None:
    with pytest.raises(ConfigError, match="service-name"):
        render(BUILTINS["error-rate"], {})


@pytest.mark.parametrize(
    "value",
    ['kyb"} or vector(1) or {x="', "kyb\\", "kyb\nup", "", "a\x00b", 'x",status="200'],
)
def test_injection_attempts_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="service-name"):
        render(BUILTINS["success-rate"], {"service-name": value})


def test_error_threshold_arg_overrides_the_bound() -> None:
    template = BUILTINS["error-rate"]
    assert thresholds(template, {"service-name": "kyb"})["error-rate"].max == 0.05
    assert thresholds(template, {"service-name": "kyb", "error-threshold": "0.1"})[
        "error-rate"
    ].max == pytest.approx(0.1)


@pytest.mark.parametrize("value", ["lots", "nan", "inf", ""])
def test_error_threshold_must_be_a_number(value: str) -> None:
    with pytest.raises(ConfigError, match="error-threshold"):
        thresholds(BUILTINS["error-rate"], {"service-name": "kyb", "error-threshold": value})


def _metric(query: str, **fields: object) -> MetricTemplate:
    return MetricTemplate(name="m", query=query, success=Threshold(max=1), **fields)


@pytest.mark.parametrize(
    "query",
    ["up{job={{args.job}}}", 'up{job="x"} > {{args.job}}', 'up{job="{{ eval }}"}'],
)
def test_placeholders_must_sit_in_quotes(query: str) -> None:
    with pytest.raises(ValidationError):
        AnalysisTemplate(name="t", metrics=(_metric(query),), args=(TemplateArg(name="job"),))


def _windowed() -> AnalysisTemplate:
    return AnalysisTemplate(
        name="t",
        metrics=(_metric('rate(x{job="{{args.job}}"}[{{args.window}}])'),),
        args=(TemplateArg(name="job"), TemplateArg(name="window", default="5m", kind="duration")),
    )


def test_a_duration_arg_may_stand_outside_quotes_and_must_be_a_duration() -> None:
    assert render(_windowed(), {"job": "api"}) == {"m": 'rate(x{job="api"}[5m])'}
    assert render(_windowed(), {"job": "api", "window": "30s"}) == {"m": 'rate(x{job="api"}[30s])'}
    for bad in ("5m] or up[", "0s", "5", "1.5m", "", "5m\n"):
        with pytest.raises(ConfigError, match="PromQL duration"):
            render(_windowed(), {"job": "api", "window": bad})


def test_a_label_arg_outside_quotes_is_refused_even_beside_a_duration() -> None:
    with pytest.raises(ValidationError, match="not in quotes"):
        AnalysisTemplate(
            name="t",
            metrics=(_metric("rate(x[{{args.window}}]) > {{args.job}}"),),
            args=(TemplateArg(name="job"), TemplateArg(name="window", kind="duration")),
        )


def test_placeholders_must_be_declared() -> None:
    with pytest.raises(ValidationError, match="undeclared"):
        AnalysisTemplate(name="t", metrics=(_metric('up{job="{{args.job}}"}'),))
    template = AnalysisTemplate(
        name="t", metrics=(_metric('up{job="{{ args.job }}"}'),), args=(TemplateArg(name="job"),)
    )
    assert render(template, {"job": "api"}) == {"m": 'up{job="api"}'}


def test_min_samples_cannot_exceed_count() -> None:
    with pytest.raises(ValidationError, match="min_samples"):
        _metric("up", count=2, min_samples=3)


def test_templates_are_frozen() -> None:
    with pytest.raises(ValidationError):
        BUILTINS["error-rate"].name = "x"  # type: ignore[misc]


def test_rescheduled_changes_every_metric_and_validates_again() -> None:
    fast = rescheduled(BUILTINS["error-rate"], interval_seconds=2, count=4)
    assert [(m.interval_seconds, m.count) for m in fast.metrics] == [(2, 4)]
    assert fast.metrics[0].query == BUILTINS["error-rate"].metrics[0].query
    with pytest.raises(ValidationError, match="min_samples"):
        rescheduled(BUILTINS["error-rate"], count=1, min_samples=2)

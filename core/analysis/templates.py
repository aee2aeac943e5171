"""Analysis templates as Argo Rollouts writes them (AnalysisTemplate, ClusterAnalysisTemplate).

A template is frozen data: metrics with a provider (Prometheus or web), Argo's schedule and limits
(`interval`, `count`, `initialDelay`, `failureLimit`, `inconclusiveLimit`, `consecutiveErrorLimit`)
and `successCondition`/`failureCondition` in Argo's expression language, parsed when the template
is read (core/analysis/conditions.py; never `eval`). `AnalysisTemplate.model_validate` takes an
Argo document (`apiVersion`, `kind`, `metadata`, `spec`) or the flat form this model dumps; what
is not supported is refused naming the field (core/analysis/argo_fields.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema, model_validator

from core.analysis import argo_fields
from core.analysis.conditions import Condition
from core.analysis.jsonpath import steps
from core.durations import go_duration, parse_duration
from core.errors import ConfigError
from core.release import defaults
from core.release.fields import DURATION_SCHEMA
from core.release.fields import Model as _Model

_ARG_NAME = r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$"
#: `{{args.name}}`, as Argo writes it (spaces inside the braces allowed).
PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")


def _go_seconds(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    try:
        return parse_duration(value, "duration")
    except ConfigError as exc:
        raise ValueError(exc.message) from None


def _whole(value: Any) -> Any:
    """Argo's int-or-string counts: 5 or "5" (a templated count is not supported)."""
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ValueError(f"{value!r} is not a whole number: write the number itself")
        return int(value)
    return value


GoSeconds = Annotated[
    float,
    BeforeValidator(_go_seconds),
    PlainSerializer(go_duration, return_type=str, when_used="json"),
    WithJsonSchema(DURATION_SCHEMA),
]
Count = Annotated[int, BeforeValidator(_whole)]


class Header(_Model):
    """One HTTP header (`key`, `value`); the value may hold `{{args.x}}` (a secret, say)."""

    key: str = Field(min_length=1)
    """The header's name."""
    value: str
    """The header's value; may hold {{args.name}}."""


class SecretKeyRef(_Model):
    """A key of a Secret in the release's namespace."""

    name: str = Field(min_length=1)
    """The Secret's name."""
    key: str = Field(min_length=1)
    """The key inside the Secret."""


class ArgSource(_Model):
    """`valueFrom` of a template argument: `secretKeyRef` (its value is masked in every report)."""

    secret_key_ref: SecretKeyRef
    """Read the value from this Secret's key (masked in every report)."""


class TemplateArg(_Model):
    """A template argument: a default `value`, a `valueFrom.secretKeyRef`, or neither (required)."""

    name: str = Field(pattern=_ARG_NAME)
    """The argument's name, used in queries as {{args.name}}."""
    value: str | None = None
    """Its default value; a release's args override it."""
    value_from: ArgSource | None = None
    """Read the value from a Secret instead."""

    @model_validator(mode="after")
    def _one(self) -> TemplateArg:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"argument {self.name!r} has both value and valueFrom: keep one")
        return self


class PrometheusProvider(_Model):
    """Argo's `prometheus` provider: `query`, optional `address`, `timeout` (seconds), `headers`.

    No `address`: the Prometheus block the release uses (its URL and credentials). With one, that
    server is asked with the template's headers only.
    """

    query: str = Field(min_length=1)
    """The PromQL query; may hold {{args.name}}."""
    address: str = ""
    """The Prometheus to ask; empty: the release's Prometheus block."""
    timeout: int | None = Field(None, gt=0)
    """Seconds one query may take."""
    headers: tuple[Header, ...] = ()
    """HTTP headers sent with each query."""
    insecure: bool = False
    """Skip TLS verification (not recommended)."""


class WebProvider(_Model):
    """Argo's `web` provider: a JSON endpoint and a `jsonPath` into its answer."""

    url: str = Field(min_length=1)
    """The JSON endpoint to ask; may hold {{args.name}}."""
    method: Literal["GET", "POST", "PUT"] = "GET"
    """GET, POST or PUT."""
    headers: tuple[Header, ...] = ()
    """HTTP headers sent with each request."""
    body: str | None = None
    """The request's body (POST and PUT)."""
    timeout_seconds: int = Field(10, gt=0)
    """Seconds one request may take (default 10)."""
    json_path: str = "{$}"
    """Where the measured value sits in the answer (default {$}, the whole answer)."""
    insecure: bool = False
    """Skip TLS verification (not recommended)."""

    @model_validator(mode="after")
    def _path(self) -> WebProvider:
        steps(self.json_path)  # a ValueError names the path
        return self


class Provider(_Model):
    """Exactly one of `prometheus` or `web`."""

    prometheus: PrometheusProvider | None = None
    """Measure with a Prometheus query."""
    web: WebProvider | None = None
    """Measure with a JSON web endpoint."""

    @model_validator(mode="before")
    @classmethod
    def _one(cls, data: Any) -> Any:
        argo_fields.refuse_provider(data)
        return data

    @property
    def kind(self) -> str:
        """Which provider: prometheus or web."""
        return "prometheus" if self.prometheus is not None else "web"


class MetricTemplate(_Model):
    """One metric: its provider, Argo's conditions, schedule and limits.

    `count` unset with an `interval`: measured until the release ends (a background analysis, as
    in Argo); neither: one measurement. Limits compare strictly, as Argo's do: the metric fails
    once failures > `failure_limit`. `dry_run` and `measurement_retention` come from the
    template's (or the release's) `dryRun` and `measurementRetention` lists.
    """

    name: str = Field(pattern=_ARG_NAME)
    """The metric's name in reports."""
    provider: Provider
    """Where the measurement comes from: prometheus or web."""
    success_condition: str = ""
    """When a measurement is successful, e.g. result[0] >= 0.95."""
    failure_condition: str = ""
    """When a measurement fails, e.g. result[0] > 0.05."""
    interval: GoSeconds | None = Field(None, gt=0)
    """Time between measurements (a Go duration such as 30s); unset: measure once."""
    initial_delay: GoSeconds = Field(0, ge=0)
    """Wait this long before the first measurement (a Go duration)."""
    count: Count | None = Field(None, ge=1)
    """How many measurements to take; unset with an interval: until the release ends."""
    failure_limit: Count = Field(0, ge=0)
    """Failed measurements allowed before the metric fails (default 0)."""
    inconclusive_limit: Count = Field(0, ge=0)
    """Inconclusive measurements allowed before the metric is inconclusive (default 0)."""
    consecutive_error_limit: Count = Field(defaults.CONSECUTIVE_ERROR_LIMIT, ge=0)
    """Errors in a row allowed before the metric errs (default 4)."""
    dry_run: bool = False
    """Measure and report, but never decide the verdict."""
    measurement_retention: int | None = Field(None, ge=1)
    """How many measurements the report keeps."""

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data: Any) -> Any:
        argo_fields.refuse(data, argo_fields.METRIC, "metric")
        return data

    @model_validator(mode="after")
    def _judged(self) -> MetricTemplate:
        if not (self.success_condition or self.failure_condition):
            raise ValueError(
                f"metric {self.name} has neither successCondition nor failureCondition: Argo "
                "would count every measurement as Successful; add a condition, e.g. "
                "successCondition: result[0] >= 0.95"
            )
        return self

    @property
    def interval_seconds(self) -> float:
        """Seconds between measurements (Argo measures once when no interval is given)."""
        return self.interval if self.interval is not None else 60.0

    @property
    def initial_delay_seconds(self) -> float:
        """Seconds before the first measurement."""
        return self.initial_delay

    @property
    def runs_until_ended(self) -> bool:
        """True when the metric has an interval and no count: it runs until the release ends."""
        return self.count is None and self.interval is not None

    @property
    def measurements(self) -> int | None:
        """How many non-error measurements decide it; None: until the release ends."""
        if self.count is not None:
            return self.count
        return None if self.interval is not None else 1

    def conditions(self, args: frozenset[str] = frozenset()) -> tuple[Condition | None, ...]:
        """(success, failure) conditions parsed; None for one not given.

        Raises:
            ConfigError: an expression is not of Argo's supported forms, naming it.
        """
        return tuple(
            Condition.parse(text, args or None, what) if text else None
            for text, what in (
                (self.success_condition, f"metric {self.name} successCondition"),
                (self.failure_condition, f"metric {self.name} failureCondition"),
            )
        )


class AnalysisTemplate(_Model):
    """A named set of metrics plus the arguments they use (an Argo AnalysisTemplate).

    `kind` is AnalysisTemplate (read from the release's namespace) or ClusterAnalysisTemplate
    (named with `clusterScope: true`). Argo documents are read as written; see the module's doc.
    """

    kind: Literal["AnalysisTemplate", "ClusterAnalysisTemplate"] = "AnalysisTemplate"
    """AnalysisTemplate (the release's namespace) or ClusterAnalysisTemplate."""
    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", max_length=253)
    """The template's name, as analyses refer to it."""
    args: tuple[TemplateArg, ...] = ()
    """The arguments its queries use."""
    metrics: tuple[MetricTemplate, ...] = Field(min_length=1)
    """What it measures and how each measurement is judged."""

    @model_validator(mode="before")
    @classmethod
    def _from_argo(cls, data: Any) -> Any:
        return argo_fields.flatten(data)

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisTemplate:
        declared = {a.name for a in self.args}
        if len(declared) != len(self.args):
            raise ValueError(f"template {self.name} declares an argument twice")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"template {self.name} has two metrics of the same name")
        for metric in self.metrics:
            try:
                metric.conditions(frozenset(declared) or frozenset({""}))
            except ConfigError as exc:
                raise ValueError(exc.message) from None
            if used := sorted(placeholders(metric) - declared):
                raise ValueError(
                    f"metric {metric.name} uses {{{{args.{used[0]}}}}}, which template "
                    f"{self.name} does not declare: add it to args"
                )
        return self

    @property
    def key(self) -> str:
        """How a release names it: `name`, or `cluster/name` for a ClusterAnalysisTemplate."""
        return f"cluster/{self.name}" if self.kind == "ClusterAnalysisTemplate" else self.name

    def to_argo(self) -> dict[str, Any]:
        """The template as an argoproj.io/v1alpha1 document, as `kubectl apply` takes it."""
        return argo_fields.to_argo(self)


def placeholders(metric: MetricTemplate) -> set[str]:
    """The argument names a metric's provider and conditions use."""
    texts = [metric.success_condition, metric.failure_condition]
    provider = metric.provider.prometheus or metric.provider.web
    for value in provider.model_dump().values() if provider else ():
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, tuple | list):
            texts += [h["value"] for h in value if isinstance(h, Mapping)]
    return {name for text in texts for name in PLACEHOLDER.findall(text or "")}


def rescheduled(template: AnalysisTemplate, **changes: object) -> AnalysisTemplate:
    """`template` with the same fields of every metric changed (e.g. interval, count), validated."""
    metrics = tuple(
        MetricTemplate.model_validate({**m.model_dump(by_alias=False), **changes})
        for m in template.metrics
    )
    return AnalysisTemplate.model_validate(
        {**template.model_dump(by_alias=False), "metrics": metrics}
    )


def load_templates(source: str) -> list[AnalysisTemplate]:
    """Every AnalysisTemplate and ClusterAnalysisTemplate of a YAML file (`---`-separated).

    Raises:
        ConfigError: a document is not one, or not one this pipeline can run (naming which).
    """
    out = []
    try:
        documents = [d for d in yaml.safe_load_all(source) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"the analysis templates are not YAML: {exc}") from None
    for i, doc in enumerate(documents):
        try:
            out.append(AnalysisTemplate.model_validate(doc))
        except ValueError as exc:
            raise ConfigError(f"document {i + 1}: {exc}") from None
    return out

"""Analysis templates as data, and the one pure function that renders their PromQL."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.durations import PROMQL_UNITS, parse_duration
from core.errors import ConfigError
from core.release import defaults

PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}")
_ARG_NAME = r"^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$"
_UNSAFE = re.compile(r"[\"\\\x00-\x1f\x7f]")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Threshold(_Frozen):
    """A success range: `min <= value <= max`, both inclusive, either optional (not both).

    `min_arg`/`max_arg` name a template argument that, when given, replaces that bound.
    """

    min: float | None = None
    max: float | None = None
    min_arg: str | None = None
    max_arg: str | None = None

    @model_validator(mode="after")
    def _a_range(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs min, max or both")
        bounds = [b for b in (self.min, self.max) if b is not None]
        if any(math.isnan(b) for b in bounds):
            raise ValueError("a threshold bound cannot be NaN")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"threshold min {self.min} is above max {self.max}")
        if (self.min_arg and self.min is None) or (self.max_arg and self.max is None):
            raise ValueError("an argument can only override a bound that has a default value")
        return self

    def contains(self, value: float) -> bool:
        """True if `value` lies within the range (NaN never does)."""
        if math.isnan(value):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def __str__(self) -> str:
        if self.min is not None and self.max is not None:
            return f"in [{self.min:g}, {self.max:g}]"
        return f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"


class TemplateArg(_Frozen):
    """A template argument; without a default, every analysis must pass a value.

    `kind` "label" (a label value, used inside quotes) or "duration" (a PromQL range such as
    `5m`, the only kind allowed outside quotes).
    """

    name: str = Field(pattern=_ARG_NAME)
    default: str | None = None
    kind: Literal["label", "duration"] = "label"


class MetricTemplate(_Frozen):
    """One metric: its query, success range and Argo's measurement schedule and limits.

    Limits compare strictly, as Argo's do: the metric fails once failures > `failure_limit`.
    """

    name: str = Field(pattern=_ARG_NAME)
    query: str = Field(min_length=1)
    success: Threshold
    dry_run: bool = False
    interval_seconds: float = Field(60, gt=0)
    count: int = Field(1, ge=1)
    initial_delay_seconds: float = Field(0, ge=0)
    failure_limit: int = Field(0, ge=0)
    inconclusive_limit: int = Field(0, ge=0)
    consecutive_error_limit: int = Field(defaults.CONSECUTIVE_ERROR_LIMIT, ge=0)
    min_samples: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _reachable(self) -> MetricTemplate:
        if self.min_samples > self.count:
            raise ValueError(
                f"metric {self.name}: min_samples {self.min_samples} > count {self.count}, "
                "so it could never succeed"
            )
        return self


class AnalysisTemplate(_Frozen):
    """A named set of metrics plus the arguments their queries and thresholds use."""

    name: str = Field(pattern=_ARG_NAME)
    metrics: tuple[MetricTemplate, ...] = Field(min_length=1)
    args: tuple[TemplateArg, ...] = ()

    @model_validator(mode="after")
    def _args_declared(self) -> AnalysisTemplate:
        declared = {a.name for a in self.args}
        if len(declared) != len(self.args):
            raise ValueError(f"template {self.name} declares an argument twice")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"template {self.name} has two metrics of the same name")
        durations = {a.name for a in self.args if a.kind == "duration"}
        for metric in self.metrics:
            _check_quoted(metric.name, metric.query, durations)
            used = set(PLACEHOLDER.findall(metric.query))
            used |= {a for a in (metric.success.min_arg, metric.success.max_arg) if a}
            if used - declared:
                raise ValueError(
                    f"metric {metric.name} uses undeclared args {sorted(used - declared)}"
                )
        return self


def _is_window(value: str) -> bool:
    """True for a PromQL range such as 30s, 5m or 1h30m (positive; no bare numbers)."""
    if value != value.strip():
        return False
    try:
        return parse_duration(value, units=PROMQL_UNITS, bare_seconds=False, fractions=False) > 0
    except ConfigError:
        return False


def _check_quoted(metric: str, query: str, durations: set[str] | frozenset = frozenset()) -> None:
    """Raise ValueError unless every placeholder of `query` is quoted.

    Raise ValueError unless every placeholder of `query` lies inside a double-quoted string
    (duration arguments excepted: their values are checked to be durations when rendered).
    """
    inside, escaped, quoted_at = False, False, set()
    for i, char in enumerate(query):
        if inside:
            quoted_at.add(i)
        if escaped:
            escaped = False
        elif inside and char == "\\":
            escaped = True
        elif char == '"':
            inside = not inside
    for match in PLACEHOLDER.finditer(query):
        if match.start() not in quoted_at and match.group(1) not in durations:
            raise ValueError(f"metric {metric}: placeholder {match.group(0)} is not in quotes")
    if "{{" in PLACEHOLDER.sub("", query):
        raise ValueError(f"metric {metric}: a '{{{{' is not an {{{{args.name}}}} placeholder")


def _values(template: AnalysisTemplate, args: Mapping[str, str]) -> dict[str, str]:
    """The template's argument values: given ones over defaults; ConfigError if one is missing."""
    values: dict[str, str] = {}
    for arg in template.args:
        value = args.get(arg.name, arg.default)
        if value is None:
            raise ConfigError(f"analysis argument {arg.name!r} is missing", template=template.name)
        values[arg.name] = value
    return values


def render(template: AnalysisTemplate, args: Mapping[str, str]) -> dict[str, str]:
    """Substitute `{{args.x}}` in every metric's query; return {metric name: PromQL}.

    A template is frozen data (DESIGN.md, principle 5): metrics with a PromQL query holding
    `{{args.name}}` placeholders and a typed success range. `render` substitutes the arguments
    (plain text replacement: no eval, no Jinja); `thresholds` applies arguments that override a
    bound, such as the seed's `error-threshold`. Every placeholder must sit inside a double-quoted
    PromQL string, and argument values may hold no quote, backslash or control character, so a value
    cannot leave its label matcher and inject PromQL. The one exception is an argument of kind
    "duration" (a range window such as `{_W}`): it may stand outside quotes because its value must
    be a PromQL duration (`30s`, `5m`, `1h`) and nothing else.

    Args:
        template: The analysis template.
        args: Argument values by name; arguments the template does not declare are ignored
            (one AnalysisRef passes the same args to several templates, as in Argo).

    Raises:
        ConfigError: An argument without a default is missing, or a value is empty or holds a
            quote, backslash or control character (it could break out of its label matcher).
    """
    values = _values(template, args)
    kinds = {a.name: a.kind for a in template.args}
    for name, value in values.items():
        if kinds[name] == "duration" and not _is_window(value):
            raise ConfigError(
                f"analysis argument {name!r} must be a PromQL duration such as "
                f"30s, 5m or 1h, got {value!r}",
                template=template.name,
            )
        if not value or _UNSAFE.search(value):
            raise ConfigError(
                f"analysis argument {name!r} must be a non-empty label value without quotes, "
                "backslashes or control characters",
                template=template.name,
            )
    return {
        m.name: PLACEHOLDER.sub(lambda g: values[g.group(1)], m.query) for m in template.metrics
    }


def thresholds(template: AnalysisTemplate, args: Mapping[str, str]) -> dict[str, Threshold]:
    """Each metric's success range with argument overrides applied ({metric name: Threshold}).

    Raises:
        ConfigError: An argument is missing or an overriding value is not a finite number.
    """
    values = _values(template, args)
    out: dict[str, Threshold] = {}
    for metric in template.metrics:
        fields = metric.success.model_dump()
        for bound in ("min", "max"):
            arg = fields[f"{bound}_arg"]
            if arg:
                fields[bound] = _number(template.name, arg, values[arg])
        try:
            out[metric.name] = Threshold(**fields)
        except ValueError as err:
            raise ConfigError(f"metric {metric.name}: {err}", template=template.name) from err
    return out


def rescheduled(template: AnalysisTemplate, **changes: object) -> AnalysisTemplate:
    """`template` with the same fields of every metric changed (e.g.

    interval_seconds, count), validated again: a change that makes a metric unreachable raises
    ValidationError.
    """
    metrics = tuple(
        MetricTemplate.model_validate({**m.model_dump(), **changes}) for m in template.metrics
    )
    return AnalysisTemplate.model_validate({**template.model_dump(), "metrics": metrics})


def _number(template: str, arg: str, value: str) -> float:
    """`value` as a finite float, or ConfigError naming the argument."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(
            f"analysis argument {arg!r} must be a number, got {value!r}", template=template
        )
    return number


# --- Built-in templates: the seed's success-rate and error-rate, and its HighLatency alert ---

_SEL = (
    'service="{{args.service-name}}", namespace=~"{{args.namespace}}", '
    'track=~"{{args.track}}", color=~"{{args.color}}", revision=~"{{args.revision}}"'
)
_W = "[{{args.window}}]"
_ARGS = (
    TemplateArg(name="service-name"),
    # The rate window. The runner passes each metric's interval (at least four scrapes), as
    # Flagger does, so a measurement sees only what happened since the previous one.
    TemplateArg(name="window", default="5m", kind="duration"),
    TemplateArg(name="namespace", default=".*"),
    TemplateArg(name="track", default=".*"),
    TemplateArg(name="color", default=".*"),  # blue-green: the color the planner measures
    TemplateArg(name="revision", default=".*"),
)
_SCHEDULE = {
    "interval_seconds": 60,
    "count": 5,
    "failure_limit": 1,
    "inconclusive_limit": 2,
    "min_samples": 3,
}

BUILTINS: dict[str, AnalysisTemplate] = {
    "success-rate": AnalysisTemplate(
        name="success-rate",
        args=_ARGS,
        metrics=(
            MetricTemplate(
                name="success-rate",
                query=f'sum(rate(http_requests_total{{{_SEL}, status!~"5.."}}{_W})) / '
                f"sum(rate(http_requests_total{{{_SEL}}}{_W}))",
                success=Threshold(min=0.95),
                **_SCHEDULE,
            ),
        ),
    ),
    "error-rate": AnalysisTemplate(
        name="error-rate",
        args=(*_ARGS, TemplateArg(name="error-threshold", default="0.05")),
        metrics=(
            MetricTemplate(
                name="error-rate",
                query=f'sum(rate(http_requests_total{{{_SEL}, status=~"5.."}}{_W})) / '
                f"sum(rate(http_requests_total{{{_SEL}}}{_W}))",
                success=Threshold(max=0.05, max_arg="error-threshold"),
                **_SCHEDULE,
            ),
        ),
    ),
    "latency-p95": AnalysisTemplate(
        name="latency-p95",
        args=_ARGS,
        metrics=(
            MetricTemplate(
                name="latency-p95",
                query="histogram_quantile(0.95, sum by (le) "
                f"(rate(http_request_duration_seconds_bucket{{{_SEL}}}{_W})))",
                success=Threshold(max=0.5),
                **_SCHEDULE,
            ),
        ),
    ),
}

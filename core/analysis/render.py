"""The one pure function that fills a metric's `{{args.x}}` placeholders, safely.

Plain text replacement (no eval, no Jinja). In a PromQL query every placeholder must sit inside a
double-quoted string, where its value may hold no quote, backslash or control character, so it
cannot leave its label matcher; one outside quotes must take a PromQL duration (`5m`, a range
window) or a number. Secret arguments (`valueFrom.secretKeyRef`) fill headers and addresses like
any other, and `mask` hides their values wherever a rendered text is shown.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from core.analysis.templates import PLACEHOLDER, AnalysisTemplate, MetricTemplate
from core.durations import PROMQL_UNITS, parse_duration
from core.errors import ConfigError

_UNSAFE = re.compile(r"[\"\\\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
MASK = "***"


@dataclass(frozen=True)
class Rendered:
    """One metric with its arguments filled in: what to ask, and which values to mask."""

    metric: MetricTemplate
    query: str = ""  # Prometheus: the PromQL; web: the URL
    address: str = ""  # Prometheus: the server to ask ("" for the release's block)
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    secrets: frozenset[str] = frozenset()

    def shown(self, text: str | None = None) -> str:
        """`text` (the query by default) with every secret value masked, for reports."""
        return mask(self.query if text is None else text, self.secrets)


def mask(text: str, secrets: Collection[str]) -> str:
    """`text` with every secret value replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def _is_window_or_number(value: str) -> bool:
    if value != value.strip() or _CONTROL.search(value):
        return False
    if _NUMBER.fullmatch(value):
        return True
    try:
        return parse_duration(value, units=PROMQL_UNITS, bare_seconds=False, fractions=False) > 0
    except ConfigError:
        return False


def quoted_positions(query: str) -> set[int]:
    """Offsets of `query` that lie inside a double-quoted PromQL string."""
    inside, escaped, out = False, False, set()
    for i, char in enumerate(query):
        if inside:
            out.add(i)
        if escaped:
            escaped = False
        elif inside and char == "\\":
            escaped = True
        elif char == '"':
            inside = not inside
    return out


def values(
    template: AnalysisTemplate, given: Mapping[str, str], secrets: Mapping[str, str]
) -> dict[str, str]:
    """Every argument's value: given over the template's own, secrets from `secrets`.

    Raises:
        ConfigError: an argument without a value, or a secret that was not read.
    """
    out: dict[str, str] = {}
    for arg in template.args:
        if arg.value_from is not None:
            if arg.name not in secrets:
                ref = arg.value_from.secret_key_ref
                raise ConfigError(
                    f"analysis argument {arg.name!r} comes from Secret {ref.name} key {ref.key}, "
                    "which could not be read",
                    template=template.name,
                )
            out[arg.name] = secrets[arg.name]
            continue
        value = given.get(arg.name, arg.value)
        if value is None:
            raise ConfigError(f"analysis argument {arg.name!r} is missing", template=template.name)
        out[arg.name] = value
    return out


def _fill(text: str, args: Mapping[str, str], where: str, promql: bool, template: str) -> str:
    quoted = quoted_positions(text) if promql else set()
    for match in PLACEHOLDER.finditer(text):
        name, value = match.group(1), args.get(match.group(1), "")
        if not value:
            raise ConfigError(f"{where}: analysis argument {name!r} is empty", template=template)
        if promql and match.start() in quoted and _UNSAFE.search(value):
            raise ConfigError(
                f"{where}: analysis argument {name!r} must be a label value without quotes, "
                "backslashes or control characters",
                template=template,
            )
        if promql and match.start() not in quoted and not _is_window_or_number(value):
            raise ConfigError(
                f"{where}: analysis argument {name!r} stands outside quotes, so it must be a "
                f"PromQL duration such as 30s, 5m or 1h, or a number, got {value!r}",
                template=template,
            )
        if not promql and _CONTROL.search(value):
            raise ConfigError(
                f"{where}: analysis argument {name!r} holds a control character",
                template=template,
            )
    return PLACEHOLDER.sub(lambda g: args[g.group(1)], text)


def render(
    template: AnalysisTemplate,
    given: Mapping[str, str],
    secrets: Mapping[str, str] | None = None,
) -> dict[str, Rendered]:
    """Every metric of `template` with its arguments filled in ({metric name: Rendered}).

    Args:
        template: the template.
        given: argument values by name; ones the template does not declare are ignored (one
            AnalysisRef passes the same args to several templates, as in Argo).
        secrets: the values of the template's secretKeyRef arguments, read from the cluster.

    Raises:
        ConfigError: an argument is missing, empty, or unsafe where it stands.
    """
    secrets = secrets or {}
    args = values(template, given, secrets)
    hidden = frozenset(v for k, v in args.items() if k in secrets)
    out = {}
    for metric in template.metrics:
        where, name = f"metric {metric.name}", template.name
        if (prom := metric.provider.prometheus) is not None:
            out[metric.name] = Rendered(
                metric,
                query=_fill(prom.query, args, where, True, name),
                address=_fill(prom.address, args, f"{where} address", False, name),
                headers={h.key: _fill(h.value, args, where, False, name) for h in prom.headers},
                secrets=hidden,
            )
        elif (web := metric.provider.web) is not None:
            out[metric.name] = Rendered(
                metric,
                query=_fill(web.url, args, f"{where} url", False, name),
                headers={h.key: _fill(h.value, args, where, False, name) for h in web.headers},
                body=_fill(web.body, args, f"{where} body", False, name) if web.body else None,
                secrets=hidden,
            )
    return out

"""Argo's AnalysisTemplate documents in and out, and what of them is refused (naming the field)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.release.unsupported import refuse

if TYPE_CHECKING:
    from core.analysis.templates import AnalysisTemplate

API_VERSION = "argoproj.io/v1alpha1"
KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")
_USE = "use the prometheus or web provider"

#: Metric fields Argo has and a release does not do.
METRIC: dict[str, str] = {
    "consecutiveSuccessLimit": "use count with failureLimit and inconclusiveLimit",
}
#: Providers Argo has and a release does not run.
PROVIDERS: dict[str, str] = {
    name: f"the {name} provider is not run here: {_USE}"
    for name in (
        "job",
        "kayenta",
        "wavefront",
        "newRelic",
        "datadog",
        "cloudWatch",
        "graphite",
        "influxdb",
        "skywalking",
        "plugin",
    )
}
#: Fields of the two providers a release does not do.
PROVIDER_FIELDS: dict[str, dict[str, str]] = {
    "prometheus": {
        "authentication": "credentials live in the KYB Prometheus block: leave address empty "
        "to query the block's server with them",
        "rangeQuery": "use an instant query with a range inside it, e.g. rate(x[5m])",
    },
    "web": {
        "authentication": "pass a token through a header from a secretKeyRef argument",
        "jsonBody": "write the JSON as text in body",
    },
}
#: Template `spec` fields (beside args, metrics, dryRun, measurementRetention).
SPEC = ("args", "metrics", "dryRun", "measurementRetention")
__all__ = ["flatten", "refuse", "refuse_provider", "to_argo"]


def refuse_provider(data: Any) -> None:
    """A provider must be exactly one of prometheus or web, with no field this does not do."""
    if not isinstance(data, Mapping):
        return
    data = {k: v for k, v in data.items() if v is not None}
    for key in data:
        if key in PROVIDERS:
            raise ValueError(f"provider.{key} is not supported: {PROVIDERS[key]}")
    if len(data) != 1:
        raise ValueError(f"a provider needs exactly one of prometheus, web; got {len(data)}")
    kind, body = next(iter(data.items()))
    if kind in PROVIDER_FIELDS:
        refuse(body, PROVIDER_FIELDS[kind], f"provider.{kind}")


def _matching(rules: Any, name: str, field: str) -> list[Mapping[str, Any]]:
    """The `dryRun`/`measurementRetention` entries whose metricName (a regex) matches `name`."""
    out = []
    for rule in rules or []:
        pattern = rule.get("metricName") if isinstance(rule, Mapping) else None
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{field} entries need a metricName")
        try:
            if re.fullmatch(pattern, name):
                out.append(rule)
        except re.error as exc:
            raise ValueError(
                f"{field} metricName {pattern!r} is not a regular expression: {exc}"
            ) from None
    return out


def flatten(data: Any) -> Any:
    """An Argo document (`apiVersion`, `kind`, `metadata`, `spec`) as the template's flat form.

    `dryRun` and `measurementRetention` (metricName regular expressions) are applied to the
    metrics they match. Anything else is returned unchanged for the model to check.

    Raises:
        ValueError: wrong apiVersion or kind, no name, or a spec field that is not read.
    """
    if not isinstance(data, Mapping) or "spec" not in data:
        return data
    api, kind = data.get("apiVersion", API_VERSION), data.get("kind", KINDS[0])
    if api != API_VERSION or kind not in KINDS:
        raise ValueError(
            f"expected {API_VERSION} AnalysisTemplate or ClusterAnalysisTemplate, got {api}/{kind}"
        )
    spec, name = data.get("spec") or {}, (data.get("metadata") or {}).get("name")
    if not name:
        raise ValueError(f"the {kind} has no metadata.name")
    if unknown := sorted(set(spec) - set(SPEC)):
        raise ValueError(f"{kind} {name}: spec.{unknown[0]} is not read: use {', '.join(SPEC)}")
    metrics = []
    for metric in spec.get("metrics") or []:
        metric = dict(metric) if isinstance(metric, Mapping) else metric
        if isinstance(metric, dict) and isinstance(metric.get("name"), str):
            if _matching(spec.get("dryRun"), metric["name"], "dryRun"):
                metric["dryRun"] = True
            kept = _matching(spec.get("measurementRetention"), metric["name"], "retention")
            if kept:
                metric["measurementRetention"] = kept[-1].get("limit")
        metrics.append(metric)
    return {"kind": kind, "name": name, "args": spec.get("args") or [], "metrics": metrics}


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:g}s"


def to_argo(template: AnalysisTemplate) -> dict[str, Any]:
    """`template` as the argoproj.io/v1alpha1 document Argo's controller reads."""
    metrics, dry, kept = [], [], []
    for m in template.metrics:
        body = m.model_dump(
            by_alias=True, exclude_none=True, exclude={"dry_run", "measurement_retention"}
        )
        body["interval"] = _seconds(m.interval)
        body["initialDelay"] = _seconds(m.initial_delay) if m.initial_delay else None
        metrics.append({k: v for k, v in body.items() if v not in (None, "")})
        if m.dry_run:
            dry.append({"metricName": re.escape(m.name)})
        if m.measurement_retention:
            kept.append({"metricName": re.escape(m.name), "limit": m.measurement_retention})
    spec: dict[str, Any] = {
        "args": [a.model_dump(by_alias=True, exclude_none=True) for a in template.args],
        "metrics": metrics,
    }
    spec |= {"dryRun": dry} if dry else {}
    spec |= {"measurementRetention": kept} if kept else {}
    return {
        "apiVersion": API_VERSION,
        "kind": template.kind,
        "metadata": {"name": template.name},
        "spec": spec,
    }

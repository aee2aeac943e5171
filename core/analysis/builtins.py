"""The built-in analysis templates, as Argo AnalysisTemplates.

The seed's success-rate and error-rate, and its HighLatency alert as latency-p95.
"""

from __future__ import annotations

from typing import Any

from core.analysis.templates import AnalysisTemplate

_SEL = (
    'service="{{args.service-name}}", namespace=~"{{args.namespace}}", '
    'track=~"{{args.track}}", color=~"{{args.color}}", revision=~"{{args.revision}}"'
)
_W = "[{{args.window}}]"
_ARGS = [
    {"name": "service-name"},
    # The rate window. The runner passes each metric's interval (at least four scrapes), as
    # Flagger does, so a measurement sees only what happened since the previous one.
    {"name": "window", "value": "5m"},
    {"name": "namespace", "value": ".*"},
    {"name": "track", "value": ".*"},
    {"name": "color", "value": ".*"},  # blue-green: the color the planner measures
    {"name": "revision", "value": ".*"},
]
_SCHEDULE = {"interval": "1m", "count": 5, "failureLimit": 1, "inconclusiveLimit": 2}


def _template(name: str, query: str, condition: str, args: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": args,
            "metrics": [
                {
                    "name": name,
                    "successCondition": condition,
                    **_SCHEDULE,
                    "provider": {"prometheus": {"query": query}},
                }
            ],
        },
    }


#: The documents, as `kubectl apply` would take them (docs/analysis-templates.md shows them).
DOCUMENTS: dict[str, dict[str, Any]] = {
    "success-rate": _template(
        "success-rate",
        f'sum(rate(http_requests_total{{{_SEL}, status!~"5.."}}{_W})) / '
        f"sum(rate(http_requests_total{{{_SEL}}}{_W}))",
        "result[0] >= 0.95",
        _ARGS,
    ),
    "error-rate": _template(
        "error-rate",
        f'sum(rate(http_requests_total{{{_SEL}, status=~"5.."}}{_W})) / '
        f"sum(rate(http_requests_total{{{_SEL}}}{_W}))",
        "result[0] <= {{args.error-threshold}}",
        [*_ARGS, {"name": "error-threshold", "value": "0.05"}],
    ),
    "latency-p95": _template(
        "latency-p95",
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(http_request_duration_seconds_bucket{{{_SEL}}}{_W})))",
        "result[0] <= 0.5",
        _ARGS,
    ),
}
BUILTINS: dict[str, AnalysisTemplate] = {
    name: AnalysisTemplate.model_validate(doc) for name, doc in DOCUMENTS.items()
}

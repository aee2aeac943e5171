"""Argo Rollouts objects for the tests: analysis templates with a Prometheus metric."""

from __future__ import annotations

import uuid
from typing import Any

GROUP, VERSION = "argoproj.io", "v1alpha1"
TEMPLATES = "analysistemplates"
CLUSTER_TEMPLATES = "clusteranalysistemplates"
PROMETHEUS = "http://127.0.0.1:9090"  # the platform's Prometheus (KYB_PROMETHEUS_PORT's default)
QUERY = (
    'sum(rate(http_requests_total{service="{{args.service-name}}",code!~"5.."}[1m])) / '
    'sum(rate(http_requests_total{service="{{args.service-name}}"}[1m]))'
)


def unique(prefix: str) -> str:
    """A name no other test uses, e.g. success-rate-1a2b3c4d."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def analysis_template(name: str, cluster_scope: bool = False) -> dict[str, Any]:
    """An AnalysisTemplate (or ClusterAnalysisTemplate) with one Prometheus success-rate metric."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterAnalysisTemplate" if cluster_scope else "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": [{"name": "service-name"}],
            "metrics": [
                {
                    "name": "success-rate",
                    "interval": "30s",
                    "count": 3,
                    "successCondition": "result[0] >= 0.95",
                    "failureLimit": 1,
                    "provider": {"prometheus": {"address": PROMETHEUS, "query": QUERY}},
                }
            ],
        },
    }

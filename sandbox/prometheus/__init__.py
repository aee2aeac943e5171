"""Prometheus's Kubernetes service discovery of pods: its RBAC and scrape job (pure: no I/O).

The job is the one a real cluster's Prometheus runs (the `kubernetes-pods` job of Prometheus's
example configuration), so the analysis templates select on the same labels here and there:

- a pod is scraped when it is annotated `prometheus.io/scrape: "true"` and Running; the target is
  its pod IP and `prometheus.io/port` (default: the container port), path `prometheus.io/path`
  (default `/metrics`), scheme `prometheus.io/scheme` (default http);
- every series gets `namespace`, `pod`, `app` (pod label `app`, else `app.kubernetes.io/name`),
  `service` (the same value: the label the templates select on), `track` (the release's
  stable/canary label), `color` (blue-green) and `pod_template_hash` (Deployment revision).

Two sandbox-only rules: only pods the pod runner runs (label `kyb.dev/run: "true"`) are kept,
since KWOK's simulated pods serve nothing and would only add targets that are down; and only pod
IPs in 127.0.0.0/8 (the platform dials loopback only). A real cluster's job has neither.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sandbox.podrunner import RUN_LABEL

RBAC_FILE = Path(__file__).with_name("rbac.yaml")  # Namespace, ServiceAccount, ClusterRole(Binding)
NAMESPACE = "kyb-prometheus"
SERVICE_ACCOUNT = "prometheus"
JOB = "kubernetes-pods"
SCRAPE_ANNOTATION = "prometheus.io/scrape"
PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"
LOOPBACK_IP = r"127\.\d+\.\d+\.\d+"

_META = "__meta_kubernetes_pod_"
RUN_META = _META + "label_" + re.sub(r"[^a-zA-Z0-9_]", "_", RUN_LABEL)
# target label <- pod label (Prometheus's meta label names: non-alphanumerics become `_`)
POD_LABELS = {
    "track": "track",
    "color": "color",
    "pod_template_hash": "pod_template_hash",
}


def rbac() -> list[dict[str, Any]]:
    """Prometheus's Namespace, ServiceAccount, ClusterRole and ClusterRoleBinding (rbac.yaml)."""
    return [doc for doc in yaml.safe_load_all(RBAC_FILE.read_text()) if doc]


def _copy(source: str, target: str) -> dict[str, Any]:
    """Set `target` from a meta label when that label is not empty."""
    return {"source_labels": [source], "regex": "(.+)", "target_label": target}


def pods_job(apiserver: str, token_file: Path, ca_file: Path) -> dict[str, Any]:
    """The `kubernetes-pods` scrape job: pods found through the apiserver, relabelled.

    Args:
        apiserver: the apiserver's URL.
        token_file: the ServiceAccount's token (Prometheus reads the file on each request).
        ca_file: the apiserver's CA certificate.
    """
    annotation = f"{_META}annotation_prometheus_io_"
    relabel: list[dict[str, Any]] = [
        {"source_labels": [f"{annotation}scrape"], "regex": "true", "action": "keep"},
        {"source_labels": [f"{_META}phase"], "regex": "Running", "action": "keep"},
        {"source_labels": [RUN_META], "regex": "true", "action": "keep"},  # sandbox only
        {"source_labels": [f"{_META}ip"], "regex": LOOPBACK_IP, "action": "keep"},  # sandbox only
        _copy(f"{annotation}scheme", "__scheme__"),
        _copy(f"{annotation}path", "__metrics_path__"),
        {
            "source_labels": [f"{_META}ip", f"{annotation}port"],
            "regex": r"(.+);(\d+)",
            "replacement": "$1:$2",
            "target_label": "__address__",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": [f"{_META}name"], "target_label": "pod"},
        _copy(f"{_META}label_app_kubernetes_io_name", "app"),
        _copy(f"{_META}label_app", "app"),  # `app` wins over app.kubernetes.io/name
        _copy("app", "service"),
        *(_copy(f"{_META}label_{src}", dst) for dst, src in POD_LABELS.items()),
    ]
    return {
        "job_name": JOB,
        "kubernetes_sd_configs": [
            {
                "role": "pod",
                "api_server": apiserver,
                "authorization": {"credentials_file": str(token_file)},
                "tls_config": {"ca_file": str(ca_file)},
            }
        ],
        "relabel_configs": relabel,
    }

"""Prometheus's Kubernetes service discovery of the main cluster's pods (`kubernetes-pods` job).

Applies sandbox/prometheus/rbac.yaml to the main cluster (ServiceAccount kyb-prometheus/prometheus,
list/watch pods), mints it a bound token (7 days, renewed by `sandbox up` once half spent or when
the apiserver refuses it) into a 0600 file, copies the apiserver's CA, and gives the platform's
Prometheus the job of `sandbox.prometheus.pods_job`; Prometheus reloads only when that changed.
A separate component because Prometheus starts before the clusters; the job stays in
Prometheus's configuration across its restarts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from sandbox import prometheus as sd
from sandbox import sa_token
from sandbox.components import Status
from sandbox.components.cluster import Cluster
from sandbox.components.prometheus import Prometheus
from sandbox.components.traefik import apply, refuse_outside_loopback
from sandbox.errors import PlatformError
from sandbox.files import write_file
from sandbox.settings import Settings


class PrometheusPods:
    """The `kubernetes-pods` job of the platform's Prometheus, against the main cluster."""

    name = "prometheus-pods"

    def __init__(self, settings: Settings, prometheus: Prometheus, cluster: Cluster) -> None:
        self.settings = settings
        self.prometheus = prometheus
        self.cluster = cluster
        self.state = settings.dir("prometheus")
        self.token_file = self.state / "k8s-token"
        self.ca_file = self.state / "apiserver-ca.crt"

    def _api(self) -> Any:
        from kubernetes import config

        if not self.cluster.kubeconfig.exists():
            raise PlatformError(self.name, f"{self.cluster.cluster.name} is not up", "sandbox up")
        return config.new_client_from_config(str(self.cluster.kubeconfig))

    def _apiserver(self) -> tuple[str, bytes]:
        """The main cluster's apiserver URL and CA certificate (PEM), from its kubeconfig."""
        if not self.cluster.kubeconfig.exists():
            raise PlatformError(self.name, f"{self.cluster.cluster.name} is not up", "sandbox up")
        return sa_token.apiserver(self.cluster.kubeconfig)

    def ensure_token(self) -> None:
        """Mint a bound token for the ServiceAccount when missing, half-spent or refused."""
        sa_token.ensure_token(
            self.cluster.kubeconfig,
            self.token_file,
            sd.NAMESPACE,
            sd.SERVICE_ACCOUNT,
            "/api/v1/pods?limit=1",
        )

    def install(self) -> None:
        """Nothing to install: Prometheus brings its Kubernetes discovery."""

    def up(self) -> None:
        """Apply the RBAC, renew the token, give Prometheus the job (reloaded only if changed)."""
        with self._api() as api:
            apply(api, sd.rbac())
        self.ensure_token()
        host, ca = self._apiserver()
        refuse_outside_loopback("the apiserver", urlsplit(host).hostname or "")
        write_file(self.ca_file, ca, 0o644)
        self.prometheus.set_jobs([sd.pods_job(host, self.token_file, self.ca_file)])

    def down(self) -> None:
        """Nothing runs of its own: the job stays (`sandbox down prometheus` stops Prometheus)."""

    def _job_loaded(self) -> bool:
        try:
            resp = httpx.get(f"{self.prometheus.url}/api/v1/status/config", timeout=5)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200 and f"job_name: {sd.JOB}" in resp.json()["data"]["yaml"]

    def status(self) -> Status:
        """Running when Prometheus has the job loaded."""
        state = "running" if self._job_loaded() else "stopped"
        where = self.cluster.cluster.name
        detail = f"job {sd.JOB}: pods annotated {sd.SCRAPE_ANNOTATION}=true on {where}"
        return Status(self.name, state, self.prometheus.url, detail)

    def env(self) -> dict[str, str]:
        """No client needs more than KYB_PROMETHEUS_URL."""
        return {}

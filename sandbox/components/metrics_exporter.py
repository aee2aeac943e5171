"""The pipeline's metrics exporter (deployments/metrics_exporter.py), scraped, with its rules.

The platform's Prometheus scrapes it and loads the project's alert rules
(deploy/prometheus/*.rules.yml). It reads the platform's Prefect server (its URL, and the
profiles file that holds the auth: no secret in its environment) and serves on 127.0.0.1
(KYB_METRICS_PORT, default 9108).
"""

from __future__ import annotations

import sys

import httpx

from sandbox.components import Status
from sandbox.components.prefect_server import PrefectServer
from sandbox.components.prometheus import Prometheus
from sandbox.procs import Daemon
from sandbox.settings import HOST, Settings

TARGET = "kyb-pipeline"  # the target's name in Prometheus' file discovery, and its job label


class MetricsExporter:
    """The exporter as a daemon of the platform, and Prometheus' target and rules for it."""

    name = "metrics-exporter"

    def __init__(self, settings: Settings, prefect: PrefectServer, prometheus: Prometheus) -> None:
        self.settings, self.prefect, self.prometheus = settings, prefect, prometheus
        self.state = settings.dir("metrics-exporter")
        self.port = settings.ports.metrics
        self.address = f"{HOST}:{self.port}"
        self.url = f"http://{self.address}/metrics"
        self.daemon = Daemon("metrics-exporter", self.state)

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url, timeout=10, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def install(self) -> None:
        """Nothing to install: it is the project's own Python."""

    def up(self) -> None:
        """Start the exporter, then have Prometheus scrape it and load the rules."""
        env = {
            **self.prefect.env(),
            "KYB_METRICS_PORT": str(self.port),
            "KYB_METRICS_HOST": HOST,
            "KYB_METRICS_CACHE_SECONDS": "5",
        }
        self.daemon.ensure(
            lambda: [sys.executable, "-m", "deployments.metrics_exporter"],
            self._answers,
            f"the metrics exporter on {self.url}",
            self.port,
            "stop what listens there or set KYB_METRICS_PORT to a free port",
            env=env,
        )
        self.prometheus.add_target(TARGET, self.address, {"job": TARGET})
        self.prometheus.load_rules()

    def down(self) -> None:
        """Stop the exporter and the scrape of it."""
        self.prometheus.remove_target(TARGET)
        self.daemon.stop()

    def status(self) -> Status:
        """Running or stopped, with its URL."""
        running = bool(self.daemon.pid()) and self._answers()
        return Status(self.name, "running" if running else "stopped", self.url)

    def env(self) -> dict[str, str]:
        """Where the exporter serves."""
        return {"KYB_METRICS_URL": self.url}

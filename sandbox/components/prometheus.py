"""Prometheus on 127.0.0.1, scraping itself and every target file put in its targets folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml

from core.errors import ConfigError
from sandbox.components import Status
from sandbox.install import ensure_debian, which
from sandbox.procs import Daemon
from sandbox.settings import HOST, Settings

SCRAPE_INTERVAL = "2s"  # short, so analyses and tests see new samples quickly


class Prometheus:
    """Debian's Prometheus with file-based service discovery of loopback targets."""

    name = "prometheus"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.dir("prometheus")
        self.port = settings.ports.prometheus
        self.url = f"http://{HOST}:{self.port}"
        self.targets_dir = self.state / "targets"
        self.rules_dir = self.state / "rules"
        self.daemon = Daemon("prometheus", self.state)

    def _write_config(self) -> str:
        self.targets_dir.mkdir(exist_ok=True)
        self.rules_dir.mkdir(exist_ok=True)
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "rule_files": [str(self.rules_dir / "*.yml")],
            "scrape_configs": [
                {
                    "job_name": "prometheus",
                    "static_configs": [{"targets": [f"{HOST}:{self.port}"]}],
                },
                {
                    "job_name": "loopback-targets",
                    "file_sd_configs": [
                        {"files": [str(self.targets_dir / "*.json")], "refresh_interval": "5s"}
                    ],
                },
            ],
        }
        path = self.state / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return str(path)

    def add_target(self, name: str, address: str, labels: dict[str, str] | None = None) -> Path:
        """Ask Prometheus to scrape address (127.0.0.1:PORT only) with the given labels."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise ConfigError("target name must be lowercase letters, digits and dashes", name=name)
        if not re.fullmatch(r"127\.\d+\.\d+\.\d+:\d+|localhost:\d+", address):
            raise ConfigError("Prometheus may only scrape loopback addresses", address=address)
        self.targets_dir.mkdir(exist_ok=True)
        path = self.targets_dir / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [address], "labels": labels or {}}]))
        tmp.rename(path)  # atomic: Prometheus never reads half a file
        return path

    def remove_target(self, name: str) -> None:
        """Stop scraping a target added with add_target."""
        (self.targets_dir / f"{name}.json").unlink(missing_ok=True)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def install(self) -> None:
        """Install Debian's prometheus (which brings promtool)."""
        ensure_debian(self.name, {"prometheus": "prometheus", "promtool": "prometheus"})

    def up(self) -> None:
        """Start Prometheus unless ours already runs."""
        self.daemon.ensure(
            lambda: [
                which(self.name, "prometheus"),
                f"--config.file={self._write_config()}",
                f"--storage.tsdb.path={self.state / 'data'}",
                "--storage.tsdb.retention.time=2d",
                f"--web.listen-address={HOST}:{self.port}",
                "--web.enable-lifecycle",
            ],
            self._answers,
            f"Prometheus on {self.url}",
            self.port,
            "stop it (Debian's prometheus service?) or set KYB_PROMETHEUS_PORT to a free port",
        )

    def down(self) -> None:
        """Stop Prometheus if we started it."""
        self.daemon.stop()

    def status(self) -> Status:
        """Running or stopped, with its URL."""
        running = bool(self.daemon.pid()) and self._answers()
        return Status(self.name, "running" if running else "stopped", self.url)

    def env(self) -> dict[str, str]:
        """The Prometheus URL."""
        return {"KYB_PROMETHEUS_URL": self.url}

"""Prometheus on 127.0.0.1, scraping itself, every target file put in its targets folder, more jobs.

Built from Go modules (sandbox/prometheus/go.mod, v2.53.3, cached like the other binaries):
Debian's package leaves out Kubernetes service discovery, which the `kubernetes-pods` job of
sandbox/components/prometheus_pods.py needs. Debian's package stays installed for promtool.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml

from core.errors import ConfigError
from sandbox.components import Status
from sandbox.errors import PlatformError
from sandbox.files import write_file
from sandbox.install import ensure_debian, go_build
from sandbox.procs import Daemon
from sandbox.settings import HOST, Settings

SCRAPE_INTERVAL = "2s"  # short, so analyses and tests see new samples quickly
VERSION = "2.53.3"  # module github.com/prometheus/prometheus v0.53.3 (sandbox/prometheus/go.mod)
MODULE_DIR = Path(__file__).resolve().parents[1] / "prometheus"
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"  # the project's alert rules
PACKAGE = "github.com/prometheus/prometheus/cmd/prometheus"
LDFLAGS = f"-X github.com/prometheus/common/version.Version={VERSION}"


class Prometheus:
    """Prometheus (built from Go modules): file-based discovery of loopback targets, more jobs."""

    name = "prometheus"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.dir("prometheus")
        self.port = settings.ports.prometheus
        self.url = f"http://{HOST}:{self.port}"
        self.targets_dir = self.state / "targets"
        self.rules_dir = self.state / "rules"
        self.jobs_file = (
            self.state / "jobs.yml"
        )  # more scrape jobs (set_jobs), kept across restarts
        self.config_file = self.state / "prometheus.yml"
        self.daemon = Daemon("prometheus", self.state)
        self.build_seconds: dict[str, float] = {}

    @property
    def program(self) -> Path:
        """The cached prometheus binary."""
        return self.settings.cache / f"prometheus-v{VERSION}" / "prometheus"

    def _config_text(self) -> str:
        jobs = yaml.safe_load(self.jobs_file.read_text()) if self.jobs_file.exists() else []
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
                *jobs,
            ],
        }
        return yaml.safe_dump(config, sort_keys=False)

    def _write_config(self) -> str:
        self.targets_dir.mkdir(exist_ok=True)
        self.rules_dir.mkdir(exist_ok=True)
        write_file(self.config_file, self._config_text(), 0o644)
        return str(self.config_file)

    def set_jobs(self, jobs: list[dict]) -> bool:
        """Scrape these jobs too (replacing those set before); reload only if the config changed.

        Returns:
            True if the configuration changed (and a running Prometheus reloaded it).

        Raises:
            PlatformError: Prometheus refused the new configuration (the old one stays loaded).
        """
        self.state.mkdir(parents=True, exist_ok=True)
        before = self.jobs_file.read_text() if self.jobs_file.exists() else "[]\n"
        write_file(self.jobs_file, yaml.safe_dump(jobs, sort_keys=False), 0o644)
        text = self._config_text()
        if self.config_file.exists() and self.config_file.read_text() == text:
            return False
        self._write_config()
        if self.daemon.pid() is not None:
            resp = httpx.post(f"{self.url}/-/reload", timeout=10, trust_env=False)
            if resp.status_code != 200:
                write_file(self.jobs_file, before, 0o644)  # keep the config that works
                self._write_config()
                raise PlatformError(
                    self.name, f"reload refused: {resp.text.strip()[:300]}", "fix the scrape job"
                )
        return True

    def load_rules(self) -> bool:
        """Load the project's rule files (deploy/prometheus/*.rules.yml); reload if they changed.

        Returns:
            True if a rule file changed (and a running Prometheus reloaded them).

        Raises:
            PlatformError: Prometheus refused the rules (promtool check rules says why).
        """
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        changed = False
        for source in sorted(RULES.glob("*.rules.yml")):
            target = self.rules_dir / source.name.replace(".rules.yml", ".yml")
            text = source.read_text()
            if not target.exists() or target.read_text() != text:
                write_file(target, text, 0o644)
                changed = True
        if changed and self.daemon.pid() is not None:
            resp = httpx.post(f"{self.url}/-/reload", timeout=10, trust_env=False)
            if resp.status_code != 200:
                raise PlatformError(
                    self.name, f"rules refused: {resp.text.strip()[:300]}", "promtool check rules"
                )
        return changed

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
        """Install Debian's promtool; build prometheus into the cache unless it is there."""
        ensure_debian(self.name, {"promtool": "prometheus"})
        if not self.program.is_file():
            out = self.program.parent
            secs = go_build(self.name, MODULE_DIR, [PACKAGE], out, LDFLAGS, ("prometheus",))
            if secs:
                self.build_seconds[f"prometheus v{VERSION}"] = secs

    def _runs_other_program(self) -> bool:
        """Ours runs, but another binary (Debian's, before this version) than self.program."""
        if self.daemon.pid() is None:
            return False
        try:
            return json.loads(self.daemon.pidfile.read_text()).get("program") != str(self.program)
        except (OSError, ValueError):
            return False

    def up(self) -> None:
        """Start Prometheus unless ours already runs (restarted once if it runs another binary)."""
        if self._runs_other_program():
            self.daemon.stop()  # same data folder: the series kept are read by the new binary
        self.daemon.ensure(
            lambda: [
                str(self.program),
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

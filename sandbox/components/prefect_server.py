"""The Prefect server (API and UI) on SQLite under the platform's state folder."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from pydantic import SecretStr

from sandbox.components import Status
from sandbox.errors import PlatformError
from sandbox.procs import Daemon
from sandbox.settings import HOST, Settings

STARTUP_TIMEOUT = 240  # a cold start takes ~30-40 s on 2 busy cores (PREFECT-NOTES.md section 9)


class PrefectServer:
    """`prefect server start` from the project's own environment."""

    name = "prefect"

    def __init__(self, settings: Settings, database: Callable[[], SecretStr] | None = None) -> None:
        self.settings = settings
        self.database = database  # the PostgreSQL URL; None: SQLite under the state folder
        self.state = settings.dir("prefect")
        self.port = settings.ports.prefect
        self.url = f"http://{HOST}:{self.port}"
        self.api_url = f"{self.url}/api"
        self.daemon = Daemon("prefect-server", self.state)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def install(self) -> None:
        """Nothing to install: prefect comes with the project's Python environment."""
        if not (Path(sys.executable).parent / "prefect").exists():
            raise PlatformError(
                self.name, "the prefect CLI is not in this environment", "run `uv sync`"
            )

    def up(self) -> None:
        """Start the server unless ours already answers."""
        if self.database is not None:
            database, kind = self.database().get_secret_value(), "postgres"
        else:
            database, kind = f"sqlite+aiosqlite:///{self.state / 'prefect.db'}", "sqlite"
        stamp = self.state / "database-kind"
        if self.daemon.pid() and (not stamp.exists() or stamp.read_text() != kind):
            self.daemon.stop(timeout=30)  # running on the other database: restart on this one
        stamp.write_text(kind)
        env = {
            "PREFECT_HOME": str(self.state),
            "PREFECT_API_DATABASE_CONNECTION_URL": database,
            # SQLite serialises writers: wait for the lock instead of answering 503 under bursts
            "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
            "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT": "30",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": self.api_url,
            "PREFECT_API_URL": "",
        }
        prefect = str(Path(sys.executable).parent / "prefect")
        self.daemon.ensure(
            lambda: [prefect, "server", "start", "--host", HOST, "--port", str(self.port)],
            self._answers,
            f"Prefect API at {self.api_url}",
            self.port,
            "stop that process or set KYB_PREFECT_PORT to a free port",
            timeout=STARTUP_TIMEOUT,
            env=env,
        )

    def down(self) -> None:
        """Stop the server if we started it (runs and blocks stay in the SQLite file)."""
        self.daemon.stop(timeout=30)

    def status(self) -> Status:
        """Running or stopped, with the UI address."""
        running = bool(self.daemon.pid()) and self._answers()
        return Status(self.name, "running" if running else "stopped", self.url, "UI and API (/api)")

    def env(self) -> dict[str, str]:
        """PREFECT_API_URL for flows, the CLI and the tests."""
        return {"PREFECT_API_URL": self.api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

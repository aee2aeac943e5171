"""The Prefect server (API and UI) on SQLite under the platform's state folder, behind basic auth.

The server requires HTTP basic auth (Prefect's PREFECT_SERVER_API_AUTH_STRING); its clients send
PREFECT_API_AUTH_STRING. Neither travels in a process's environment: both sit in one 0600 profiles
file in the server's state folder, the server reads its profile (`kyb-server`) and every client
the platform starts (worker, receiver, CLI, tests) is pointed at the file with
PREFECT_PROFILES_PATH (active profile `kyb-client`). Only /api/health and /api/ready answer
without it.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from sandbox.components import Status
from sandbox.errors import PlatformError
from sandbox.files import generated_once, write_file
from sandbox.procs import Daemon
from sandbox.settings import HOST, Settings

STARTUP_TIMEOUT = 240  # a cold start takes ~30-40 s on 2 busy cores (PREFECT-NOTES.md section 9)
SERVER_PROFILE = "kyb-server"
CLIENT_PROFILE = "kyb-client"
API_USER = "kyb"
SLOT_WAIT_SECONDS = 5  # under the workers' 10 s look-ahead (PREFECT_WORKER_PREFETCH_SECONDS)


def sqlite_url(path: Path) -> str:
    """The server's SQLite URL: the file at `path`, through ONE pooled connection.

    Why: with Prefect's default pool (15 connections here), a flow-run create (a transaction that
    reads, then writes) fails at once with "database is locked" when a background service (the
    event persister, the late-runs marker) committed a write in between: SQLite refuses to
    upgrade that read lock whatever the busy timeout. The server answers 503 and the client
    sleeps 2 s, then 4 s, before retrying: the seconds-long tail benchmarks/webhook.py measured
    (p95 2,067 ms over 200 pushes; 71 ms with this URL). With one connection every statement
    queues instead of colliding. Prefect 3.9 gives an SQLite URL containing ":memory:" a pool of
    exactly one connection (server/database/configurations.py); SQLite ignores the unknown URI
    parameter, so this is the same file. Not a documented setting: test_prefect_server checks
    that the server holds the file once. PostgreSQL (KYB_PREFECT_DB=postgres) needs none of it.
    """
    return f"sqlite+aiosqlite:///file:{quote(str(path))}?uri=true&single_connection=:memory:"


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
        self.profiles = self.state / "profiles.toml"

    def auth_string(self) -> SecretStr:
        """The API's basic auth "user:password", generated once, kept 0600 in the state folder."""
        self.state.mkdir(parents=True, exist_ok=True)
        made = generated_once(
            self.state / "api-auth.json",
            lambda: {"user": API_USER, "password": secrets.token_urlsafe(24)},
        )
        return SecretStr(f"{made['user']}:{made['password']}")

    def write_profiles(self) -> Path:
        """The 0600 profiles file: the server's auth setting and the clients' URL and auth."""
        auth = json.dumps(self.auth_string().get_secret_value())  # a valid TOML basic string
        text = (
            f'active = "{CLIENT_PROFILE}"\n\n'
            f"[profiles.{SERVER_PROFILE}]\nPREFECT_SERVER_API_AUTH_STRING = {auth}\n\n"
            f"[profiles.{CLIENT_PROFILE}]\nPREFECT_API_URL = {json.dumps(self.api_url)}\n"
            f"PREFECT_API_AUTH_STRING = {auth}\n"
        )
        if not self.profiles.exists() or self.profiles.read_text() != text:
            write_file(self.profiles, text)
        return self.profiles

    def http(self, timeout: float = 10) -> httpx.Client:
        """A plain HTTP client of the API (base URL /api), authenticated."""
        user, _, password = self.auth_string().get_secret_value().partition(":")
        return httpx.Client(base_url=self.api_url, auth=(user, password), timeout=timeout)

    def client_settings(self) -> dict:
        """Prefect settings for an in-process client: `temporary_settings(updates=...)`."""
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL

        return {PREFECT_API_URL: self.api_url, PREFECT_API_AUTH_STRING: self.auth_string()}

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
            database, kind = sqlite_url(self.state / "prefect.db"), "sqlite-1conn"
        kind += "+auth+slot5"  # a server started before these settings is restarted too
        stamp = self.state / "database-kind"
        if self.daemon.pid() and (not stamp.exists() or stamp.read_text() != kind):
            self.daemon.stop(timeout=30)  # running on the other database: restart on this one
        stamp.write_text(kind)
        profiles = self.write_profiles()
        env = {
            "PREFECT_HOME": str(self.state),
            "PREFECT_API_DATABASE_CONNECTION_URL": database,
            # other processes locking the file (a backup, the CLI) are waited for; the server's
            # own read-then-write conflicts are what sqlite_url removes
            "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
            "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT": "30",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # A run its deployment's concurrency limit turns away is rescheduled this far out.
            # Prefect's 30 s leaves it invisible to workers (they look 10 s ahead) for 20 s after
            # a slot frees: a burst of 50 releases under a limit of 20 waited ~30 s per wave.
            "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": str(SLOT_WAIT_SECONDS),
            "PREFECT_UI_API_URL": self.api_url,
            "PREFECT_API_URL": "",
            "PREFECT_PROFILES_PATH": str(profiles),
            "PREFECT_PROFILE": SERVER_PROFILE,
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
        """Where clients find the API and its auth: the URL, and the profiles file (0600)."""
        return {
            "PREFECT_API_URL": self.api_url,
            "PREFECT_PROFILES_PATH": str(self.write_profiles()),
            "PREFECT_PROFILE": CLIENT_PROFILE,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }


def client_env(already: Mapping[str, str] | None = None) -> dict[str, str]:
    """What makes a process (and its children) a client of the platform's Prefect server.

    Use it before prefect is imported (Prefect reads its settings at import):
    `os.environ.update(client_env(os.environ))` keeps what the caller already set.
    """
    given = already or {}
    return {k: v for k, v in PrefectServer(Settings()).env().items() if k not in given}

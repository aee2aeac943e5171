"""The container registry: Debian's docker-registry with htpasswd auth on 127.0.0.1."""

from __future__ import annotations

import secrets
import subprocess

import httpx
import yaml
from pydantic import SecretStr

from sandbox.components import Status
from sandbox.errors import PlatformError
from sandbox.files import generated_once
from sandbox.install import ensure_debian, which
from sandbox.procs import Daemon
from sandbox.settings import HOST, Settings

USERNAME = "pipeline"


class Registry:
    """docker-registry (distribution 2.8) storing images under the platform's state folder."""

    name = "registry"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.dir("registry")
        self.port = settings.ports.registry
        self.address = f"{HOST}:{self.port}"
        self.daemon = Daemon("registry", self.state)

    def credentials(self) -> tuple[str, SecretStr]:
        """Return (username, password), generating and storing them (mode 0600) on first use."""
        data = generated_once(
            self.state / "credentials.json",
            lambda: {"username": USERNAME, "password": secrets.token_urlsafe(24)},
        )
        return data["username"], SecretStr(data["password"])

    def _write_config(self) -> str:
        user, password = self.credentials()
        htpasswd = self.state / "htpasswd"
        # bcrypt (-B) is the only hash distribution accepts; the password goes in on stdin (-i).
        done = subprocess.run(
            [which(self.name, "htpasswd"), "-iBn", user],
            input=password.get_secret_value(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise PlatformError(
                self.name, "htpasswd could not hash the password", "install apache2-utils"
            )
        htpasswd.write_text(done.stdout)
        htpasswd.chmod(0o600)
        config = {
            "version": 0.1,
            "log": {"level": "info"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.state / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.address},
            "auth": {"htpasswd": {"realm": "kyb-registry", "path": str(htpasswd)}},
        }
        path = self.state / "config.yml"
        path.write_text(yaml.safe_dump(config))
        return str(path)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"http://{self.address}/v2/", timeout=2).status_code in (200, 401)
        except httpx.HTTPError:
            return False

    def install(self) -> None:
        """Install Debian's docker-registry and apache2-utils (htpasswd)."""
        ensure_debian(
            self.name, {"docker-registry": "docker-registry", "htpasswd": "apache2-utils"}
        )

    def up(self) -> None:
        """Start the registry unless ours already runs; refuse a port held by someone else."""
        self.daemon.ensure(
            lambda: [which(self.name, "docker-registry"), "serve", self._write_config()],
            self._answers,
            f"registry on {self.address}",
            self.port,
            "stop that process or set KYB_REGISTRY_PORT to a free port",
        )

    def down(self) -> None:
        """Stop the registry if we started it (images stay on disk)."""
        self.daemon.stop()

    def status(self) -> Status:
        """Running or stopped, with its address."""
        running = bool(self.daemon.pid()) and self._answers()
        return Status(self.name, "running" if running else "stopped", self.address, "htpasswd auth")

    def env(self) -> dict[str, str]:
        """The registry address (credentials live in the registry block only)."""
        return {"KYB_REGISTRY": self.address}

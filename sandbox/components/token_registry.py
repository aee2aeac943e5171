"""A registry with token auth: Debian's docker-registry (`auth: token`) and its token issuer.

The registry answers 401 with a Bearer challenge whose realm is sandbox/token_issuer.py, as
GHCR, Docker Hub or Harbor do. Users (generated once, stored 0600 under the state folder):
`pipeline` may pull and push every repository; `reader` may only pull repositories under
`shared/`, so a token without the scope a request needs is refused as it would be in Harbor.
"""

from __future__ import annotations

import json
import secrets
import sys

import httpx
import yaml
from pydantic import SecretStr

from sandbox.components import Status
from sandbox.files import generated_once, write_file
from sandbox.install import ensure_debian, which
from sandbox.pki import self_signed
from sandbox.procs import Daemon
from sandbox.settings import HOST, Settings
from sandbox.token_issuer import hash_password

USERNAME = "pipeline"  # pulls and pushes everything
READER = "reader"  # pulls shared/* only
ISSUER = "kyb-token-issuer"
SERVICE = "kyb-token-registry"
GRANTS = {USERNAME: [["*", ["pull", "push", "delete"]]], READER: [["shared/*", ["pull"]]]}


class TokenRegistry:
    """docker-registry 2.8 with token auth on KYB_TOKEN_REGISTRY_PORT, issuer on _ISSUER_PORT."""

    name = "token-registry"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.dir("token-registry")
        self.port = settings.ports.token_registry
        self.issuer_port = settings.ports.token_issuer
        self.address = f"{HOST}:{self.port}"
        self.realm = f"http://{HOST}:{self.issuer_port}/token"
        self.registry = Daemon("token-registry", self.state)
        self.issuer = Daemon("token-issuer", self.state)

    def credentials(self, user: str = USERNAME) -> tuple[str, SecretStr]:
        """Return (user, password) of `pipeline` or `reader`, generated (0600) on first use."""
        made = generated_once(
            self.state / "credentials.json",
            lambda: {name: secrets.token_urlsafe(24) for name in GRANTS},
        )
        return user, SecretStr(made[user])

    def _signing_pair(self) -> tuple[str, str]:
        """The issuer's ES256 key (0600) and its self-signed certificate, made once."""
        key_path, cert_path = self.state / "signing-key.pem", self.state / "signing-cert.pem"
        if not (key_path.exists() and cert_path.exists()):
            key_pem, cert_pem = self_signed(ISSUER, 3650)
            write_file(key_path, key_pem)
            write_file(cert_path, cert_pem, 0o644)
        return str(key_path), str(cert_path)

    def _issuer_config(self) -> str:
        key, cert = self._signing_pair()
        users = {}
        for name, grants in GRANTS.items():
            salt = secrets.token_bytes(16)
            password = self.credentials(name)[1].get_secret_value()
            users[name] = {"salt": salt.hex(), "hash": hash_password(password, salt)}
            users[name]["grants"] = grants
        config = {"issuer": ISSUER, "service": SERVICE, "key": key, "cert": cert, "users": users}
        path = self.state / "issuer.json"
        write_file(path, json.dumps({**config, "expires_in": 300}))
        return str(path)

    def _registry_config(self) -> str:
        config = {
            "version": 0.1,
            "log": {"level": "info"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.state / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.address},
            "auth": {
                "token": {
                    "realm": self.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": self._signing_pair()[1],
                }
            },
        }
        path = self.state / "config.yml"
        path.write_text(yaml.safe_dump(config))
        return str(path)

    def _answers(self, url: str) -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 401
        except httpx.HTTPError:
            return False

    def _issuer_answers(self) -> bool:
        return self._answers(self.realm)

    def _registry_answers(self) -> bool:
        return self._answers(f"http://{self.address}/v2/")

    def install(self) -> None:
        """Install Debian's docker-registry (the issuer is this project's Python)."""
        ensure_debian(self.name, {"docker-registry": "docker-registry"})

    def up(self) -> None:
        """Start the issuer, then the registry, unless ours already run."""
        self.issuer.ensure(
            lambda: [
                sys.executable,
                "-m",
                "sandbox.token_issuer",
                self._issuer_config(),
                f"{HOST}:{self.issuer_port}",
            ],
            self._issuer_answers,
            f"token issuer on {HOST}:{self.issuer_port}",
            self.issuer_port,
            "stop that process or set KYB_TOKEN_ISSUER_PORT to a free port",
        )
        self.registry.ensure(
            lambda: [which(self.name, "docker-registry"), "serve", self._registry_config()],
            self._registry_answers,
            f"token-auth registry on {self.address}",
            self.port,
            "stop that process or set KYB_TOKEN_REGISTRY_PORT to a free port",
        )

    def down(self) -> None:
        """Stop the registry and its issuer if we started them (images stay on disk)."""
        self.registry.stop()
        self.issuer.stop()

    def status(self) -> Status:
        """Running when both answer, with the registry's address and the realm."""
        running = bool(self.registry.pid() and self.issuer.pid()) and self._registry_answers()
        state = "running" if running and self._issuer_answers() else "stopped"
        return Status(self.name, state, self.address, f"token auth, realm {self.realm}")

    def env(self) -> dict[str, str]:
        """The registry's address (credentials live in the registry block only)."""
        return {"KYB_TOKEN_REGISTRY": self.address}

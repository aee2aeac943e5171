"""The S3-compatible object store Velero writes backups to: gofakes3 on 127.0.0.1, bolt-backed."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
from pydantic import SecretStr

from sandbox.components import Status
from sandbox.files import generated_once
from sandbox.install import go_build
from sandbox.procs import Daemon
from sandbox.settings import GOFAKES3_VERSION, HOST, Settings

BUCKET = "kyb-backups"
REGION = "us-east-1"  # gofakes3 ignores it; the AWS SDK needs one
PACKAGE = f"github.com/johannesboyne/gofakes3/cmd/gofakes3@v{GOFAKES3_VERSION}"


class S3Store:
    """gofakes3 serving bucket kyb-backups from a bolt file under the state folder."""

    name = "s3"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.dir("s3")
        self.port = settings.ports.s3
        self.endpoint = f"http://{HOST}:{self.port}"
        self.bucket = BUCKET
        self.region = REGION
        self.daemon = Daemon("gofakes3", self.state)
        self.build_seconds: dict[str, float] = {}

    @property
    def program(self) -> Path:
        """The cached gofakes3 binary."""
        return self.settings.gofakes3_bin / "gofakes3"

    def credentials(self) -> tuple[SecretStr, SecretStr]:
        """Return (access key id, secret access key), generated and stored 0600 on first use."""
        data = generated_once(
            self.state / "credentials.json",
            lambda: {
                "access_key_id": "KYB" + secrets.token_hex(8).upper(),  # an AWS key id's shape
                "secret_access_key": secrets.token_urlsafe(30),
            },
        )
        return SecretStr(data["access_key_id"]), SecretStr(data["secret_access_key"])

    def install(self) -> None:
        """Build gofakes3 into the cache unless it is there already."""
        if not self.program.is_file():
            out = self.settings.gofakes3_bin
            self.build_seconds[f"gofakes3 v{GOFAKES3_VERSION}"] = go_build(
                self.name, None, [PACKAGE], out
            )

    def _argv(self) -> list[str]:
        return [
            str(self.program),
            "-backend",
            "bolt",
            "-bolt.db",
            str(self.state / "data.db"),
            "-host",
            f"{HOST}:{self.port}",
            "-initialbucket",
            BUCKET,
            "-quiet",
        ]

    def _answers(self) -> bool:
        """The bucket lists (path-style GET; gofakes3 needs no signature)."""
        try:
            resp = httpx.get(f"{self.endpoint}/{BUCKET}?list-type=2&max-keys=1", timeout=2)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    def up(self) -> None:
        """Start gofakes3 unless ours already runs; refuse a port held by someone else."""
        self.daemon.ensure(
            self._argv,
            self._answers,
            f"S3 store on {self.endpoint}",
            self.port,
            "stop that process or set KYB_S3_PORT to a free port",
        )

    def down(self) -> None:
        """Stop gofakes3 if we started it (the bolt file, and so the backups, stay)."""
        self.daemon.stop()

    def status(self) -> Status:
        """Running or stopped, with its endpoint."""
        running = bool(self.daemon.pid()) and self._answers()
        detail = f"gofakes3 v{GOFAKES3_VERSION}, bucket {BUCKET}"
        return Status(self.name, "running" if running else "stopped", self.endpoint, detail)

    def env(self) -> dict[str, str]:
        """The endpoint and bucket (the keys live in the ObjectStore block only)."""
        return {"KYB_S3_ENDPOINT": self.endpoint, "KYB_S3_BUCKET": BUCKET}

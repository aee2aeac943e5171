"""The S3 store over TLS by host name: gofakes3 behind the platform's own CA (sandbox/s3tls).

A second S3 endpoint beside the plain-HTTP store on 127.0.0.1:39000, which keeps the platform's
backups and is left alone: https://localhost:39443 (KYB_S3_TLS_PORT), its own bolt file and its
own bucket, a server certificate signed by the platform's CA (sandbox/pki.py). It stands in for a
team's S3 endpoint: reached by a host name, not a literal address, and verified with a CA the
clients must be given (a VeleroInstall block's ca_cert, a storage location's caCert).

The host name is `localhost`, which /etc/hosts resolves to 127.0.0.1 everywhere; `*.localhost`
names do not resolve through glibc by default, and this component never edits /etc/hosts. The
certificate also names this machine's host name (socket.gethostname()), so a client may use that
name where it too resolves to loopback. The server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx

from core.names import is_dns_subdomain
from sandbox.components import Status
from sandbox.install import go_build
from sandbox.pki import PlatformCA, ServerCert
from sandbox.procs import Daemon
from sandbox.settings import GOFAKES3_VERSION, HOST, Settings
from sandbox.velero import manifests

HOST_NAME = "localhost"
BUCKET = "kyb-tls-backups"
REGION = "us-east-1"  # gofakes3 ignores it; the AWS SDK needs one
MODULE_DIR = Path(__file__).resolve().parent.parent / "s3tls"  # the wrapper module's main.go
SOURCES = ("main.go", "go.mod", "go.sum")


def machine_name() -> str | None:
    """This machine's host name if it is a DNS name other than localhost, else None."""
    name = socket.gethostname().lower()
    return name if is_dns_subdomain(name) and name != HOST_NAME else None


class S3TlsStore:
    """gofakes3 over TLS on 127.0.0.1, reached as https://localhost:PORT with the platform's CA."""

    name = "s3-tls"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.dir(self.name)
        self.port = settings.ports.s3_tls
        self.endpoint = f"https://{HOST_NAME}:{self.port}"
        self.bucket = BUCKET
        self.region = REGION
        self.ca = PlatformCA(settings)
        self.daemon = Daemon("s3tls", self.state)
        self.build_seconds: dict[str, float] = {}

    @property
    def program(self) -> Path:
        """The cached s3tls binary, in a folder named by its sources' digest (an edit rebuilds)."""
        data = b"".join((MODULE_DIR / name).read_bytes() for name in SOURCES)
        return self.settings.s3tls_bin / hashlib.sha256(data).hexdigest()[:16] / "s3tls"

    def install(self) -> None:
        """Build sandbox/s3tls into the cache unless this build of its sources is there."""
        if not self.program.is_file():
            out = self.program.parent
            secs = go_build(self.name, MODULE_DIR, ["."], out, wants=("s3tls",))
            if secs:
                self.build_seconds[f"s3tls (gofakes3 v{GOFAKES3_VERSION})"] = secs

    def host_names(self) -> list[str]:
        """The names the server certificate is valid for (localhost first)."""
        other = machine_name()
        return [HOST_NAME, *([other] if other else []), HOST]

    def certificate(self) -> ServerCert:
        """The server certificate and key, issued by the platform's CA when needed."""
        return self.ca.server_cert(self.name, self.host_names())

    def ca_pem(self) -> str:
        """The platform CA's certificate (PEM): what a client of this store must trust."""
        return self.ca.pem()

    def _argv(self, cert: ServerCert) -> list[str]:
        return [
            str(self.program),
            "-addr",
            f"{HOST}:{self.port}",
            "-bolt.db",
            str(self.state / "data.db"),
            "-bucket",
            BUCKET,
            "-cert",
            str(cert.cert),
            "-key",
            str(cert.key),
        ]

    def _answers(self) -> bool:
        """The bucket lists over https by host name, verified with the platform's CA."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca.cert))
            url = f"{self.endpoint}/{BUCKET}?list-type=2&max-keys=1"
            resp = httpx.get(url, verify=context, timeout=2, trust_env=False)
        except (httpx.HTTPError, OSError, ssl.SSLError):
            return False
        return resp.status_code == 200

    def up(self) -> None:
        """Start the server unless ours runs with the current certificate; wait until it lists."""
        cert = self.certificate()
        stamp = self.state / "server.sha256"
        digest = hashlib.sha256(
            "\0".join(self._argv(cert)).encode() + cert.cert.read_bytes()
        ).hexdigest()
        if self.daemon.pid() is not None and (not stamp.exists() or stamp.read_text() != digest):
            self.daemon.stop()  # re-issued certificate or changed flags: a new process serves it
        stamp.write_text(digest)
        self.daemon.ensure(
            lambda: self._argv(cert),
            self._answers,
            f"S3 store over TLS on {self.endpoint}",
            self.port,
            "stop that process or set KYB_S3_TLS_PORT to a free port",
        )

    def down(self) -> None:
        """Stop the server if we started it (the bolt file, and so the objects, stay)."""
        self.daemon.stop()

    def status(self) -> Status:
        """Running or stopped, with its endpoint."""
        running = bool(self.daemon.pid()) and self._answers()
        detail = f"gofakes3 v{GOFAKES3_VERSION} over TLS (platform CA), bucket {BUCKET}"
        return Status(self.name, "running" if running else "stopped", self.endpoint, detail)

    def env(self) -> dict[str, str]:
        """The endpoint, bucket and CA file (the keys are the S3 store's, in its blocks)."""
        return {
            "KYB_S3_TLS_ENDPOINT": self.endpoint,
            "KYB_S3_TLS_BUCKET": BUCKET,
            "KYB_S3_TLS_CA": str(self.ca.cert),
        }

    def storage_location(
        self, name: str, prefix: str | None = None, public_url: str | None = None
    ) -> dict[str, Any]:
        """A BackupStorageLocation on this store, trusting the platform CA (caCert), not default.

        It uses the Velero install's own credentials Secret (gofakes3 checks no signature).

        Args:
            name: the location's name.
            prefix: a folder in the bucket, so several locations can share it.
            public_url: the base Velero signs download URLs with (the AWS plugin's publicUrl),
                when clients reach the store by another name than Velero does.
        """
        bsl = manifests.storage_location(self.endpoint, BUCKET, REGION, name=name)
        spec = bsl["spec"]
        spec["default"] = False
        spec["objectStorage"]["caCert"] = base64.b64encode(self.ca_pem().encode()).decode()
        if prefix:
            spec["objectStorage"]["prefix"] = prefix
        if public_url:
            spec["config"]["publicUrl"] = public_url
        bsl["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "kyb-sandbox"
        return bsl

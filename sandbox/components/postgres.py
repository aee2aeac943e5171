"""PostgreSQL for the Prefect server (Debian's, run as the postgres user)."""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

from pydantic import SecretStr

from sandbox.components import Status
from sandbox.errors import PlatformError
from sandbox.files import write_file
from sandbox.install import ensure_debian
from sandbox.procs import Daemon, port_open, run
from sandbox.settings import HOST, Settings

USER = "prefect"
DATABASE = "postgres"


def _pg_bin(program: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    found = shutil.which(program) or (candidates[-1] if candidates else None)
    if not found:
        raise PlatformError("postgres", f"{program} is not installed", "run `sandbox up`")
    return found


class Postgres:
    """One PostgreSQL cluster under the platform's state folder, on 127.0.0.1 only."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.dir("postgres")
        # The postgres user cannot enter root's home, so its files live in a folder of its own,
        # one per platform (keyed by the state folder), owned by postgres.
        key = hashlib.sha256(str(settings.home).encode()).hexdigest()[:10]
        self.root = Path("/var/lib/kyb-sandbox") / key
        self.data = self.root / "data"
        self.port = settings.ports.postgres
        self.daemon = Daemon("postgres", self.state)

    def password(self) -> SecretStr:
        """The database password, generated once and kept in a 0600 file."""
        path = self.state / "password"
        if not path.exists():
            write_file(path, secrets.token_urlsafe(24))
        return SecretStr(path.read_text().strip())

    def url(self) -> SecretStr:
        """The SQLAlchemy URL the Prefect server connects with (holds the password)."""
        pw = self.password().get_secret_value()
        return SecretStr(f"postgresql+asyncpg://{USER}:{pw}@{HOST}:{self.port}/{DATABASE}")

    def _owner(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise PlatformError(
                self.name, "no 'postgres' system user", "install postgresql"
            ) from None

    def _initdb(self) -> None:
        owner = self._owner()
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        write_file(pwfile, self.password().get_secret_value())
        for path in (self.root, pwfile):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        try:
            run(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    USER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                ],
                self.name,
                "see the message above",
                user="postgres",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _answers(self) -> bool:
        if not port_open(self.port):
            return False
        ready = subprocess.run(
            [_pg_bin("pg_isready"), "-q", "-h", HOST, "-p", str(self.port)], check=False
        )
        return ready.returncode == 0

    def install(self) -> None:
        """Install Debian's postgresql unless its programs are there."""
        if not glob.glob("/usr/lib/postgresql/*/bin/initdb") and not shutil.which("initdb"):
            ensure_debian(self.name, {"initdb-missing": "postgresql"})

    def up(self) -> None:
        """Initialise the data folder once, then start the server unless ours already runs."""
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            self._initdb()
        sockets = self.root / "run"
        sockets.mkdir(exist_ok=True)
        owner = self._owner()
        os.chown(sockets, owner.pw_uid, owner.pw_gid)
        self.daemon.ensure(
            lambda: [
                _pg_bin("postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                f"unix_socket_directories={sockets}",
                "-c",
                "max_connections=200",
            ],
            self._answers,
            f"PostgreSQL on {HOST}:{self.port}",
            self.port,
            "stop that process or set KYB_POSTGRES_PORT to a free port",
            user="postgres",
        )

    def down(self) -> None:
        """Stop the server if we started it (the data stays)."""
        self.daemon.stop(timeout=30)

    def status(self) -> Status:
        """Running or stopped, with its address."""
        running = bool(self.daemon.pid()) and self._answers()
        return Status(
            self.name,
            "running" if running else "stopped",
            f"{HOST}:{self.port}",
            "Prefect's database",
        )

    def env(self) -> dict[str, str]:
        """Nothing for clients: only the Prefect server connects to it."""
        return {}

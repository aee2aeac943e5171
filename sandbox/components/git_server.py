"""The platform's git server: Debian's `git daemon` on 127.0.0.1, pushes allowed, a webhook hook.

It stands where a team's GitHub or GitLab stands: repositories the delivery fetches by commit
(git://127.0.0.1:<port>/<name>.git) and a post-receive hook that sends the receiver GitHub's
signed push event (sandbox/git_hook.py).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from sandbox.components import Status
from sandbox.files import write_file
from sandbox.install import ensure_debian, which
from sandbox.procs import Daemon
from sandbox.settings import HOST, Settings

ROOT = Path(__file__).resolve().parents[2]  # the checkout whose sandbox.git_hook the hook runs
HOOK = """#!{python}
import sys
sys.path.insert(0, {root!r})
from sandbox.git_hook import main
main({config!r})
"""


class GitServer:
    """`git daemon --enable=receive-pack` serving the bare repositories under the state folder."""

    name = "git"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.dir("git")
        self.repos = self.state / "repos"
        self.port = settings.ports.git
        self.daemon = Daemon("git-daemon", self.state)

    def url(self, name: str) -> str:
        """The clone URL of repository `name`, e.g. git://127.0.0.1:39418/kyb-platform.git."""
        return f"git://{HOST}:{self.port}/{name}.git"

    def ensure_repository(self, name: str, receiver_url: str = "", secret: str = "") -> str:
        """Create bare repository `name` (once); with a receiver, its push hook. Returns its URL.

        The hook's settings (receiver URL, secret) go into a 0600 file beside the repository.
        """
        path = self.repos / f"{name}.git"
        if not path.is_dir():
            self.repos.mkdir(parents=True, exist_ok=True)
            git = which(self.name, "git")
            subprocess.run(
                [git, "init", "-q", "--bare", "-b", "main", str(path)], check=True, timeout=60
            )
        config_path = path / "kyb-hook.json"
        hook = path / "hooks" / "post-receive"
        if receiver_url:
            config = {
                "receiver_url": receiver_url,
                "secret": secret,
                "full_name": f"local/{name}",
                "clone_url": self.url(name),
            }
            write_file(config_path, json.dumps(config))
            hook.write_text(
                HOOK.format(python=sys.executable, root=str(ROOT), config=str(config_path))
            )
            hook.chmod(0o755)
        else:
            hook.unlink(missing_ok=True)
            config_path.unlink(missing_ok=True)
        return self.url(name)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=2):
                return True
        except OSError:
            return False

    def install(self) -> None:
        """Debian's git (git daemon comes with it)."""
        ensure_debian(self.name, {"git": "git"})

    def up(self) -> None:
        """Start git daemon unless ours runs; refuse a port held by someone else."""
        self.repos.mkdir(parents=True, exist_ok=True)

        def argv() -> list[str]:
            return [
                which(self.name, "git"),
                "daemon",
                "--reuseaddr",
                f"--listen={HOST}",
                f"--port={self.port}",
                f"--base-path={self.repos}",
                "--export-all",
                "--enable=receive-pack",
                "--informative-errors",
                str(self.repos),
            ]

        self.daemon.ensure(
            argv,
            self._answers,
            f"git daemon on {HOST}:{self.port}",
            self.port,
            "stop that process or set KYB_GIT_PORT to a free port",
        )

    def down(self) -> None:
        """Stop git daemon if we started it (repositories stay on disk)."""
        self.daemon.stop()

    def status(self) -> Status:
        """Running or stopped, with its address."""
        running = bool(self.daemon.pid()) and self._answers()
        address = f"git://{HOST}:{self.port}/"
        return Status(self.name, "running" if running else "stopped", address, "push allowed")

    def env(self) -> dict[str, str]:
        """Where the git server is."""
        return {"KYB_GIT_URL": f"git://{HOST}:{self.port}/"}

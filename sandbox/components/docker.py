"""The Docker engine: reuse one that answers on the socket, else start dockerd without a bridge."""

from __future__ import annotations

from pathlib import Path

import httpx

from sandbox.components import Status
from sandbox.install import ensure_debian, which
from sandbox.procs import Daemon, wait_until
from sandbox.settings import Settings

SYSTEM_SOCKET = Path("/var/run/docker.sock")


class Docker:
    """dockerd with --bridge=none --iptables=false: containers run with --network host only."""

    name = "docker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.socket = settings.docker_socket
        self.daemon = Daemon("dockerd", settings.dir("docker"))

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            transport = httpx.HTTPTransport(uds=str(self.socket))
            with httpx.Client(transport=transport, timeout=2) as client:
                return client.get("http://docker/_ping").text == "OK"
        except httpx.HTTPError:
            return False

    def install(self) -> None:
        """Install Debian's docker.io (dockerd and the docker CLI)."""
        ensure_debian(self.name, {"dockerd": "docker.io", "docker": "docker.io"})

    def up(self) -> None:
        """Start dockerd on the socket unless a daemon already answers there."""
        if self._answers():
            return
        state = self.settings.dir("docker")
        argv = [
            which(self.name, "dockerd"),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            f"--host=unix://{self.socket}",
            f"--exec-root={state / 'exec'}",
            f"--pidfile={state / 'dockerd.runtime.pid'}",
        ]
        if self.socket != SYSTEM_SOCKET:  # a daemon of its own: its images live beside its state
            argv.append(f"--data-root={state / 'data'}")
        self.daemon.start(argv)
        wait_until(self._answers, 60, f"Docker on {self.socket}", self.daemon)

    def down(self) -> None:
        """Stop dockerd if we started it."""
        self.daemon.stop(timeout=30)

    def status(self) -> Status:
        """Running (ours), external (someone else's daemon) or stopped."""
        answers = self._answers()
        state = "stopped"
        if answers:
            state = "running" if self.daemon.pid() else "external"
        return Status(self.name, state, f"unix://{self.socket}")

    def env(self) -> dict[str, str]:
        """DOCKER_HOST for the docker CLI and SDK."""
        return {"DOCKER_HOST": f"unix://{self.socket}"}

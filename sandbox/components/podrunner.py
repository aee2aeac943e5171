"""The pod runner: runs the main cluster's opted-in pods as Docker containers on their pod IPs."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from sandbox.components import Status
from sandbox.errors import PlatformError
from sandbox.procs import Daemon, wait_until
from sandbox.settings import Settings

CODE = Path(__file__).resolve().parents[1] / "podrunner"  # the runner's package
FRESH_SECONDS = 30.0  # the runner writes its status file every 10 s: older means it is stuck


class PodRunner:
    """`python -m sandbox.podrunner` against the main cluster (see sandbox/podrunner)."""

    name = "podrunner"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.dir("podrunner")
        self.status_file = self.state / "status.json"
        self.daemon = Daemon("podrunner", self.state)

    def _report(self) -> dict | None:
        """The runner's last status (pods, containers) while it is fresh, else None."""
        try:
            report = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None
        pid = self.daemon.pid()
        if report.get("pid") != pid or time.time() - report.get("time", 0) > FRESH_SECONDS:
            return None
        return report

    def install(self) -> None:
        """Nothing to install: the runner is this project's Python (Docker and the cluster are)."""

    def code(self) -> str:
        """What the runner runs: this interpreter and its package's source (a digest)."""
        digest = hashlib.sha256(sys.executable.encode())
        for path in sorted(CODE.glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
        return digest.hexdigest()[:16]

    def up(self) -> None:
        """Start the runner unless ours runs; wait until it has listed the pods and containers.

        A runner started from other code (an older checkout, another venv) is restarted first;
        the containers it ran are adopted by the new one.
        """
        stamp, code = self.state / "code.txt", self.code()
        if self.daemon.pid() is not None and (not stamp.exists() or stamp.read_text() != code):
            self.daemon.stop(timeout=20)
        if self.daemon.pid() is None:
            if not self.settings.kubeconfig.exists():
                raise PlatformError(self.name, "the cluster has no kubeconfig", "start `cluster`")
            self.status_file.unlink(missing_ok=True)
            argv = [
                sys.executable,
                "-m",
                "sandbox.podrunner",
                "--kubeconfig",
                str(self.settings.kubeconfig),
                "--status-file",
                str(self.status_file),
            ]
            self.daemon.start(argv)
            stamp.write_text(code)
        wait_until(lambda: self._report() is not None, 60, "pod runner", self.daemon)

    def down(self) -> None:
        """Stop the runner; the containers it runs stay (a restarted runner adopts them)."""
        self.daemon.stop(timeout=20)

    def status(self) -> Status:
        """Running (with the pods it runs) or stopped."""
        report = self._report()
        if report is None:
            return Status(self.name, "stopped", f"unix://{self.settings.docker_socket}")
        detail = (
            f"{report['pods']} pod(s) labelled kyb.dev/run=true, IPs {self.settings.run_pod_cidr}"
        )
        return Status(self.name, "running", f"unix://{self.settings.docker_socket}", detail)

    def env(self) -> dict[str, str]:
        """Nothing: clients reach the pods by their IPs, from the cluster."""
        return {}

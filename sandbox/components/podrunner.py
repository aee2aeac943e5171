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
from sandbox.settings import CLUSTER_NAME, DR_CLUSTER_NAME, Settings

CODE = Path(__file__).resolve().parents[1] / "podrunner"  # the runner's package
FRESH_SECONDS = 30.0  # the runner writes its status file every 10 s: older means it is stuck


class PodRunner:
    """`python -m sandbox.podrunner` against one cluster (see sandbox/podrunner).

    The main cluster's runs released pods; the DR cluster's (`dr=True`, pod IPs from
    KYB_DR_RUN_POD_CIDR) runs what a restore brings back, so a drill sees restored pods serve.
    """

    def __init__(self, settings: Settings, dr: bool = False) -> None:
        self.settings, self.dr = settings, dr
        self.name = "dr-podrunner" if dr else "podrunner"
        self.cluster = DR_CLUSTER_NAME if dr else CLUSTER_NAME
        self.kubeconfig = settings.dr_kubeconfig if dr else settings.kubeconfig
        self.cidr = settings.dr_run_pod_cidr if dr else settings.run_pod_cidr
        self.state = settings.dir(self.name)
        self.status_file = self.state / "status.json"
        self.daemon = Daemon(self.name, self.state)

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
        """What the runner runs: this environment (venv) and its package's source (a digest)."""
        digest = hashlib.sha256(sys.prefix.encode())  # the venv: python and python3 are one
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
            if not self.kubeconfig.exists():
                cluster = "dr-cluster" if self.dr else "cluster"
                raise PlatformError(
                    self.name, "the cluster has no kubeconfig", f"start `{cluster}`"
                )
            self.status_file.unlink(missing_ok=True)
            argv = [
                sys.executable,
                "-m",
                "sandbox.podrunner",
                "--cluster",
                self.cluster,
                "--kubeconfig",
                str(self.kubeconfig),
                "--status-file",
                str(self.status_file),
                "--pod-cidr",
                self.cidr,
            ]
            self.daemon.start(argv)
            stamp.write_text(code)
        wait_until(lambda: self._report() is not None, 60, self.name, self.daemon)

    def down(self) -> None:
        """Stop the runner; the containers it runs stay (a restarted runner adopts them)."""
        self.daemon.stop(timeout=20)

    def status(self) -> Status:
        """Running (with the pods it runs) or stopped."""
        report = self._report()
        if report is None:
            return Status(self.name, "stopped", f"unix://{self.settings.docker_socket}")
        detail = (
            f"{report['pods']} pod(s) labelled kyb.dev/run=true on {self.cluster}, IPs {self.cidr}"
        )
        return Status(self.name, "running", f"unix://{self.settings.docker_socket}", detail)

    def env(self) -> dict[str, str]:
        """Nothing: clients reach the pods by their IPs, from the cluster."""
        return {}

"""Probes as a kubelet runs them: one check per period, results flip after their thresholds."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx

from sandbox.podrunner.spec import Probe


def check(probe: Probe, host: str) -> tuple[bool, str]:
    """Run one probe against host; return (passed, what happened in one line).

    httpGet passes on a status from 200 to 399 within timeoutSeconds, tcpSocket when the port
    accepts a connection. Like a kubelet, HTTPS is not verified.
    """
    if probe.kind == "tcp":
        try:
            with socket.create_connection((host, probe.port), timeout=probe.timeout):
                return True, "connected"
        except OSError as exc:
            return False, f"dial tcp {host}:{probe.port}: {exc.strerror or exc}"
    if probe.kind != "http":
        return False, "only httpGet and tcpSocket probes run here"
    url = f"{probe.scheme.lower()}://{host}:{probe.port}{probe.path}"
    headers = {"User-Agent": "kube-probe/1.34", **probe.headers}
    try:
        with httpx.Client(verify=False, timeout=probe.timeout, follow_redirects=True) as client:
            response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return False, f"Get {url}: {type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 400:
        return True, f"HTTP {response.status_code}"
    return False, f"HTTP probe failed with statuscode: {response.status_code}"


@dataclass
class ProbeState:
    """The running result of one probe of one container instance.

    Args:
        probe: the probe's spec.
        started: monotonic time the container started (initialDelaySeconds counts from there).
        passing: the result before any check (readiness: False; liveness: True).
    """

    probe: Probe
    started: float
    passing: bool
    successes: int = 0
    failures: int = 0
    next_check: float = 0.0
    last: str = ""

    def __post_init__(self) -> None:
        self.next_check = self.started + self.probe.initial_delay

    def due(self, now: float) -> bool:
        """Whether a check is due at `now`."""
        return now >= self.next_check

    def record(self, passed: bool, message: str, now: float) -> bool:
        """Count one check's result; return whether the probe's result changed."""
        self.last = message
        self.next_check = now + self.probe.period
        if passed:
            self.successes, self.failures = self.successes + 1, 0
            flip = not self.passing and self.successes >= self.probe.success_threshold
        else:
            self.successes, self.failures = 0, self.failures + 1
            flip = self.passing and self.failures >= self.probe.failure_threshold
        if flip:
            self.passing = not self.passing
        return flip

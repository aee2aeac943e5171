"""The security scan: pluggable scanners (gosec by default; bandit, pip-audit) gated by severity."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.tools import find_tool
from core.ci import (
    Finding,
    GateReport,
    Severity,
    parse_bandit,
    parse_gosec,
    parse_pip_audit,
)
from core.errors import ConfigError
from tasks import RETRIES
from tasks.quality import publish_gate, run_tool, unexplained

logger = logging.getLogger(__name__)


@runtime_checkable
class Scanner(Protocol):
    """A security scanner: runs on a project folder and reports findings (never gates)."""

    name: str

    def run(self, directory: Path) -> list[Finding]:
        """Scan the project in `directory`; raise ToolUnavailable if the scanner cannot run."""
        ...


@dataclass
class GosecScanner:
    """gosec (Go): `gosec -fmt json -no-fail ./...`; HIGH/MEDIUM/LOW -> critical/major/minor."""

    name: str = "gosec"
    timeout: float = 600

    def run(self, directory: Path) -> list[Finding]:
        """Scan every package of the Go module in `directory`."""
        argv = [find_tool("gosec"), "-fmt", "json", "-no-fail", "./..."]
        root = str(Path(directory).resolve())
        return _scan(argv, directory, self.timeout, "gosec", lambda out: parse_gosec(out, root))


@dataclass
class BanditScanner:
    """bandit (Python source): `bandit -r . -f json`; optional, must be installed."""

    name: str = "bandit"
    timeout: float = 600

    def run(self, directory: Path) -> list[Finding]:
        """Scan the Python files under `directory` (virtualenvs left out)."""
        exe = find_tool("bandit", "install it: `uv tool install bandit` or `pip install bandit`")
        argv = [exe, "-r", ".", "-f", "json", "-q", "-x", "./.venv,./venv,./node_modules"]
        root = str(Path(directory).resolve())
        return _scan(argv, directory, self.timeout, "bandit", lambda out: parse_bandit(out, root))


@dataclass
class PipAuditScanner:
    """pip-audit (Python dependencies): requirements.txt if present, else the project itself."""

    name: str = "pip-audit"
    timeout: float = 600

    def run(self, directory: Path) -> list[Finding]:
        """Audit the dependencies of the Python project in `directory`."""
        hint = "install it: `uv tool install pip-audit` or `pip install pip-audit`"
        exe = find_tool("pip-audit", hint)
        reqs = (Path(directory) / "requirements.txt").exists()
        target = ["-r", "requirements.txt"] if reqs else ["."]
        argv = [exe, "-f", "json", "--progress-spinner", "off", *target]
        return _scan(argv, directory, self.timeout, "pip-audit", parse_pip_audit)


def _scan(
    argv: list[str],
    directory: Path,
    timeout: float,
    tool: str,
    parse: Callable[[str], list[Finding]],
) -> list[Finding]:
    """Run a scanner and parse its JSON; output it cannot parse is an error, never a pass."""
    proc = run_tool(argv, directory, timeout)
    try:
        return parse(proc.stdout)
    except (ValueError, KeyError):
        raise unexplained(proc, tool) from None


SCANNERS: dict[str, Callable[..., Scanner]] = {
    "gosec": GosecScanner,
    "bandit": BanditScanner,
    "pip-audit": PipAuditScanner,
}


def scanner_for(name: str, timeout: float = 600) -> Scanner:
    """The scanner registered under `name`.

    Raises:
        ConfigError: no scanner has that name (the message lists the known ones).
    """
    if name not in SCANNERS:
        raise ConfigError(f"unknown scanner {name!r}: known scanners are {sorted(SCANNERS)}")
    return SCANNERS[name](timeout=timeout)


@task(name="security-scan", cache_policy=NO_CACHE, **RETRIES)
def security_scan(
    directory: str | Path,
    app: str,
    scanners: Sequence[str | Scanner] = ("gosec",),
    threshold: str | Severity = "low",
    timeout: float = 600,
) -> GateReport:
    """Run the scanners and fail at the threshold, as the seed's `gosec ./...` (any finding).

    Publishes the table artifact security-report-<app>.

    Args:
        directory: the project folder.
        app: the application's name.
        scanners: names from SCANNERS, or Scanner objects.
        threshold: the lowest severity that fails (low/minor < medium/major < high/critical).
        timeout: seconds each scanner may take.

    Returns:
        The GateReport when nothing reaches the threshold.

    Raises:
        GateFailed: findings at or above the threshold; the message names rule and file:line.
        ToolUnavailable: a scanner is not installed or cannot be built (never a silent pass).
        ConfigError: an unknown scanner name.
    """
    level = Severity.parse(threshold)
    chosen = [s if isinstance(s, Scanner) else scanner_for(s, timeout) for s in scanners]
    if not chosen:
        raise ConfigError("no scanner given: name at least one of " + ", ".join(SCANNERS))
    findings: list[Finding] = []
    for scanner in chosen:
        findings += scanner.run(Path(directory))
    tools = [s.name for s in chosen]
    report = GateReport(stage="security", app=app, threshold=level, tools=tools, findings=findings)
    publish_gate(report)
    get_run_logger().info(
        "%s security (%s): %d finding(s), %d at or above %s",
        app,
        ", ".join(tools),
        len(findings),
        len(report.blocking),
        level.name.lower(),
    )
    report.check()
    return report

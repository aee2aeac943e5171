"""The test stage and the quality gate: run the project's tests, gofmt, go vet (and staticcheck)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from blocks.tools import find_tool
from core.ci import (
    GateReport,
    Severity,
    StageFailed,
    TestReport,
    ToolUnavailable,
    artifact_key,
    looks_transient,
    parse_coverprofile,
    parse_go_test,
    parse_go_vet,
    parse_go_vet_json,
    parse_gofmt,
    parse_junit,
    parse_staticcheck,
)
from core.ci.toolenv import tool_environment
from core.errors import ConfigError, TransientError
from tasks import RETRIES

TOOL_TIMEOUT = 120  # seconds a short tool (kustomize, promtool) may take unless told otherwise


def run_tool(
    argv: Sequence[str],
    cwd: str | Path | None = None,
    timeout: float = TOOL_TIMEOUT,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion, bounded in time; its exit code is for the caller to judge.

    The tool gets the allowlisted environment of core.ci.toolenv plus `env`: code from the
    repository under test (its tests, its build script) never sees the pipeline's credentials.

    Raises:
        StageFailed: it did not finish within `timeout` seconds (a hang is not retried).
        ToolUnavailable: it cannot be started.
    """
    try:
        return subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=tool_environment(os.environ, env),  # no credentials for the repo's code
        )
    except subprocess.TimeoutExpired:
        raise StageFailed(f"`{' '.join(argv[:3])} ...` ran longer than {timeout:.0f}s") from None
    except OSError as exc:
        raise ToolUnavailable(f"cannot run {argv[0]}: {exc.strerror}", tool=argv[0]) from None


def unexplained(proc: subprocess.CompletedProcess[str], what: str) -> Exception:
    """The error for a tool that failed without a result we can read.

    transient when it speaks of network faults (module proxy down, ...), else permanent; either way
    with its output.
    """
    text = f"{proc.stderr}\n{proc.stdout}".strip()[-2000:]
    message = f"{what} failed (exit {proc.returncode}) without a readable result: {text}"
    return TransientError(message) if looks_transient(text) else StageFailed(message)


def _publish_tests(report: TestReport) -> None:
    rows = [
        {
            "package": p.package,
            "passed": p.passed,
            "failed": p.failed,
            "skipped": p.skipped,
            "coverage %": "-" if p.coverage is None else p.coverage,
        }
        for p in report.packages
    ]
    about = f"{report.tool} results of {report.app} per package"
    create_table_artifact(rows, key=artifact_key("test-report", report.app), description=about)
    verdict = "FAILED" if report.failures or report.build_errors else "passed"
    cover = "n/a" if report.coverage is None else f"{report.coverage}%"
    md = [
        f"# Tests of {report.app}: {verdict}",
        "",
        f"{report.total('passed')} passed, {report.total('failed')} failed, "
        f"{report.total('skipped')} skipped; coverage {cover} ({report.tool})",
    ]
    for err in report.build_errors:
        md += ["", "## Does not compile", "```", err[:3000], "```"]
    for f in report.failures:
        md += ["", f"## {f.package} `{f.name}`", "```", *f.output, "```"]
    create_markdown_artifact("\n".join(md), key=artifact_key("test-summary", report.app))


@task(name="run-tests", cache_policy=NO_CACHE, **RETRIES)
def run_tests(
    directory: str | Path,
    app: str,
    kind: str = "go",
    race: bool = True,
    use_test_cache: bool = True,
    command: Sequence[str] | None = None,
    timeout: float = 900,
) -> TestReport:
    """Run the project's tests and report counts, failing tests and coverage.

    Go: `go test [-race] -json -coverprofile=... ./...`; pytest: `<command> --junitxml=...`.
    Publishes the artifacts test-report-<app> (table) and test-summary-<app> (markdown).

    Args:
        directory: the project (Go module root, or the folder pytest runs in).
        app: the application's name (artifact keys and messages).
        kind: "go" or "pytest".
        race: Go only: run with the race detector.
        use_test_cache: Go only: False adds -count=1 so every test really runs.
        command: pytest only: the pytest command (default: this Python's `-m pytest`).
        timeout: seconds the whole run may take.

    Returns:
        The TestReport of a passing run.

    Raises:
        CompileFailed: the code or its tests do not compile (compiler output in the message).
        TestsFailed: tests failed; the message names each one (package, test, first lines).
        ToolUnavailable: go or pytest is missing.
    """
    log = get_run_logger()
    with tempfile.TemporaryDirectory(prefix="kyb-tests-") as tmp:
        if kind == "go":
            profile = Path(tmp) / "cover.out"
            argv = [
                find_tool("go", "install Go 1.24 or newer"),
                "test",
                "-json",
                f"-coverprofile={profile}",
                *(["-race"] if race else []),
                *([] if use_test_cache else ["-count=1"]),
                "./...",
            ]
            proc = run_tool(argv, directory, timeout)
            report = parse_go_test(proc.stdout, app)
            if profile.exists():
                report.coverage = parse_coverprofile(profile.read_text())
        elif kind == "pytest":
            junit = Path(tmp) / "junit.xml"
            argv = [*(command or [sys.executable, "-m", "pytest"]), f"--junitxml={junit}", "-q"]
            proc = run_tool(argv, directory, timeout)
            if proc.returncode in (3, 4) or not junit.exists():  # internal / usage error
                raise unexplained(proc, "pytest")
            report = parse_junit(junit.read_text(), app)
        else:
            raise ConfigError(f"unknown test kind {kind!r}: use 'go' or 'pytest'")
    failed = bool(report.failures or report.build_errors)
    if proc.returncode != 0 and not failed and not (kind == "pytest" and proc.returncode == 5):
        raise unexplained(proc, " ".join(argv[:2]))
    _publish_tests(report)
    log.info(
        "%s: %d passed, %d failed, %d skipped, coverage %s%%",
        app,
        report.total("passed"),
        report.total("failed"),
        report.total("skipped"),
        report.coverage,
    )
    report.check()
    return report


def publish_gate(report: GateReport) -> None:
    """Publish a gate's findings as the table artifact <stage>-report-<app>."""
    rows = [
        {
            "severity": f.severity.name.lower(),
            "blocks": f.severity >= report.threshold,
            "tool": f.tool,
            "rule": f.rule,
            "where": f.where(),
            "confidence": f.confidence,
            "message": f.message[:300],
        }
        for f in sorted(report.findings, key=lambda f: -f.severity)
    ]
    verdict = "FAILED" if report.blocking else "passed"
    create_table_artifact(
        rows or [{"severity": "-", "message": "no findings"}],
        key=artifact_key(f"{report.stage}-report", report.app),
        description=f"{report.stage} gate of {report.app} ({', '.join(report.tools)}): {verdict} "
        f"at threshold {report.threshold.name.lower()}, {len(report.findings)} finding(s)",
    )


@task(name="quality-gate", cache_policy=NO_CACHE, **RETRIES)
def quality_gate(
    directory: str | Path,
    app: str,
    threshold: str | Severity = "critical",
    staticcheck: bool | None = None,
    timeout: float = 600,
) -> GateReport:
    """Gofmt -l (major), go vet (critical), staticcheck (if installed); fail at the threshold.

    Like the seed's `validate-quality --severity critical`. Publishes quality-report-<app>.

    Args:
        directory: the Go module root.
        app: the application's name.
        threshold: the lowest severity that fails the gate (info < minor < major < critical).
        staticcheck: True requires it, False skips it, None runs it when it is on PATH.
        timeout: seconds each tool may take.

    Returns:
        The GateReport (findings below the threshold are reported, not fatal).

    Raises:
        GateFailed: findings at or above the threshold; the message names them.
        ToolUnavailable: go / gofmt (or a required staticcheck) is missing.
    """
    level, root = Severity.parse(threshold), str(Path(directory).resolve())
    go = find_tool("go", "install Go 1.24 or newer")
    fmt = run_tool([find_tool("gofmt", "it comes with Go"), "-l", "."], directory, timeout)
    if fmt.returncode != 0:
        raise unexplained(fmt, "gofmt -l")
    findings, tools = parse_gofmt(fmt.stdout), ["gofmt", "go vet"]
    vet = run_tool([go, "vet", "-json", "./..."], directory, timeout)
    vetted = parse_go_vet_json(vet.stdout, root) + parse_go_vet(vet.stderr, root)  # type errors
    if vet.returncode != 0 and not vetted:
        raise unexplained(vet, "go vet")
    findings += vetted
    if staticcheck or (staticcheck is None and shutil.which("staticcheck")):
        hint = "go install honnef.co/go/tools/cmd/staticcheck@latest"
        sc = run_tool([find_tool("staticcheck", hint), "-f", "json", "./..."], directory, timeout)
        found = parse_staticcheck(sc.stdout, root) if sc.returncode in (0, 1) else []
        if sc.returncode != 0 and not found:
            raise unexplained(sc, "staticcheck")
        findings, tools = findings + found, [*tools, "staticcheck"]
    report = GateReport(stage="quality", app=app, threshold=level, tools=tools, findings=findings)
    publish_gate(report)
    get_run_logger().info(
        "%s quality: %d finding(s), %d at or above %s",
        app,
        len(findings),
        len(report.blocking),
        level.name.lower(),
    )
    report.check()
    return report

"""The CI stages' pure logic: test and scanner output parsers, severity gates, image tags, labels.

The tasks (tasks/quality.py, security.py, images.py) run the tools; everything decided is here.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, ClassVar

from pydantic import BaseModel, Field, model_validator

from core.errors import ConfigError, PipelineError

OUTPUT_LINES = 10  # lines of a failing test's (or build's) output kept in reports
_NOISE = re.compile(r"^\s*(=== (RUN|PAUSE|CONT|NAME)|--- (FAIL|PASS|SKIP):)")
_COVERAGE = re.compile(r"coverage: ([0-9.]+)% of statements")
_VET = re.compile(r"^(?:vet: )?(?P<file>[^\s:]+\.go):(?P<line>\d+)(?::\d+)?: (?P<msg>.+)$")
_TRANSIENT = re.compile(
    r"(?i)\b(50[234]|429)\b|service unavailable|bad gateway|gateway time-?out|too many requests|"
    r"connection (reset|refused)|broken pipe|i/o timeout|tls handshake timeout|unexpected eof"
)


class StageFailed(PipelineError):
    """Permanent: a CI stage ran and found a problem; retrying cannot help."""


class TestsFailed(StageFailed):
    """Tests failed; the message names them."""

    __test__: ClassVar[bool] = False  # not a pytest test class


class CompileFailed(StageFailed):
    """The code or its tests do not compile; the message carries the compiler's output."""


class GateFailed(StageFailed):
    """Findings at or above the configured severity threshold; the message names them."""


class BuildFailed(StageFailed):
    """The image build failed; the message names the failing step."""


class ToolUnavailable(ConfigError):
    """A required tool is missing or cannot be built; the message says how to get it."""


class Severity(IntEnum):
    """Finding severities, ordered: info < minor < major < critical."""

    INFO = 0
    MINOR = 1
    MAJOR = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, value: str | int) -> Severity:
        """A Severity from its name, or from a scanner's LOW / MEDIUM / HIGH (minor/major/critical).

        Raises:
            ConfigError: unknown name (the message lists the known ones).
        """
        if isinstance(value, int):
            return cls(value)
        name = {"low": "minor", "medium": "major", "high": "critical"}.get(value.lower(), value)
        try:
            return cls[name.upper()]
        except KeyError:
            known = [s.name.lower() for s in cls] + ["low", "medium", "high"]
            raise ConfigError(f"unknown severity {value!r}: use one of {known}") from None


class Finding(BaseModel):
    """One problem a linter or scanner reported."""

    severity: Severity
    tool: str
    rule: str = ""
    file: str = ""
    line: int = 0
    message: str
    confidence: str = ""

    def where(self) -> str:
        """file:line, or the tool's name when the finding has no location."""
        return f"{self.file}:{self.line}" if self.file else f"({self.tool})"


class GateReport(BaseModel):
    """The findings of one gate (quality or security) and the threshold that judges them."""

    stage: str
    app: str
    threshold: Severity
    tools: list[str]
    findings: list[Finding] = Field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        """Findings at or above the threshold, worst first."""
        bad = [f for f in self.findings if f.severity >= self.threshold]
        return sorted(bad, key=lambda f: -f.severity)

    def check(self) -> None:
        """Raise GateFailed naming every blocking finding (tool, rule, file:line, message)."""
        if bad := self.blocking:
            named = "; ".join(
                f"[{f.severity.name.lower()}] {f.tool} {f.rule} {f.where()}: {f.message[:200]}"
                for f in bad[:20]
            )
            raise GateFailed(
                f"{self.stage} gate failed for {self.app}: {len(bad)} finding(s) at or above "
                f"{self.threshold.name.lower()}: {named}",
                stage=self.stage,
            )


def relative(path: str, root: str | None = None) -> str:
    """path relative to root when it lies under it (and without a leading './')."""
    prefix = f"{str(root).rstrip('/')}/" if root else "\0"
    return path[len(prefix) :] if path.startswith(prefix) else path.removeprefix("./")


def _finding(
    sev: Any, tool: str, rule: str, file: str, line: Any, msg: str, conf: str = ""
) -> Finding:
    number = int(str(line or 0).split("-")[0])  # gosec gives "12" or a range "12-14"
    return Finding(severity=Severity.parse(sev), tool=tool, rule=rule, file=file, line=number,
                   message=msg, confidence=conf)  # fmt: skip


def parse_gofmt(text: str) -> list[Finding]:
    """Findings from `gofmt -l` (one file a line), each major."""
    files = [f.strip().removeprefix("./") for f in text.splitlines() if f.strip()]
    return [_finding("major", "gofmt", "gofmt", f, 0, f"unformatted: gofmt -w {f}") for f in files]


def parse_go_vet(text: str, root: str | None = None) -> list[Finding]:
    """Findings from `go vet` stderr, each critical (type errors too); '#' lines are headers."""
    found = []
    for raw in (s.strip() for s in text.splitlines()):
        if raw and not raw.startswith("#"):
            m = _VET.match(raw)
            where = (relative(m["file"], root), m["line"], m["msg"]) if m else ("", 0, raw)
            found.append(_finding("critical", "go vet", "vet", *where))
    return found


def parse_staticcheck(text: str, root: str | None = None) -> list[Finding]:
    """Findings from `staticcheck -f json` (a JSON object a line): error is major, else minor."""
    found = []
    for item in (json.loads(s) for s in text.splitlines() if s.strip()):
        loc, sev = item.get("location", {}), "major" if item.get("severity") == "error" else "minor"
        found.append(_finding(sev, "staticcheck", item.get("code", ""),
                              relative(loc.get("file", ""), root), loc.get("line"),
                              item.get("message", "")))  # fmt: skip
    return found


def parse_gosec(text: str, root: str | None = None) -> list[Finding]:
    """Findings from `gosec -fmt json`; a package gosec could not load counts as critical."""
    doc = json.loads(text)
    found = [
        _finding(i["severity"], "gosec", i["rule_id"], relative(i["file"], root), i["line"],
                 i["details"], i.get("confidence", ""))
        for i in doc.get("Issues") or []
    ]  # fmt: skip
    for file, errs in (doc.get("Golang errors") or {}).items():
        found += [_finding("critical", "gosec", "load-error", relative(file, root), e.get("line"),
                           f"gosec could not analyse: {e.get('error')}") for e in errs]  # fmt: skip
    return found


def parse_bandit(text: str, root: str | None = None) -> list[Finding]:
    """Findings from `bandit -f json`; a file bandit could not scan counts as major."""
    doc = json.loads(text)
    found = [_finding(r["issue_severity"], "bandit", r["test_id"], relative(r["filename"], root),
                      r["line_number"], r["issue_text"], r.get("issue_confidence", ""))
             for r in doc.get("results", [])]  # fmt: skip
    return found + [_finding("major", "bandit", "scan-error", relative(e.get("filename", ""), root),
                             0, e.get("reason", "")) for e in doc.get("errors", [])]  # fmt: skip


def parse_pip_audit(text: str) -> list[Finding]:
    """Findings from `pip-audit -f json`: a known vulnerability is major (pip-audit has no
    severity); a dependency it could not audit is minor (a gap is shown, never passed over)."""
    found = []
    for dep in json.loads(text).get("dependencies", []):
        pinned = f"{dep['name']}=={dep.get('version', '?')}"
        for v in dep.get("vulns", []):
            fixed = ", ".join(v.get("fix_versions", [])) or "none yet"
            msg = f"{v.get('description', '')[:200]} (fixed in: {fixed})".strip()
            found.append(_finding("major", "pip-audit", v["id"], pinned, 0, msg))
        if dep.get("skip_reason"):
            why = dep["skip_reason"]
            found.append(_finding("minor", "pip-audit", "not-audited", pinned, 0, why))
    return found


def looks_transient(text: str) -> bool:
    """True when a tool's error text speaks of a fault that may pass (5xx, 429, network)."""
    return bool(_TRANSIENT.search(text))


def artifact_key(kind: str, app: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes), e.g. test-report-kyb-platform."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", f"{kind}-{app}".lower())).strip("-")


def pick(lines: Iterable[str], limit: int = OUTPUT_LINES) -> list[str]:
    """The first `limit` meaningful lines of test output (runner noise such as === RUN dropped)."""
    return [s.rstrip() for s in lines if s.strip() and not _NOISE.match(s)][:limit]


# --- test reports: go test -json, JUnit XML, coverprofile -------------------------------------


class FailedTest(BaseModel):
    """One failing test: package, name and the first lines of its output."""

    package: str
    name: str
    output: list[str] = Field(default_factory=list)


class PackageResult(BaseModel):
    """Counts of one Go package (or pytest module) and its coverage in %."""

    package: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    coverage: float | None = None


class TestReport(BaseModel):
    """What a test run found, per package, with the failing tests named."""

    __test__: ClassVar[bool] = False  # not a pytest test class
    app: str
    tool: str
    packages: list[PackageResult] = Field(default_factory=list)
    failures: list[FailedTest] = Field(default_factory=list)
    build_errors: list[str] = Field(default_factory=list)
    coverage: float | None = None

    def total(self, outcome: str) -> int:
        """Sum of 'passed', 'failed' or 'skipped' over the packages."""
        return sum(getattr(p, outcome) for p in self.packages)

    def check(self) -> None:
        """Raise CompileFailed (with the compiler's output) or TestsFailed (naming each test)."""
        if self.build_errors:
            text = "\n".join(self.build_errors)[:4000]
            raise CompileFailed(f"{self.app} does not compile:\n{text}", tool=self.tool)
        if self.failures:
            named = "; ".join(
                f"{f.package} {f.name}: {' | '.join(f.output[:3])}"[:400] for f in self.failures
            )
            raise TestsFailed(f"{self.app}: {len(self.failures)} failing test(s): {named}")


def parse_go_test(text: str, app: str) -> TestReport:
    """A TestReport from `go test -json` output: leaf tests counted, build failures collected."""
    outcome: dict[tuple[str, str], str] = {}
    output: dict[tuple[str, str], list[str]] = {}
    status: dict[str, str] = {}
    cover: dict[str, float] = {}
    builds: dict[str, list[str]] = {}
    report = TestReport(app=app, tool="go test")
    for raw in text.splitlines():
        try:
            ev = json.loads(raw)
        except ValueError:
            continue  # non-JSON lines (go: downloading ...) carry no results
        act, pkg, test = ev.get("Action"), ev.get("Package", ""), ev.get("Test", "")
        if act == "build-output":
            builds.setdefault(ev["ImportPath"], []).append(ev.get("Output", ""))
        elif act == "build-fail":
            report.build_errors.append("".join(builds.get(ev["ImportPath"], [])).strip())
        elif act == "output":
            output.setdefault((pkg, test), []).append(ev.get("Output", ""))
            if not test and (m := _COVERAGE.search(ev.get("Output", ""))):
                cover[pkg] = float(m[1])
        elif act in ("pass", "fail", "skip"):
            if test:
                outcome[(pkg, test)] = act
            else:
                status[pkg] = "build-fail" if ev.get("FailedBuild") else act
    field = {"pass": "passed", "fail": "failed", "skip": "skipped"}
    for pkg, state in status.items():
        res = PackageResult(package=pkg, coverage=cover.get(pkg))
        names = {t: o for (p, t), o in outcome.items() if p == pkg}
        for name, act in names.items():
            kids = [o for t, o in names.items() if t.startswith(f"{name}/")]
            if kids and (act != "fail" or "fail" in kids):
                continue  # counted through its subtests
            setattr(res, field[act], getattr(res, field[act]) + 1)
            if act == "fail":
                lines = pick(output.get((pkg, name), []))
                report.failures.append(FailedTest(package=pkg, name=name, output=lines))
        pkg_out = "".join(output.get((pkg, ""), []))
        if state == "fail" and not res.failed and "[setup failed]" in pkg_out:
            report.build_errors.append(pkg_out.strip())
        elif state == "fail" and not res.failed:  # TestMain exit, crash, timeout ...
            res.failed = 1
            lines = pick(pkg_out.splitlines())
            report.failures.append(FailedTest(package=pkg, name="(package)", output=lines))
        report.packages.append(res)
    return report


def parse_coverprofile(text: str) -> float | None:
    """Total statement coverage in % of a Go coverprofile (blocks merged), None when empty."""
    blocks: dict[str, tuple[int, int]] = {}
    for m in re.finditer(r"^(\S+:\d+\.\d+,\d+\.\d+) (\d+) (\d+)$", text, re.MULTILINE):
        blocks[m[1]] = (int(m[2]), max(blocks.get(m[1], (0, 0))[1], int(m[3])))
    total = sum(n for n, _ in blocks.values())
    covered = sum(n for n, hits in blocks.values() if hits)
    return round(100 * covered / total, 1) if total else None


def parse_junit(text: str, app: str) -> TestReport:
    """A TestReport from JUnit XML (pytest --junitxml); collection errors are build errors."""
    report, by_module = TestReport(app=app, tool="pytest"), {}
    for case in ET.fromstring(text).iter("testcase"):
        module, name = case.get("classname") or "(collection)", case.get("name", "?")
        res = by_module.setdefault(module, PackageResult(package=module))
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None and bad.get("message") == "collection failure":
            report.build_errors.append(f"{name}: {bad.text or ''}".strip())
        elif bad is not None:
            res.failed += 1
            lines = pick([bad.get("message", ""), *(bad.text or "").splitlines()])
            report.failures.append(FailedTest(package=module, name=name, output=lines))
        else:
            res.skipped += case.find("skipped") is not None
            res.passed += case.find("skipped") is None
    report.packages = list(by_module.values())
    return report


# --- images: docker/metadata-action's tag scheme, OCI labels, build and push streams ----------


class GitRef(BaseModel):
    """What triggered the build: a branch push or a pull request, at one commit."""

    sha: str = Field(pattern=r"^[0-9a-f]{7,40}$")
    branch: str | None = None
    pr: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_event(self) -> GitRef:
        if (self.branch is None) == (self.pr is None):
            raise ValueError("give branch (a push) or pr (a pull request): exactly one of them")
        return self


class ImageResult(BaseModel):
    """An image in the registry: its immutable reference, its tags, and whether it was reused."""

    reference: str  # registry/repo@sha256:...
    digest: str
    tags: list[str]
    reused: bool
    labels: dict[str, str] = Field(default_factory=dict)


def sanitize_tag(text: str, limit: int = 128) -> str:
    """A valid Docker tag from a branch name: lowercase, '/' and other characters -> '-'.

    Raises:
        ConfigError: nothing valid is left.
    """
    tag = re.sub(r"[^a-z0-9_.-]", "-", text.lower()).lstrip(".-")[:limit]
    if not tag:
        raise ConfigError(f"branch {text!r} gives an empty image tag: use letters or digits")
    return tag


def image_tags(ref: GitRef) -> tuple[list[str], str]:
    """Tags as metadata-action's `type=ref,event=branch`, `type=ref,event=pr` and
    `type=sha,prefix={{branch}}-` make them (short sha: 7); never `latest`.

    For a pull request metadata-action's {{branch}} is empty: we tag `pr-<n>-<sha7>` so that
    every commit still gets one immutable tag.

    Returns:
        (all tags, the immutable commit tag), e.g. (["main", "main-1a2b3c4"], "main-1a2b3c4").
    """
    short = ref.sha[:7]
    head = f"pr-{ref.pr}" if ref.pr is not None else sanitize_tag(ref.branch or "")
    commit = f"{head[: 128 - len(short) - 1]}-{short}"
    return [head, commit], commit


def oci_labels(
    source: str, revision: str, created: datetime | None = None, version: str = "", title: str = ""
) -> dict[str, str]:
    """org.opencontainers.image.* labels (empty ones left out); created is RFC 3339 UTC."""
    when = (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = {"source": source, "revision": revision, "created": when, "version": version,
              "title": title}  # fmt: skip
    return {f"org.opencontainers.image.{k}": v for k, v in values.items() if v}


class BuildLog:
    """Follows a Docker build's decoded JSON stream: the current step, the image id, the error."""

    def __init__(self) -> None:
        self.step, self.image_id, self.error = "", "", ""
        self.tail: list[str] = []

    def feed(self, event: dict[str, Any]) -> None:
        """Take one decoded event of the build stream."""
        for line in (s.strip() for s in str(event.get("stream", "")).splitlines()):
            if line.startswith("Step "):
                self.step = line
            elif m := re.match(r"Successfully built ([0-9a-f]+)", line):
                self.image_id = self.image_id or m[1]
            self.tail = [*self.tail, line][-OUTPUT_LINES:] if line else self.tail
        self.image_id = (event.get("aux") or {}).get("ID", self.image_id)
        if "error" in event or "errorDetail" in event:
            self.error = (event.get("errorDetail") or {}).get("message") or str(event["error"])

    def failure(self) -> str:
        """The failing step, the error, and the build's last output lines."""
        out = "\n".join(line for line in self.tail if line != self.step)
        return f"{self.step or 'build'} failed: {self.error}" + (f"\n{out}" if out else "")


def classify_push_error(text: str) -> str:
    """'credentials', 'transient' or 'permanent' for the error of a docker push stream."""
    if re.search(r"(?i)unauthorized|authentication required|denied|no basic auth|\b401\b", text):
        return "credentials"
    return "transient" if looks_transient(text) else "permanent"

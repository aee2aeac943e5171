"""Linter and scanner findings: severities, the gate that judges them, and each tool's parser."""

from __future__ import annotations

import json
import re
from enum import IntEnum
from typing import Any

from pydantic import BaseModel, Field

from core.ci.errors import GateFailed
from core.ci.output import relative
from core.errors import ConfigError

_VET = re.compile(r"^(?:vet: )?(?P<file>[^\s:]+\.go):(?P<line>\d+)(?::\d+)?: (?P<msg>.+)$")


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


def _finding(
    sev: Any, tool: str, rule: str, file: str, line: Any, msg: str, conf: str = ""
) -> Finding:
    number = int(str(line or 0).split("-")[0])  # gosec gives "12" or a range "12-14"
    return Finding(
        severity=Severity.parse(sev),
        tool=tool,
        rule=rule,
        file=file,
        line=number,
        message=msg,
        confidence=conf,
    )


def parse_gofmt(text: str) -> list[Finding]:
    """Findings from `gofmt -l` (one file a line), each major."""
    files = [f.strip().removeprefix("./") for f in text.splitlines() if f.strip()]
    return [_finding("major", "gofmt", "gofmt", f, 0, f"unformatted: gofmt -w {f}") for f in files]


def parse_go_vet(text: str, root: str | None = None) -> list[Finding]:
    """Findings from `go vet` text output (type errors on stderr), each critical.

    Only lines naming a file and line are findings; the go command's own progress (`go:
    downloading ...`, module resolution) and the `#` package headers never are, so a cold module
    cache cannot fail the gate.
    """
    found = []
    for raw in (s.strip() for s in text.splitlines()):
        m = _VET.match(raw)
        if m:
            where = (relative(m["file"], root), int(m["line"]), m["msg"])
            found.append(_finding("critical", "go vet", "vet", *where))
    return found


def parse_go_vet_json(text: str, root: str | None = None) -> list[Finding]:
    """Findings from `go vet -json` stdout: one JSON object per package, analyzer -> diagnostics.

    Raises:
        ConfigError: the output is not the JSON go vet writes.
    """
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := _skip_space(text, at)) < len(text):
        try:
            packages, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"go vet -json wrote something that is not JSON: {exc}") from None
        for analyzers in packages.values():
            for analyzer, diagnostics in analyzers.items():
                for d in diagnostics if isinstance(diagnostics, list) else []:
                    file, _, rest = str(d.get("posn", "")).rpartition(".go:")
                    line = rest.split(":")[0]
                    where = relative(file + ".go", root) if file else ""
                    msg = str(d.get("message", ""))
                    found.append(
                        _finding("critical", "go vet", analyzer, where, int(line or 0), msg)
                    )
    return found


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def parse_staticcheck(text: str, root: str | None = None) -> list[Finding]:
    """Findings from `staticcheck -f json` (a JSON object a line): error is major, else minor."""
    found = []
    for item in (json.loads(s) for s in text.splitlines() if s.strip()):
        loc, sev = item.get("location", {}), "major" if item.get("severity") == "error" else "minor"
        found.append(
            _finding(
                sev,
                "staticcheck",
                item.get("code", ""),
                relative(loc.get("file", ""), root),
                loc.get("line"),
                item.get("message", ""),
            )
        )
    return found


def parse_gosec(text: str, root: str | None = None) -> list[Finding]:
    """Findings from `gosec -fmt json`; a package gosec could not load counts as critical."""
    doc = json.loads(text)
    found = [
        _finding(
            i["severity"],
            "gosec",
            i["rule_id"],
            relative(i["file"], root),
            i["line"],
            i["details"],
            i.get("confidence", ""),
        )
        for i in doc.get("Issues") or []
    ]
    for file, errs in (doc.get("Golang errors") or {}).items():
        found += [
            _finding(
                "critical",
                "gosec",
                "load-error",
                relative(file, root),
                e.get("line"),
                f"gosec could not analyse: {e.get('error')}",
            )
            for e in errs
        ]
    return found


def parse_bandit(text: str, root: str | None = None) -> list[Finding]:
    """Findings from `bandit -f json`; a file bandit could not scan counts as major."""
    doc = json.loads(text)
    found = [
        _finding(
            r["issue_severity"],
            "bandit",
            r["test_id"],
            relative(r["filename"], root),
            r["line_number"],
            r["issue_text"],
            r.get("issue_confidence", ""),
        )
        for r in doc.get("results", [])
    ]
    return found + [
        _finding(
            "major",
            "bandit",
            "scan-error",
            relative(e.get("filename", ""), root),
            0,
            e.get("reason", ""),
        )
        for e in doc.get("errors", [])
    ]


def parse_pip_audit(text: str) -> list[Finding]:
    """Findings from `pip-audit -f json`.

    a known vulnerability is major (pip-audit has no severity); a dependency it could not audit is
    minor (a gap is shown, never passed over).
    """
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

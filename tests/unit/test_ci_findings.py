"""Findings from real linter/scanner output and the severity gate (a table over thresholds).

gofmt, go vet, gosec (v2.30.0) and bandit samples were captured from real runs on planted code;
pip-audit's "skip_reason" entry too. pip-audit's vulnerability entry and staticcheck's line follow
their documented JSON formats (neither could report one here: no vulnerability database, no
staticcheck binary).
"""

# ruff: noqa: E501  (tool output samples kept verbatim, one event per line)

from __future__ import annotations

import json

import pytest

from core.ci import (
    Finding,
    GateFailed,
    GateReport,
    Severity,
    parse_bandit,
    parse_go_vet,
    parse_go_vet_json,
    parse_gofmt,
    parse_gosec,
    parse_pip_audit,
    parse_staticcheck,
)
from core.errors import ConfigError

GOSEC = json.dumps(
    {
        "Golang errors": {},
        "Issues": [
            {
                "severity": "HIGH",
                "confidence": "MEDIUM",
                "cwe": {"id": "338", "url": "https://cwe.mitre.org/data/definitions/338.html"},
                "rule_id": "G404",
                "details": "Use of weak random number generator (math/rand or math/rand/v2 instead of crypto/rand)",
                "file": "/tmp/ex/planted.go",
                "code": "6: \n7: func jitter() int { return rand.Intn(10) }\n",
                "line": "7",
                "column": "28",
                "nosec": False,
                "suppressions": None,
            }
        ],
        "Stats": {"files": 5, "lines": 373, "nosec": 0, "found": 1},
        "GosecVersion": "dev",
    }
)

GOSEC_CLEAN = '{\n\t"Golang errors": {},\n\t"Issues": [],\n\t"Stats": {"files": 4}}'

GO_VET = """vetbad.go:6:15: fmt.Printf format %d has arg "str" of wrong type string
# kybplatform.local/kyb-platform
# [kybplatform.local/kyb-platform]
vet: ./broken.go:3:28: undefined: undefinedThing
"""

BANDIT = json.dumps(
    {
        "errors": [],
        "results": [
            {
                "filename": "./app.py",
                "issue_confidence": "HIGH",
                "issue_severity": "LOW",
                "issue_text": "Consider possible security implications associated with the subprocess module.",
                "line_number": 1,
                "test_id": "B404",
            },
            {
                "filename": "./app.py",
                "issue_confidence": "HIGH",
                "issue_severity": "HIGH",
                "issue_text": "subprocess call with shell=True identified, security issue.",
                "line_number": 7,
                "test_id": "B602",
            },
        ],
    }
)

PIP_AUDIT = json.dumps(
    {
        "dependencies": [
            {
                "name": "requests",
                "version": "2.19.0",
                "vulns": [
                    {
                        "id": "PYSEC-2018-28",
                        "fix_versions": ["2.20.0"],
                        "aliases": ["CVE-2018-18074"],
                        "description": "The Requests package sends an HTTP Authorization header to an http URI",
                    }
                ],
            },
            {
                "name": "idna",
                "skip_reason": "Dependency not found on PyPI and could not be audited: idna",
            },
            {"name": "certifi", "version": "2024.2.2", "vulns": []},
        ],
        "fixes": [],
    }
)

STATICCHECK = (
    '{"code":"SA4006","severity":"error","location":{"file":"/src/app/x.go","line":10,"column":2},'
    '"end":{"file":"/src/app/x.go","line":10,"column":5},"message":"this value of err is never used"}'
    '\n{"code":"ST1005","severity":"warning","location":{"file":"/src/app/y.go","line":3,"column":9},'
    '"message":"error strings should not be capitalized"}\n'
)


def test_gofmt_list_is_major_per_file() -> None:
    (finding,) = parse_gofmt("vetbad.go\n")
    assert (finding.severity, finding.tool, finding.file) == (Severity.MAJOR, "gofmt", "vetbad.go")
    assert parse_gofmt("") == []


def test_go_vet_findings_and_type_errors_are_critical() -> None:
    found = parse_go_vet(GO_VET)
    assert [(f.file, f.line, f.severity) for f in found] == [
        ("vetbad.go", 6, Severity.CRITICAL),
        ("broken.go", 3, Severity.CRITICAL),
    ]
    assert "undefined: undefinedThing" in found[1].message


# `go vet -json ./...` on a planted Printf misuse (Go 1.26): JSON on stdout, exit 0.
GO_VET_JSON = """{
\t"kybplatform.local/kyb-platform": {
\t\t"printf": [
\t\t\t{
\t\t\t\t"posn": "/tmp/ex/vetbad.go:6:14",
\t\t\t\t"end": "/tmp/ex/vetbad.go:6:16",
\t\t\t\t"message": "fmt.Printf format %d has arg \\"x\\" of wrong type string"
\t\t\t}
\t\t]
\t}
}
{}
"""
# What go prints on stderr while it fills a cold module cache: progress, never findings.
COLD_CACHE = """go: downloading github.com/prometheus/client_golang v1.23.2
go: downloading github.com/prometheus/common v0.66.1
go: downloading google.golang.org/protobuf v1.36.8
"""


def test_go_vet_json_findings_are_critical_with_analyzer_file_and_line() -> None:
    (f,) = parse_go_vet_json(GO_VET_JSON, root="/tmp/ex")
    assert (f.severity, f.tool, f.rule, f.file, f.line) == (
        Severity.CRITICAL,
        "go vet",
        "printf",
        "vetbad.go",
        6,
    )
    assert "wrong type string" in f.message
    assert parse_go_vet_json("{}\n") == [] and parse_go_vet_json("") == []


def test_go_progress_on_a_cold_module_cache_is_never_a_finding() -> None:
    assert parse_go_vet(COLD_CACHE) == []
    assert [f.file for f in parse_go_vet(COLD_CACHE + GO_VET)] == ["vetbad.go", "broken.go"]


def test_go_vet_json_that_is_not_json_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not JSON"):
        parse_go_vet_json("go: downloading x v1\n")


def test_gosec_issue_maps_severity_rule_file_line_confidence() -> None:
    (f,) = parse_gosec(GOSEC, root="/tmp/ex")
    assert (f.severity, f.rule, f.file, f.line, f.confidence) == (
        Severity.CRITICAL,
        "G404",
        "planted.go",
        7,
        "MEDIUM",
    )
    assert parse_gosec(GOSEC_CLEAN) == []


def test_gosec_load_errors_never_pass_silently() -> None:
    doc = {"Golang errors": {"/m/x.go": [{"line": 3, "column": 1, "error": "undefined: y"}]}}
    (f,) = parse_gosec(json.dumps(doc), root="/m")
    assert (f.severity, f.rule, f.file, f.line) == (Severity.CRITICAL, "load-error", "x.go", 3)


def test_bandit_results() -> None:
    found = parse_bandit(BANDIT)
    assert [(f.rule, f.severity, f.file, f.line) for f in found] == [
        ("B404", Severity.MINOR, "app.py", 1),
        ("B602", Severity.CRITICAL, "app.py", 7),
    ]


def test_pip_audit_vulns_are_major_and_unaudited_dependencies_show_up() -> None:
    vuln, skipped = parse_pip_audit(PIP_AUDIT)
    assert (vuln.rule, vuln.file, vuln.severity) == ("PYSEC-2018-28", "requests==2.19.0", 2)
    assert "fixed in: 2.20.0" in vuln.message
    assert (skipped.rule, skipped.severity) == ("not-audited", Severity.MINOR)


def test_staticcheck_json_lines() -> None:
    found = parse_staticcheck(STATICCHECK, root="/src/app")
    assert [(f.rule, f.severity, f.file, f.line) for f in found] == [
        ("SA4006", Severity.MAJOR, "x.go", 10),
        ("ST1005", Severity.MINOR, "y.go", 3),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("info", 0),
        ("MINOR", 1),
        ("major", 2),
        ("critical", 3),
        ("low", 1),
        ("MEDIUM", 2),
        ("high", 3),
        (2, 2),
    ],
)
def test_severity_names_and_scanner_aliases(name, expected) -> None:
    assert Severity.parse(name) == expected


def test_unknown_severity_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown severity 'severe'.*critical.*high"):
        Severity.parse("severe")


def _finding(sev: Severity, rule: str) -> Finding:
    return Finding(severity=sev, tool="t", rule=rule, file="a.go", line=1, message=f"{rule} msg")


FINDINGS = [_finding(Severity.MINOR, "R1"), _finding(Severity.MAJOR, "R2")]


@pytest.mark.parametrize(
    ("threshold", "blocking"),
    [("info", ["R2", "R1"]), ("minor", ["R2", "R1"]), ("major", ["R2"]), ("critical", [])],
)
def test_gate_fails_only_at_or_above_the_threshold(threshold: str, blocking: list[str]) -> None:
    report = GateReport(
        stage="quality",
        app="kyb",
        threshold=Severity.parse(threshold),
        tools=["t"],
        findings=FINDINGS,
    )
    assert [f.rule for f in report.blocking] == blocking
    if not blocking:
        report.check()
        return
    with pytest.raises(GateFailed) as err:
        report.check()
    assert f"at or above {threshold}" in str(err.value)
    assert all(f"{rule} a.go:1: {rule} msg" in str(err.value) for rule in blocking)


def test_an_empty_gate_passes() -> None:
    GateReport(stage="security", app="kyb", threshold=Severity.INFO, tools=["gosec"]).check()

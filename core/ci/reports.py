"""Test reports: go test -json, JUnit XML (pytest) and Go coverprofiles, into one TestReport."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import ClassVar

from pydantic import BaseModel, Field

from core.ci.errors import CompileFailed, TestsFailed
from core.ci.output import pick

_COVERAGE = re.compile(r"coverage: ([0-9.]+)% of statements")


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

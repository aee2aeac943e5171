"""The CI stages' pure logic: test and scanner parsers, severity gates, image tags, labels."""

from __future__ import annotations

from core.ci.errors import (
    BuildFailed,
    CompileFailed,
    GateFailed,
    StageFailed,
    TestsFailed,
    ToolUnavailable,
)
from core.ci.findings import (
    Finding,
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
from core.ci.images import (
    REVISION,
    BuildLog,
    BuiltImage,
    GitRef,
    ImageResult,
    classify_push_error,
    image_tags,
    oci_labels,
    sanitize_tag,
)
from core.ci.output import OUTPUT_LINES, artifact_key, looks_transient, pick, relative
from core.ci.reports import (
    FailedTest,
    PackageResult,
    TestReport,
    parse_coverprofile,
    parse_go_test,
    parse_junit,
)

__all__ = [
    "OUTPUT_LINES",
    "REVISION",
    "BuildFailed",
    "BuildLog",
    "BuiltImage",
    "CompileFailed",
    "FailedTest",
    "Finding",
    "GateFailed",
    "GateReport",
    "GitRef",
    "ImageResult",
    "PackageResult",
    "Severity",
    "StageFailed",
    "TestReport",
    "TestsFailed",
    "ToolUnavailable",
    "artifact_key",
    "classify_push_error",
    "image_tags",
    "looks_transient",
    "oci_labels",
    "parse_bandit",
    "parse_coverprofile",
    "parse_go_test",
    "parse_go_vet",
    "parse_go_vet_json",
    "parse_gofmt",
    "parse_gosec",
    "parse_junit",
    "parse_pip_audit",
    "parse_staticcheck",
    "pick",
    "relative",
    "sanitize_tag",
]

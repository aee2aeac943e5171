"""Test reports from real tool output.

go test -json (pass, fail, subtests, skip, build failure), pytest's JUnit XML, and a Go
coverprofile. Samples captured from go 1.26 / pytest 8 runs (the "Time" and "Elapsed" fields of go
test's events dropped to keep them short).
"""

# ruff: noqa: E501  (tool output samples kept verbatim, one event per line)

from __future__ import annotations

import pytest

from core.ci import CompileFailed, TestsFailed, parse_coverprofile, parse_go_test, parse_junit

PKG = "kybplatform.local/kyb-platform"


def _events(*lines: str) -> str:
    return "\n".join(lines) + "\n"


GO_PASS = _events(
    f'{{"Action":"start","Package":"{PKG}"}}',
    f'{{"Action":"run","Package":"{PKG}","Test":"TestParseConfigDefaults"}}',
    f'{{"Action":"pass","Package":"{PKG}","Test":"TestParseConfigDefaults"}}',
    f'{{"Action":"pass","Package":"{PKG}","Test":"TestHealthContract"}}',
    f'{{"Action":"output","Package":"{PKG}","Output":"PASS\\n"}}',
    f'{{"Action":"output","Package":"{PKG}","Output":"coverage: 90.2% of statements\\n"}}',
    f'{{"Action":"pass","Package":"{PKG}"}}',
    '{"Action":"start","Package":"kybplatform.local/kyb-platform/sub"}',
    '{"Action":"output","Package":"kybplatform.local/kyb-platform/sub",'
    '"Output":"\\tkybplatform.local/kyb-platform/sub\\t\\tcoverage: 0.0% of statements\\n"}',
    '{"Action":"pass","Package":"kybplatform.local/kyb-platform/sub"}',
)

GO_FAIL_SUBTEST_SKIP = _events(
    '{"Action":"output","Package":"example.local/gt","Test":"TestAdd","Output":"=== RUN   TestAdd\\n"}',
    '{"Action":"pass","Package":"example.local/gt","Test":"TestAdd/small"}',
    '{"Action":"output","Package":"example.local/gt","Test":"TestAdd/big","Output":"=== RUN   TestAdd/big\\n"}',
    '{"Action":"output","Package":"example.local/gt","Test":"TestAdd/big",'
    '"Output":"    a_test.go:7: Add(2, 2) = 4, want 5\\n"}',
    '{"Action":"output","Package":"example.local/gt","Test":"TestAdd/big","Output":"--- FAIL: TestAdd/big (0.00s)\\n"}',
    '{"Action":"fail","Package":"example.local/gt","Test":"TestAdd/big"}',
    '{"Action":"output","Package":"example.local/gt","Test":"TestAdd","Output":"--- FAIL: TestAdd (0.00s)\\n"}',
    '{"Action":"fail","Package":"example.local/gt","Test":"TestAdd"}',
    '{"Action":"output","Package":"example.local/gt","Test":"TestSkip","Output":"    a_test.go:10: needs a database\\n"}',
    '{"Action":"skip","Package":"example.local/gt","Test":"TestSkip"}',
    '{"Action":"output","Package":"example.local/gt","Output":"FAIL\\n"}',
    '{"Action":"output","Package":"example.local/gt","Output":"coverage: 25.0% of statements\\n"}',
    '{"Action":"fail","Package":"example.local/gt"}',
)

GO_PLANTED_FAILURE = _events(
    f'{{"Action":"pass","Package":"{PKG}","Test":"TestHealthContract"}}',
    f'{{"Action":"output","Package":"{PKG}","Test":"TestPlantedFailure","Output":"=== RUN   TestPlantedFailure\\n"}}',
    f'{{"Action":"output","Package":"{PKG}","Test":"TestPlantedFailure","Output":"    planted_test.go:6: about to fail\\n"}}',
    f'{{"Action":"output","Package":"{PKG}","Test":"TestPlantedFailure",'
    f'"Output":"    planted_test.go:7: planted failure: want 1, got 2\\n"}}',
    f'{{"Action":"fail","Package":"{PKG}","Test":"TestPlantedFailure"}}',
    f'{{"Action":"fail","Package":"{PKG}"}}',
)

GO_BUILD_FAIL = _events(
    f'{{"ImportPath":"{PKG} [{PKG}.test]","Action":"build-output","Output":"# {PKG} [{PKG}.test]\\n"}}',
    f'{{"ImportPath":"{PKG} [{PKG}.test]","Action":"build-output",'
    f'"Output":"./broken.go:3:28: undefined: undefinedThing\\n"}}',
    f'{{"ImportPath":"{PKG} [{PKG}.test]","Action":"build-fail"}}',
    f'{{"Action":"start","Package":"{PKG}"}}',
    f'{{"Action":"output","Package":"{PKG}","Output":"FAIL\\t{PKG} [build failed]\\n"}}',
    f'{{"Action":"fail","Package":"{PKG}","FailedBuild":"{PKG} [{PKG}.test]"}}',
)

GO_PACKAGE_ONLY_FAIL = _events(
    '{"Action":"output","Package":"example.local/m","Output":"panic: TestMain exploded\\n"}',
    '{"Action":"output","Package":"example.local/m","Output":"FAIL\\texample.local/m\\t0.01s\\n"}',
    '{"Action":"fail","Package":"example.local/m"}',
)

JUNIT = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" '
    'errors="0" failures="1" skipped="1" tests="3"><testcase classname="test_sample" name="test_ok" '
    'time="0.001" /><testcase classname="test_sample" name="test_bad" time="0.001"><failure '
    'message="AssertionError: two is not three&#10;assert 2 == 3">def test_bad():\n        x = 2\n'
    '&gt;       assert x == 3, "two is not three"\nE       AssertionError: two is not three\n'
    "E       assert 2 == 3\n\n/tmp/pyt/test_sample.py:8: AssertionError</failure></testcase>"
    '<testcase classname="test_sample" name="test_skipped" time="0.003"><skipped type="pytest.skip" '
    'message="not today">/tmp/pyt/test_sample.py:10: not today</skipped></testcase></testsuite>'
    "</testsuites>"
)

JUNIT_COLLECTION_ERROR = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" '
    'errors="1" failures="0" skipped="0" tests="1"><testcase classname="" name="test_broken" '
    'time="0.000"><error message="collection failure">ImportError while importing test module '
    "'/tmp/pyt/test_broken.py'.\nE   ModuleNotFoundError: No module named 'nonexistent_module_xyz'"
    "</error></testcase></testsuite></testsuites>"
)

COVERPROFILE = """mode: set
example.local/gt/a.go:3.24,3.40 1 1
example.local/gt/a.go:5.24,6.11 1 0
example.local/gt/a.go:6.11,8.3 1 0
example.local/gt/a.go:9.2,9.10 1 0
"""


def test_go_pass_counts_per_package_with_coverage() -> None:
    report = parse_go_test(GO_PASS, "kyb")
    assert [(p.package, p.passed, p.failed, p.coverage) for p in report.packages] == [
        (PKG, 2, 0, 90.2),
        (f"{PKG}/sub", 0, 0, 0.0),
    ]
    assert report.failures == [] and report.build_errors == []
    report.check()  # passes


def test_go_failing_subtest_is_named_with_its_output_and_parent_not_double_counted() -> None:
    report = parse_go_test(GO_FAIL_SUBTEST_SKIP, "gt")
    (pkg,) = report.packages
    assert (pkg.passed, pkg.failed, pkg.skipped, pkg.coverage) == (1, 1, 1, 25.0)
    (failure,) = report.failures
    assert (failure.package, failure.name) == ("example.local/gt", "TestAdd/big")
    assert failure.output == ["    a_test.go:7: Add(2, 2) = 4, want 5"]  # runner noise dropped
    with pytest.raises(TestsFailed, match=r"TestAdd/big: .*Add\(2, 2\) = 4, want 5"):
        report.check()


def test_go_planted_failure_message_names_test_and_first_lines() -> None:
    report = parse_go_test(GO_PLANTED_FAILURE, "kyb")
    assert report.total("passed") == 1 and report.total("failed") == 1
    with pytest.raises(TestsFailed) as err:
        report.check()
    assert f"{PKG} TestPlantedFailure" in str(err.value)
    assert "planted failure: want 1, got 2" in str(err.value)


def test_go_build_failure_is_a_compile_error_with_the_compiler_message() -> None:
    report = parse_go_test(GO_BUILD_FAIL, "kyb")
    assert report.failures == []
    with pytest.raises(CompileFailed, match="undefined: undefinedThing"):
        report.check()


def test_go_package_failing_without_a_failing_test_is_reported() -> None:
    report = parse_go_test(GO_PACKAGE_ONLY_FAIL, "m")
    (failure,) = report.failures
    assert failure.name == "(package)" and failure.output[0] == "panic: TestMain exploded"


def test_go_non_json_lines_are_ignored() -> None:
    text = "go: downloading example.com/x v1.0.0\n" + GO_PASS
    assert parse_go_test(text, "kyb").total("passed") == 2


def test_junit_counts_failures_and_skips() -> None:
    report = parse_junit(JUNIT, "py")
    (mod,) = report.packages
    assert (mod.package, mod.passed, mod.failed, mod.skipped) == ("test_sample", 1, 1, 1)
    (failure,) = report.failures
    assert failure.name == "test_bad"
    assert failure.output[0].startswith("AssertionError: two is not three")
    with pytest.raises(TestsFailed, match="test_sample test_bad"):
        report.check()


def test_junit_collection_error_is_a_compile_error() -> None:
    report = parse_junit(JUNIT_COLLECTION_ERROR, "py")
    with pytest.raises(CompileFailed, match="No module named 'nonexistent_module_xyz'"):
        report.check()


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (COVERPROFILE, 25.0),
        ("mode: set\n", None),
        # the same block listed twice (two packages' runs) counts once, covered if either hit it
        ("mode: atomic\na.go:1.1,2.2 3 0\na.go:1.1,2.2 3 2\nb.go:1.1,2.2 1 0\n", 75.0),
    ],
)
def test_coverprofile_total(profile: str, expected: float | None) -> None:
    assert parse_coverprofile(profile) == expected

"""Health and smoke judgement, smoke request validation, pod readiness (table tests, no I/O)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from core.delivery.checks import (
    SmokeRequest,
    count_ready,
    judge_health,
    judge_smoke,
    one_line,
    pod_ready,
)


def _health(status: str = "healthy", **checks: tuple[str, str]) -> str:
    body = {
        "status": status,
        "timestamp": "2025-01-01T00:00:00Z",
        "version": "v1",
        "checks": {k: {"status": s, "message": m} for k, (s, m) in checks.items()},
    }
    return json.dumps(body)


OK = ("healthy", "")
DB_DOWN = ("unhealthy", "database unreachable (fault injected)")


@pytest.mark.parametrize(
    ("code", "body", "ok", "said", "failing"),
    [
        (200, _health(database=OK, external_services=OK), True, "healthy (2 components)", []),
        (200, json.dumps({"status": "healthy"}), True, "healthy (0 components)", []),
        (
            503,
            _health("unhealthy", database=DB_DOWN, external_services=OK),
            False,
            "unhealthy database (database unreachable (fault injected))",
            ["database"],
        ),
        (
            503,
            _health("unhealthy", database=DB_DOWN, external_services=("unhealthy", "")),
            False,
            "database (database unreachable (fault injected)), external_services (status "
            "'unhealthy')",
            ["database", "external_services"],
        ),
        (
            200,
            _health("healthy", cache=("degraded", "slow")),
            False,
            "unhealthy cache (slow)",
            ["cache"],
        ),
        (
            200,
            json.dumps({"status": "healthy", "checks": {"db": "up"}}),
            False,
            "db (status None)",
            ["db"],
        ),
        (503, _health("unhealthy", database=OK), False, "no component names a fault", []),
        (503, _health(database=OK), False, "HTTP 503 although the body says healthy", []),
        (200, "<html>oops</html>", False, "not JSON: '<html>oops</html>'", []),
        (502, "", False, "HTTP 502, the answer is empty, not JSON", []),
        (200, "[1, 2]", False, "JSON but not an object", []),
        (200, json.dumps({"checks": {}}), False, "no 'status' field", []),
        (200, json.dumps({"status": "healthy", "checks": []}), False, "'checks' is not an", []),
    ],
)
def test_judge_health(code: int, body: str, ok: bool, said: str, failing: list[str]) -> None:
    got_ok, reason, got_failing = judge_health(code, body)
    assert (got_ok, got_failing) == (ok, failing)
    assert said in reason and "\n" not in reason


VERIFY = SmokeRequest(
    name="verify",
    path="/api/v1/verify?business_id=acme",
    expect_json={"status": "verified", "business_id": "acme"},
)
ANSWER = json.dumps({"business_id": "acme", "status": "verified", "version": "v2"})


@pytest.mark.parametrize(
    ("request_", "code", "body", "ok", "said"),
    [
        (VERIFY, 200, ANSWER, True, "GET /api/v1/verify?business_id=acme answered 200"),
        (VERIFY, 500, '{"error": "boom"}', False, "answered 500, expected 200"),
        (VERIFY, 404, "404 page not found", False, "answered 404, expected 200"),
        (VERIFY, 200, "not json", False, "the answer is not JSON"),
        (VERIFY, 200, "[]", False, "JSON but not an object"),
        (
            VERIFY,
            200,
            json.dumps({"business_id": "acme", "status": "pending"}),
            False,
            "'status' is 'pending', expected 'verified'",
        ),
        (VERIFY, 200, json.dumps({"status": "verified"}), False, "no 'business_id'"),
        (SmokeRequest(name="t", path="/", expect_text="verified"), 200, ANSWER, True, "200"),
        (
            SmokeRequest(name="t", path="/", expect_text="nope"),
            200,
            ANSWER,
            False,
            "does not contain 'nope'",
        ),
        (SmokeRequest(name="gone", path="/old", expect_status=404), 404, "", True, "404"),
        (
            SmokeRequest(name="p", method="post", path="/x", expect_status=201),
            200,
            "",
            False,
            "POST /x answered 200, expected 201",
        ),
    ],
)
def test_judge_smoke(request_: SmokeRequest, code: int, body: str, ok: bool, said: str) -> None:
    got_ok, reason = judge_smoke(request_, code, body)
    assert got_ok is ok
    assert said in reason and "\n" not in reason


@pytest.mark.parametrize(
    ("fields", "fix"),
    [
        ({"name": "x", "path": "api/v1"}, "must start with a single '/'"),
        ({"name": "x", "path": "//evil.example/x"}, "must start with a single '/'"),
        ({"name": "x", "path": "/a b"}, "percent-encode it"),
        ({"name": "", "path": "/"}, "at least 1 character"),
        ({"name": "x", "path": "/", "method": "FETCH"}, "'GET', 'HEAD', 'POST'"),
        ({"name": "x", "path": "/", "expect_status": 999}, "less than or equal to 599"),
        ({"name": "x", "path": "/", "timeout_seconds": 0}, "greater than 0"),
        ({"name": "x", "path": "/", "headers": {"Bad Name": "v"}}, "use names like Authorization"),
        ({"name": "x", "path": "/", "expect": 200}, "Extra inputs are not permitted"),
    ],
)
def test_smoke_request_validation_says_what_to_fix(fields: dict, fix: str) -> None:
    with pytest.raises(ValidationError, match=fix):
        SmokeRequest(**fields)


def test_smoke_request_defaults_frozen_and_secret_headers() -> None:
    req = SmokeRequest(name="v", path="/api", method="get", headers={"Authorization": "Bearer s3"})
    assert (req.method, req.expect_status, req.timeout_seconds) == ("GET", 200, 5.0)
    assert req.request == "GET /api"
    assert req.headers["Authorization"].get_secret_value() == "Bearer s3"
    assert "s3" not in repr(req) and "s3" not in req.model_dump_json()
    with pytest.raises(ValidationError, match="frozen"):
        req.path = "/other"  # type: ignore[misc]


def _pod(ready: str | None, terminating: bool = False) -> dict:
    meta = {"name": "p", **({"deletionTimestamp": "2025-01-01T00:00:00Z"} if terminating else {})}
    conditions = [{"type": "PodScheduled", "status": "True"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"metadata": meta, "status": {"conditions": conditions}}


def test_pod_readiness_and_counts() -> None:
    assert pod_ready(_pod("True")) and not pod_ready(_pod("False")) and not pod_ready(_pod(None))
    assert not pod_ready(_pod("True", terminating=True))
    assert not pod_ready({"metadata": {}, "status": {}})
    pods = [_pod("True"), _pod("True"), _pod("False"), _pod("True", terminating=True)]
    assert count_ready(pods) == (2, 3)
    assert count_ready([]) == (0, 0)


def test_one_line() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("x" * 200, 10) == "xxxxxxx..."

"""Health and smoke checks, pure: what to request, and whether an answer passes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

HEALTHY = "healthy"
Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_SHOWN = 80  # characters of a value or body quoted in a reason


def one_line(text: str, limit: int = _SHOWN) -> str:
    """Text squeezed onto one line and cut to `limit` characters (for reasons and tables)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class SmokeRequest(BaseModel):
    """One smoke request against the new version, and what its answer must look like.

    Header values may hold tokens: they are secrets, shown as `**********` everywhere.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    method: Method = "GET"
    path: str
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_json: dict[str, Any] | None = None
    expect_text: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=5.0, gt=0, le=300)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith("//"):
            raise ValueError(f"path {value!r} must start with a single '/', e.g. /api/v1/verify")
        if any(ch.isspace() for ch in value):
            raise ValueError(f"path {value!r} contains whitespace: percent-encode it (%20)")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        bad = [k for k in value if not k or any(ch.isspace() or ch == ":" for ch in k)]
        if bad:
            raise ValueError(f"header names {bad!r} are invalid: use names like Authorization")
        return value

    @property
    def request(self) -> str:
        """The request line as shown in reasons and tables, e.g. `GET /health`."""
        return f"{self.method} {self.path}"


class CheckResult(BaseModel):
    """The outcome of one check: ok or not, why in one line, and what it took to find out."""

    model_config = ConfigDict(frozen=True)

    name: str
    ok: bool
    reason: str
    attempts: int = Field(ge=0)
    seconds: float = Field(ge=0)
    status_code: int | None = None
    request: str = ""


def _parse(body_text: str) -> tuple[Any, str]:
    """The JSON body, or (None, why it is not JSON)."""
    try:
        return json.loads(body_text), ""
    except ValueError:
        if not body_text.strip():
            return None, "the answer is empty, not JSON"
        return None, f"the answer is not JSON: {one_line(body_text)!r}"


def judge_health(status_code: int, body_text: str) -> tuple[bool, str, list[str]]:
    """Judge a /health answer against the contract.

    The /health contract (seed, "HealthStatus"): a JSON object
    `{"status": "healthy"|"unhealthy", "timestamp", "version", "checks": {name: {"status",
    "message"}}}` answered with 200 when healthy and 503 when not. Smoke requests are data: a path,
    the status to expect, and optionally JSON fields or a text the answer must contain.

    Healthy only when the answer is 200, its JSON parses, `status` is "healthy" and every
    `checks[*].status` is "healthy" (a service without dependencies may leave `checks` empty).

    Args:
        status_code: the HTTP status of the answer.
        body_text: the answer's body.

    Returns:
        (healthy, the reason in one line, the names of the failing components).
    """
    body, why = _parse(body_text)
    if why:
        return False, f"HTTP {status_code}, {why}", []
    if not isinstance(body, dict):
        return False, f"HTTP {status_code}, the answer is JSON but not an object", []
    if "status" not in body:
        return False, f"HTTP {status_code}, the answer has no 'status' field", []
    checks = {} if body.get("checks") is None else body["checks"]
    if not isinstance(checks, dict):
        return False, f"HTTP {status_code}, 'checks' is not an object of components", []
    failing, details = [], []
    for name, check in sorted(checks.items()):
        state = check.get("status") if isinstance(check, dict) else None
        if state != HEALTHY:
            message = check.get("message") if isinstance(check, dict) else None
            failing.append(name)
            details.append(f"{name} ({one_line(message or f'status {state!r}')})")
    status = body["status"]
    if failing:
        reason = f"HTTP {status_code}, status {status!r}: unhealthy " + ", ".join(details)
        return False, reason, failing
    if status != HEALTHY:
        return False, f"HTTP {status_code}, status {status!r} (no component names a fault)", []
    if status_code != 200:
        return False, f"HTTP {status_code} although the body says healthy (expected 200)", []
    return True, f"HTTP 200, healthy ({len(checks)} components)", []


def judge_smoke(request: SmokeRequest, status_code: int, body_text: str) -> tuple[bool, str]:
    """Judge a smoke request's answer: status, then the expected JSON fields, then the text.

    Args:
        request: the smoke request and its expectations.
        status_code: the HTTP status of the answer.
        body_text: the answer's body.

    Returns:
        (ok, the reason in one line).
    """
    said = f"{request.request} answered {status_code}"
    if status_code != request.expect_status:
        return False, f"{said}, expected {request.expect_status}"
    if request.expect_json:
        body, why = _parse(body_text)
        if why:
            return False, f"{said}, {why}"
        if not isinstance(body, dict):
            return False, f"{said}, the answer is JSON but not an object"
        wrong = []
        for key, want in request.expect_json.items():
            if key not in body:
                wrong.append(f"no {key!r}")
            elif body[key] != want:
                wrong.append(f"{key!r} is {one_line(repr(body[key]))}, expected {want!r}")
        if wrong:
            return False, f"{said}, " + "; ".join(wrong)
    if request.expect_text is not None and request.expect_text not in body_text:
        return False, f"{said}, the answer does not contain {one_line(request.expect_text)!r}"
    return True, said


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """True when a pod (API JSON) has condition Ready=True and is not terminating."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def count_ready(pods: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(Ready pods, pods) among `pods`, terminating pods left out of both."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    return sum(pod_ready(p) for p in live), len(live)

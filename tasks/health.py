"""Health and smoke checks over HTTP (httpx) of a released Service.

A check goes to a base URL (http or https, any host the egress allowlist `KYB_EGRESS_ALLOW` lets
through; every host when it is unset) or to a ServiceEndpoint (the apiserver's service proxy with
the cluster block's credentials, or the Service's in-cluster DNS name).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from blocks.endpoint import ServiceEndpoint
from core.ci.output import artifact_key
from core.delivery.checks import CheckResult, SmokeRequest, judge_health, judge_smoke
from core.delivery.errors import ChecksFailed
from core.delivery.reach import EGRESS_SETTING, CheckAccess, EgressAllowlist, apiserver_refusal
from core.errors import ConfigError

Judge = Callable[[httpx.Response], tuple[bool, str]]
HEALTH_TIMEOUT = 5.0  # seconds one /health request may take
FIRST_DELAY = 0.25  # seconds before the first retry; doubles per attempt ...
MAX_DELAY = 4.0  # ... up to this
JITTER = 0.5  # each delay is stretched by a random 0-50 %


def egress() -> EgressAllowlist:
    """The egress allowlist from the `KYB_EGRESS_ALLOW` setting (unset: checks may go anywhere)."""
    return EgressAllowlist.parse(os.environ.get(EGRESS_SETTING))


def endpoint_of(target: str | ServiceEndpoint) -> ServiceEndpoint:
    """The endpoint checks call: a URL as given, or an endpoint (service proxy, cluster DNS).

    Refused before any request when the URL is malformed or carries credentials, or when the
    egress allowlist (if one is set) does not list the host it would dial.

    Raises:
        ConfigError: what is wrong and what to fix (never quoting a password).
    """
    found = target if isinstance(target, ServiceEndpoint) else ServiceEndpoint.from_url(target)
    egress().require(found.host, f"checks of {found.url}")
    return found


def _client(endpoint: ServiceEndpoint) -> httpx.Client:
    # Environment proxies only when egress is open: a proxy would carry a guarded check past the
    # allowlist, which judges the host in the URL.
    return endpoint.client(trust_env=egress().open)


def _delay(attempt: int) -> float:
    """Exponential backoff with jitter before retry number `attempt`."""
    return min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1)) * (1 + JITTER * random.random())


def _attempt_until_final(
    name: str,
    request: str,
    send: Callable[[float], httpx.Response],
    judge: Judge,
    timeout: float,
    budget: float,
) -> CheckResult:
    """Send until the answer passes, fails for good, or the budget would be exceeded.

    The retry loop lives here rather than in Prefect's task retries because each check must report
    how many attempts it made and how long it took, stop at a time budget rather than after a
    count, and keep the last reason (e.g. which component was unhealthy) in a result that is
    returned, not raised, so every check appears in the artifact.
    Retried: connection errors and timeouts (httpx.TransportError) and 5xx answers. Any other
    failing answer (4xx, wrong body, unhealthy with 200) is final at once. `status_code` is that
    of the last answer (None if there was none).
    """
    log = get_run_logger()
    start = time.monotonic()
    deadline = start + budget
    attempt, code, answered = 0, None, ""
    while True:
        attempt += 1
        try:
            answer = send(max(0.1, min(timeout, deadline - time.monotonic())))
        except httpx.TransportError as exc:
            failed = "could not connect" if isinstance(exc, httpx.ConnectError) else "got no answer"
            reason = f"{request} {failed}: {type(exc).__name__}"
            if answered:  # keep what the service said last, e.g. which component is unhealthy
                reason += f"; it last answered: {answered}"
            ok, again = False, True
        else:
            code = answer.status_code
            ok, reason = judge(answer)
            answered, again = reason, code >= 500
        pause = _delay(attempt)
        if ok or not again or time.monotonic() + pause >= deadline:
            break
        log.info("%s: attempt %d failed (%s); retrying in %.2fs", name, attempt, reason, pause)
        time.sleep(pause)  # bounded by the budget, checked above
    seconds = round(time.monotonic() - start, 3)
    (log.info if ok else log.warning)(
        "%s: %s after %d attempts in %.2fs", name, reason, attempt, seconds
    )
    return CheckResult(
        name=name,
        ok=ok,
        reason=reason,
        attempts=attempt,
        seconds=seconds,
        status_code=code,
        request=request,
    )


def _require_budget(budget_seconds: float) -> None:
    if not budget_seconds > 0:
        raise ConfigError(f"budget_seconds must be above 0, not {budget_seconds}")


def _smoke_ready(endpoint: ServiceEndpoint, requests: Sequence[SmokeRequest]) -> None:
    for req in requests:
        if blocked := endpoint.conflicts(list(req.headers)):
            raise ConfigError(
                f"smoke request {req.name!r} sets {', '.join(blocked)}, which cannot reach the "
                f"Service through the apiserver's proxy (the apiserver takes it for itself): "
                "use check_access url or cluster-dns for it"
            )


@task(name="health-check", cache_policy=NO_CACHE)
def check_health(
    base_url: str | ServiceEndpoint, budget_seconds: float = 30.0, path: str = "/health"
) -> CheckResult:
    """Check the /health contract: status and every component must be healthy.

    A 503 from an unhealthy service is retried until the budget runs out; the result then names
    the unhealthy components and their messages. Through the service proxy, the apiserver's own
    503 ("no endpoints available") is retried the same way, and then reported.

    Args:
        base_url: the service's base URL, e.g. https://kyb.example.com, or a ServiceEndpoint.
        budget_seconds: the time the check may spend, retries included.
        path: the health endpoint.

    Returns:
        The result; ok is False when the service is not healthy (nothing is raised for that).

    Raises:
        ConfigError: the URL is malformed or not allowed by the egress allowlist, or the budget
            is not positive (before any request).
    """
    endpoint = endpoint_of(base_url)
    _require_budget(budget_seconds)
    url = endpoint.url + path

    def judge(answer: httpx.Response) -> tuple[bool, str]:
        ok, reason, _failing = judge_health(answer.status_code, answer.text)
        return ok, reason

    with _client(endpoint) as http:

        def send(timeout: float) -> httpx.Response:
            return http.get(url, timeout=timeout)

        return _attempt_until_final(
            "health", f"GET {path}", send, _through(endpoint, judge), HEALTH_TIMEOUT, budget_seconds
        )


@task(name="smoke-test", cache_policy=NO_CACHE)
def smoke_test(
    base_url: str | ServiceEndpoint, requests: Sequence[SmokeRequest], budget_seconds: float = 30.0
) -> list[CheckResult]:
    """Send each smoke request in turn and judge its answer; each has its own time budget.

    Args:
        base_url: the service's base URL, or a ServiceEndpoint.
        requests: the smoke requests (header values are secrets and are never shown).
        budget_seconds: the time each request may spend, retries included.

    Returns:
        One result per request, in order.

    Raises:
        ConfigError: the URL is malformed or not allowed, a request's header cannot pass the
            service proxy, or the budget is not positive (before any request).
    """
    endpoint = endpoint_of(base_url)
    _smoke_ready(endpoint, requests)
    _require_budget(budget_seconds)
    with _client(endpoint) as http:
        return [_smoke_one(http, endpoint, r, budget_seconds) for r in requests]


def _smoke_one(
    http: httpx.Client, endpoint: ServiceEndpoint, req: SmokeRequest, budget: float
) -> CheckResult:
    headers = {k: v.get_secret_value() for k, v in req.headers.items()}
    url = endpoint.url + req.path

    def send(timeout: float) -> httpx.Response:
        return http.request(req.method, url, headers=headers, timeout=timeout)

    def judge(answer: httpx.Response) -> tuple[bool, str]:
        return judge_smoke(req, answer.status_code, answer.text)

    judged = _through(endpoint, judge)
    return _attempt_until_final(req.name, req.request, send, judged, req.timeout_seconds, budget)


def _through(endpoint: ServiceEndpoint, judge: Judge) -> Judge:
    """Through the service proxy, an answer of the apiserver itself fails with its message."""
    if endpoint.access is not CheckAccess.SERVICE_PROXY:
        return judge

    def judged(answer: httpx.Response) -> tuple[bool, str]:
        refusal = apiserver_refusal(answer.status_code, answer.text)
        return (False, refusal) if refusal else judge(answer)

    return judged


def verify(
    base_url: str | ServiceEndpoint,
    smoke: Sequence[SmokeRequest],
    budget_seconds: float = 30.0,
    name: str = "",
) -> list[CheckResult]:
    """Check /health, then the smoke requests; publish a table artifact; raise if any failed.

    The smoke requests are not sent when the health check fails (they are listed as not run).
    Each check has its own budget, so the whole takes at most (1 + len(smoke)) * budget_seconds.

    Args:
        base_url: the new version's base URL, or a ServiceEndpoint.
        smoke: the smoke requests.
        budget_seconds: the time each check may spend, retries included.
        name: names the artifact `checks-<name>`; the URL's host and port by default.

    Returns:
        Every result (all passed).

    Raises:
        ConfigError: the URL is malformed or not allowed, or a smoke header cannot pass the
            service proxy (before any request).
        ChecksFailed: a check failed; raised after the artifact is published.
    """
    endpoint = endpoint_of(base_url)
    _smoke_ready(endpoint, smoke)
    results = [check_health(endpoint, budget_seconds)]
    if results[0].ok:
        results += smoke_test(endpoint, smoke, budget_seconds)
    else:
        results += [_not_run(r) for r in smoke]
    where = httpx.URL(endpoint.url)
    key = artifact_key("checks", name or f"{where.host}-{where.port or 80}")
    _publish(key, endpoint.url, results)
    failed = [r for r in results if not r.ok and r.attempts]
    if failed:
        told = "; ".join(
            f"{r.name}: {r.reason} ({r.attempts} attempts in {r.seconds:.1f}s)" for r in failed
        )
        skipped = len(results) - len(failed) - sum(r.ok for r in results)
        more = f"; smoke requests not run: {skipped}" if skipped else ""
        raise ChecksFailed(
            f"{len(failed)} of {len(results)} checks failed: {told}{more}",
            results,
            url=endpoint.url,
            artifact=key,
        )
    return results


def _not_run(req: SmokeRequest) -> CheckResult:
    reason = "not run: the health check failed"
    return CheckResult(
        name=req.name, ok=False, reason=reason, attempts=0, seconds=0, request=req.request
    )


def _publish(key: str, base_url: str, results: Sequence[CheckResult]) -> None:
    """The checks as a table artifact; header values never reach it (requests are method+path)."""
    rows: list[dict[str, Any]] = [
        {
            "name": r.name,
            "request": r.request,
            "status": r.status_code if r.status_code is not None else "-",
            "ok": "yes" if r.ok else "no",
            "attempts": r.attempts,
            "seconds": f"{r.seconds:.2f}",
            "why": r.reason,
        }
        for r in results
    ]
    passed = sum(r.ok for r in results)
    about = f"Health and smoke checks of {base_url}: {passed} of {len(results)} passed."
    create_table_artifact(rows, key=key, description=about)

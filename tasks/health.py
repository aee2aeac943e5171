"""Health and smoke checks over HTTP (httpx), and readiness of the new version's pods."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from core.ci.output import artifact_key
from core.delivery.checks import (
    CheckResult,
    SmokeRequest,
    count_ready,
    is_loopback,
    judge_health,
    judge_smoke,
)
from core.delivery.errors import ChecksFailed, EndpointsNotReady
from core.errors import ConfigError
from tasks import RETRIES
from tasks.kube import api_for, to_dict

HEALTH_TIMEOUT = 5.0  # seconds one /health request may take
FIRST_DELAY = 0.25  # seconds before the first retry; doubles per attempt ...
MAX_DELAY = 4.0  # ... up to this
JITTER = 0.5  # each delay is stretched by a random 0-50 %


def loopback_url(base_url: str, path: str = "") -> str:
    """`base_url` + `path`, refused with ConfigError unless it can only reach a loopback address.

    The network rule: checks never dial anything but http://127.x or http://localhost. The URL is
    parsed as httpx will parse it, so what is checked is what would be dialled.
    """
    url = base_url.rstrip("/") + path
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ConfigError("the check URL is not a URL: give http://127.0.0.1:<port>") from None
    fix = "checks may only call http://127.x or http://localhost"
    if parsed.userinfo:
        raise ConfigError(f"the check URL carries credentials: {fix}, without user:password@")
    if parsed.scheme != "http" or not is_loopback(parsed.host):
        raise ConfigError(f"{fix}, not {parsed.scheme}://{parsed.host}", url=url)
    return url


def _client() -> httpx.Client:
    # trust_env=False: a proxy from the environment must never carry a check off loopback.
    return httpx.Client(trust_env=False, follow_redirects=False)


def _delay(attempt: int) -> float:
    """Exponential backoff with jitter before retry number `attempt`."""
    return min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1)) * (1 + JITTER * random.random())


def _attempt_until_final(
    name: str,
    request: str,
    send: Callable[[float], httpx.Response],
    judge: Callable[[httpx.Response], tuple[bool, str]],
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


@task(name="health-check", cache_policy=NO_CACHE)
def check_health(base_url: str, budget_seconds: float = 30.0, path: str = "/health") -> CheckResult:
    """Check the /health contract: status and every component must be healthy.

    A 503 from an unhealthy service is retried until the budget runs out; the result then names
    the unhealthy components and their messages.

    Args:
        base_url: the service's loopback base URL, e.g. http://127.0.0.1:8080.
        budget_seconds: the time the check may spend, retries included.
        path: the health endpoint.

    Returns:
        The result; ok is False when the service is not healthy (nothing is raised for that).

    Raises:
        ConfigError: the URL is not loopback, or the budget is not positive (before any request).
    """
    url = loopback_url(base_url, path)
    _require_budget(budget_seconds)

    def judge(answer: httpx.Response) -> tuple[bool, str]:
        ok, reason, _failing = judge_health(answer.status_code, answer.text)
        return ok, reason

    with _client() as http:

        def send(timeout: float) -> httpx.Response:
            return http.get(url, timeout=timeout)

        return _attempt_until_final(
            "health", f"GET {path}", send, judge, HEALTH_TIMEOUT, budget_seconds
        )


@task(name="smoke-test", cache_policy=NO_CACHE)
def smoke_test(
    base_url: str, requests: Sequence[SmokeRequest], budget_seconds: float = 30.0
) -> list[CheckResult]:
    """Send each smoke request in turn and judge its answer; each has its own time budget.

    Args:
        base_url: the service's loopback base URL.
        requests: the smoke requests (header values are secrets and are never shown).
        budget_seconds: the time each request may spend, retries included.

    Returns:
        One result per request, in order.

    Raises:
        ConfigError: a URL is not loopback, or the budget is not positive (before any request).
    """
    urls = [loopback_url(base_url, r.path) for r in requests]
    _require_budget(budget_seconds)
    with _client() as http:
        pairs = zip(requests, urls, strict=True)
        return [_smoke_one(http, req, url, budget_seconds) for req, url in pairs]


def _smoke_one(http: httpx.Client, req: SmokeRequest, url: str, budget: float) -> CheckResult:
    headers = {k: v.get_secret_value() for k, v in req.headers.items()}

    def send(timeout: float) -> httpx.Response:
        return http.request(req.method, url, headers=headers, timeout=timeout)

    def judge(answer: httpx.Response) -> tuple[bool, str]:
        return judge_smoke(req, answer.status_code, answer.text)

    return _attempt_until_final(req.name, req.request, send, judge, req.timeout_seconds, budget)


def verify(
    base_url: str, smoke: Sequence[SmokeRequest], budget_seconds: float = 30.0, name: str = ""
) -> list[CheckResult]:
    """Check /health, then the smoke requests; publish a table artifact; raise if any failed.

    The smoke requests are not sent when the health check fails (they are listed as not run).
    Each check has its own budget, so the whole takes at most (1 + len(smoke)) * budget_seconds.

    Args:
        base_url: the new version's loopback base URL.
        smoke: the smoke requests.
        budget_seconds: the time each check may spend, retries included.
        name: names the artifact `checks-<name>`; the URL's host and port by default.

    Returns:
        Every result (all passed).

    Raises:
        ConfigError: a URL is not loopback (before any request).
        ChecksFailed: a check failed; raised after the artifact is published.
    """
    for path in ["/health", *(r.path for r in smoke)]:
        loopback_url(base_url, path)
    results = [check_health(base_url, budget_seconds)]
    if results[0].ok:
        results += smoke_test(base_url, smoke, budget_seconds)
    else:
        results += [_not_run(r) for r in smoke]
    where = httpx.URL(base_url)
    key = artifact_key("checks", name or f"{where.host}-{where.port or 80}")
    _publish(key, base_url, results)
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
            url=base_url,
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


def _label_selector(selector: dict[str, str]) -> str:
    if not selector:
        raise ConfigError("give a non-empty label selector: an empty one matches every pod")
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


@task(name="endpoints-ready", cache_policy=NO_CACHE, **RETRIES)
def endpoints_ready(
    cluster: KubernetesCluster, namespace: str, selector: dict[str, str]
) -> tuple[int, int]:
    """(Ready pods, pods) matching the selector, terminating pods left out.

    Readiness of the new version's endpoints is read from its pods' Ready condition, which is
    what puts a pod into a Service's EndpointSlices. (In the local sandbox EndpointSlices never
    get endpoints: the apiserver rejects the pods' loopback IPs.)
    """
    api = api_for(cluster)
    pods = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=_label_selector(selector)
    )
    return count_ready(to_dict(api, p) for p in pods.items)


@task(name="wait-endpoints-ready", cache_policy=NO_CACHE, **RETRIES)
def wait_endpoints_ready(
    cluster: KubernetesCluster,
    namespace: str,
    selector: dict[str, str],
    want: int,
    timeout_seconds: float = 300.0,
) -> tuple[int, int]:
    """Watch pods matching the selector until `want` of them are Ready (and not terminating).

    Readiness is read from the pods' Ready condition, as in endpoints_ready (the sandbox's
    EndpointSlices stay empty). A dropped watch or an apiserver restart is retried.

    Args:
        cluster: the cluster block.
        namespace: the pods' namespace.
        selector: the new version's pod labels, e.g. {"app": "web", "track": "canary"}.
        want: how many Ready pods are enough.
        timeout_seconds: seconds to wait in all.

    Returns:
        (Ready pods, pods) when enough were Ready.

    Raises:
        EndpointsNotReady: fewer than `want` were Ready in time.
    """
    labels = _label_selector(selector)
    if want < 0 or not timeout_seconds > 0:
        raise ConfigError(f"want >= 0 and timeout_seconds > 0, not {want} and {timeout_seconds}")
    api = api_for(cluster)
    pods_api = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout_seconds
    ready = total = 0
    while (left := deadline - time.monotonic()) > 0:
        listed = pods_api.list_namespaced_pod(namespace, label_selector=labels)
        pods = {p.metadata.name: to_dict(api, p) for p in listed.items}
        ready, total = count_ready(pods.values())
        if ready >= want:
            return ready, total
        stream = watch.Watch().stream(
            pods_api.list_namespaced_pod,
            namespace,
            label_selector=labels,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=max(1, int(min(left, 60))),
        )
        try:
            for event in stream:
                pod = to_dict(api, event["object"])
                if event["type"] == "DELETED":
                    pods.pop(pod["metadata"]["name"], None)
                else:
                    pods[pod["metadata"]["name"]] = pod
                ready, total = count_ready(pods.values())
                if ready >= want:
                    return ready, total
                if time.monotonic() >= deadline:
                    break
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: our resourceVersion expired; list again and re-watch
                raise
    raise EndpointsNotReady(
        f"only {ready} of the {want} wanted pods are Ready after {timeout_seconds:.0f}s "
        f"({total} pods match): see the pods' events and readiness probes",
        namespace=namespace,
        selector=labels,
    )

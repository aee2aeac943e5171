"""Health and smoke checks against real instances, and pod readiness on the real cluster.

Health and smoke checks against real example-service instances, and pod readiness on the
real cluster: what is retried (connection errors, 5xx), for how long, and what fails at once.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prefect import flow
from prefect.artifacts import Artifact

from blocks import KubernetesCluster
from core.delivery.checks import SmokeRequest
from core.delivery.errors import ChecksFailed, EndpointsNotReady
from core.delivery.reach import EGRESS_SETTING
from core.errors import ConfigError
from sandbox import example
from sandbox.platform import BLOCK_NAME
from sandbox.settings import LOOPBACK_ONLY
from tasks import health, kube
from tasks.health import check_health, smoke_test, verify
from tasks.readiness import endpoints_ready, wait_endpoints_ready

BUDGET = 2.5
MARGIN = 0.5  # one request timeout floor plus scheduling noise
SECRET = "Bearer do-not-show-me"
VERIFY = SmokeRequest(
    name="verify",
    path="/api/v1/verify?business_id=acme",
    expect_json={"business_id": "acme", "status": "verified"},
    headers={"Authorization": SECRET},
)
METRICS = SmokeRequest(name="metrics", path="/metrics", expect_text="http_requests_total")


@pytest.fixture(scope="module", autouse=True)
def built(platform) -> None:
    """The example service's binary (built once); the platform brings up the Prefect server."""
    if not example.go_available():
        if os.environ.get("CI"):
            pytest.fail("go is required in CI to build the example service")
        pytest.skip("go is not installed: the example service cannot be built")
    example.binary()


@flow(name="verify-checks")
def verify_flow(url: str, smoke: list[SmokeRequest], budget: float, name: str) -> list:
    return verify(url, smoke, budget, name=name)


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_healthy_service_passes_at_once() -> None:
    with example.run(version="v2.0.0") as inst:
        result = check_health(inst.url, budget_seconds=BUDGET)
    assert result.ok and result.attempts == 1 and result.status_code == 200, result
    assert "healthy (2 components)" in result.reason


def test_unhealthy_component_is_retried_within_the_budget_then_named() -> None:
    with example.run(unhealthy="database") as inst:
        started = time.monotonic()
        result = check_health(inst.url, budget_seconds=BUDGET)
        took = time.monotonic() - started
    assert not result.ok and result.status_code == 503
    assert "unhealthy database (database unreachable (fault injected))" in result.reason
    assert "external_services" not in result.reason
    assert result.attempts > 1
    assert result.seconds <= BUDGET + MARGIN and took <= BUDGET + 5  # + Prefect's task overhead


def test_smoke_with_5xx_is_retried_then_fails_naming_the_status() -> None:
    with example.run(error_rate=1.0) as inst:
        [result] = smoke_test(inst.url, [VERIFY], budget_seconds=BUDGET)
    assert not result.ok and result.status_code == 500 and result.attempts > 1
    assert "GET /api/v1/verify?business_id=acme answered 500, expected 200" in result.reason
    assert result.seconds <= BUDGET + MARGIN


def test_4xx_fails_at_once() -> None:
    gone = SmokeRequest(name="gone", path="/api/v2/verify")
    with example.run() as inst:
        ok, missing = smoke_test(inst.url, [VERIFY, gone], budget_seconds=BUDGET)
        healthz = check_health(inst.url, budget_seconds=BUDGET, path="/healthz")
    assert ok.ok and ok.attempts == 1, ok
    assert not missing.ok and missing.attempts == 1 and "answered 404" in missing.reason
    assert not healthz.ok and healthz.attempts == 1 and healthz.status_code == 404


def test_nothing_listening_is_retried_then_fails_within_the_budget() -> None:
    url = f"http://127.0.0.1:{example.free_port()}"
    result = check_health(url, budget_seconds=BUDGET)
    assert not result.ok and result.status_code is None
    assert "GET /health could not connect: ConnectError" in result.reason
    assert result.attempts > 1 and result.seconds <= BUDGET + MARGIN


def test_slow_answer_times_out_and_is_retried_within_the_budget() -> None:
    slow = VERIFY.model_copy(update={"timeout_seconds": 0.3})
    with example.run(latency_ms=1000) as inst:
        [result] = smoke_test(inst.url, [slow], budget_seconds=BUDGET)
    assert not result.ok and result.attempts > 1 and result.status_code is None
    assert result.reason.endswith("got no answer: ReadTimeout")
    assert result.seconds <= BUDGET + MARGIN


@pytest.fixture
def late_instance() -> Iterator[str]:
    """An instance that starts listening about 2 s from now, on a port known in advance."""
    port, stop = example.free_port(), threading.Event()

    def serve() -> None:
        time.sleep(2)
        with example.run(port=port):
            stop.wait(60)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    stop.set()
    thread.join(15)


def test_instance_starting_late_passes_after_retries(late_instance: str) -> None:
    result = check_health(late_instance, budget_seconds=15)
    assert result.ok and result.attempts > 1, result
    assert 1.5 < result.seconds < 15


def _recording(sent: list[httpx.Request], answer: httpx.Response | None = None):
    """A client factory whose transport records requests (and answers `answer`, if given)."""

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answer or httpx.Response(599)

    return lambda _endpoint: httpx.Client(transport=httpx.MockTransport(handle))


@pytest.mark.parametrize(
    "url", ["http://example.com", "https://10.0.0.1:8080", "http://127.0.0.1.nip.io"]
)
def test_a_host_egress_does_not_allow_is_refused_before_any_request(url: str, monkeypatch) -> None:
    """The platform's guard (KYB_EGRESS_ALLOW, loopback here): configuration, not product code.

    A recording transport stands in only to prove nothing is sent.
    """
    monkeypatch.setenv(EGRESS_SETTING, LOOPBACK_ONLY)
    sent: list[httpx.Request] = []
    monkeypatch.setattr(health, "_client", _recording(sent))
    for check in (
        lambda: check_health(url, budget_seconds=BUDGET),
        lambda: smoke_test(url, [VERIFY], budget_seconds=BUDGET),
        lambda: verify(url, [VERIFY], BUDGET),
    ):
        with pytest.raises(ConfigError, match=r"is not in KYB_EGRESS_ALLOW \(127\.0\.0\.0/8"):
            check()
    assert sent == []


@pytest.mark.parametrize(
    "url", ["http://user:pw@127.0.0.1:8080", "ftp://localhost/x", "127.0.0.1:8080", "http://h/?q"]
)
def test_malformed_urls_are_refused_without_repeating_them(url: str, monkeypatch) -> None:
    sent: list[httpx.Request] = []
    monkeypatch.setattr(health, "_client", _recording(sent))
    with pytest.raises(ConfigError) as refused:
        check_health(url, budget_seconds=BUDGET)
    assert "pw" not in str(refused.value) and sent == []


def test_with_egress_open_checks_call_the_url_as_configured(monkeypatch) -> None:
    """Outside the sandbox (KYB_EGRESS_ALLOW unset) any http(s) URL and host name is called.

    The transport stands in for https://kyb.example.com, which the network rule forbids dialling
    here; what is checked is the URL the check sends, and that its answer is judged.
    """
    monkeypatch.delenv(EGRESS_SETTING, raising=False)
    sent: list[httpx.Request] = []
    healthy = httpx.Response(200, json={"status": "healthy", "checks": {}})
    monkeypatch.setattr(health, "_client", _recording(sent, healthy))
    result = check_health("https://kyb.example.com/staging/", budget_seconds=BUDGET)
    assert result.ok, result
    assert [str(r.url) for r in sent] == ["https://kyb.example.com/staging/health"]


def test_a_host_name_reaches_a_real_instance() -> None:
    with example.run(version="v2.0.0") as inst:
        by_name = inst.url.replace("127.0.0.1", "localhost")
        result = check_health(by_name, budget_seconds=BUDGET)
    assert result.ok and result.attempts == 1, result


def test_verify_publishes_the_table_and_passes() -> None:
    name = _name()
    with example.run(version="v2.0.0") as inst:
        results = verify_flow(inst.url, [VERIFY, METRICS], BUDGET, name)
    assert [(r.name, r.ok, r.attempts) for r in results] == [
        ("health", True, 1),
        ("verify", True, 1),
        ("metrics", True, 1),
    ]
    table = Artifact.get(f"checks-{name}")
    assert table is not None and table.type == "table"
    data = str(table.data)
    for cell in ("GET /health", "GET /api/v1/verify?business_id=acme", "GET /metrics", "yes"):
        assert cell in data
    assert SECRET not in data and "do-not-show-me" not in data


def test_verify_raises_after_publishing_the_failures() -> None:
    name = _name()
    with example.run(error_rate=1.0) as inst, pytest.raises(ChecksFailed) as failed:
        verify_flow(inst.url, [VERIFY, METRICS], BUDGET, name)
    message = str(failed.value)
    assert message.startswith("1 of 3 checks failed: verify: GET /api/v1/verify")
    assert "answered 500" in message and "do-not-show-me" not in message
    assert [r.ok for r in failed.value.results] == [True, False, True]
    data = str(Artifact.get(f"checks-{name}").data)
    assert "answered 500, expected 200" in data and "no" in data
    assert "do-not-show-me" not in data


def test_verify_skips_smoke_requests_when_unhealthy() -> None:
    name = _name()
    with example.run(unhealthy="external_services") as inst, pytest.raises(ChecksFailed) as failed:
        verify_flow(inst.url, [VERIFY], 1.0, name)
    assert "health: HTTP 503" in str(failed.value) and "external_services" in str(failed.value)
    assert "smoke requests not run: 1" in str(failed.value)
    assert "not run: the health check failed" in str(Artifact.get(f"checks-{name}").data)


# --- readiness of the new version's pods ------------------------------------------------------


def _deployment(ns: str, name: str, replicas: int, never_ready: bool = False) -> dict:
    labels = {"app": name}
    pod_labels = {**labels, **({"sandbox.kyb.dev/not-ready": "true"} if never_ready else {})}
    image = "127.0.0.1:5001/kyb-platform@sha256:" + "a" * 64
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [{"name": "api", "image": image}]},
            },
        },
    }


@pytest.fixture
def cluster(platform) -> KubernetesCluster:
    return KubernetesCluster.load(BLOCK_NAME)


def test_pods_turn_ready_and_are_counted(cluster, namespace) -> None:
    kube.apply(cluster, _deployment(namespace, "web", 2))
    assert wait_endpoints_ready(cluster, namespace, {"app": "web"}, 2, timeout_seconds=60) == (2, 2)
    assert endpoints_ready(cluster, namespace, {"app": "web"}) == (2, 2)
    assert endpoints_ready(cluster, namespace, {"app": "other"}) == (0, 0)


def test_pods_that_never_turn_ready_time_out_clearly(cluster, namespace) -> None:
    kube.apply(cluster, _deployment(namespace, "slow", 2, never_ready=True))
    started = time.monotonic()
    with pytest.raises(EndpointsNotReady, match=r"only 0 of the 2 wanted pods are Ready after 3s"):
        wait_endpoints_ready(cluster, namespace, {"app": "slow"}, 2, timeout_seconds=3)
    assert time.monotonic() - started < 15
    assert endpoints_ready(cluster, namespace, {"app": "slow"})[0] == 0
    with pytest.raises(ConfigError, match="non-empty label selector"):
        endpoints_ready(cluster, namespace, {})

"""Checks reach a Service through the apiserver's service proxy, with the environment's credentials.

What this platform can show, on the real apiserver: the check's request goes to the apiserver over
TLS with the cluster block's own token; the apiserver authorizes `services/proxy` for that
ServiceAccount (a ServiceAccount not bound in the namespace gets 403, the message naming it), finds
the Service, and looks its endpoints up.

The last hop: pods here get loopback IPs, which upstream kube-apiserver refuses in Endpoints and
EndpointSlices ("may not be in the loopback range"); the platform's apiserver is built without
that one check (sandbox/cluster/apiserver_patch.py), so a Service's EndpointSlices list its Ready
pods and the proxy dials a pod's IP. The pods of these tests are kwok's (nothing listens on their
IPs), so the apiserver answers 503 for the refused connection; pods the pod runner runs answer for
real (tests/integration/test_pod_runner.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, watch

from blocks import Environment, KubernetesCluster
from blocks.endpoint import ServiceEndpoint
from core.delivery.checks import SmokeRequest
from core.errors import ConfigError
from core.release import layout
from core.release.observed import Track
from sandbox.platform import BLOCK_NAME
from tasks import kube
from tasks.health import check_health, smoke_test
from tasks.readiness import wait_endpoints_ready
from tests.integration import rbac
from tests.integration.release_helpers import V1, spec

BUDGET = 2.0
ROLLING = {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}


@pytest.fixture
def admin(platform) -> KubernetesCluster:
    return KubernetesCluster.load(BLOCK_NAME)


@pytest.fixture
def staging_sa(admin: KubernetesCluster, namespace: str) -> Iterator[KubernetesCluster]:
    """Staging's ServiceAccount, bound in `namespace` as in kyb-staging."""
    rbac.bind(admin, "staging", [namespace])
    yield rbac.cluster_as_service_account(admin, "staging", namespace)
    rbac.unbind(admin, namespace)


def _wait_endpoints_object(admin: KubernetesCluster, namespace: str, name: str) -> None:
    """Wait for the endpoints controller's (empty) Endpoints object of a new Service."""
    core = client.CoreV1Api(kube.api_for(admin))
    stream = watch.Watch().stream(
        core.list_namespaced_endpoints,
        namespace,
        field_selector=f"metadata.name={name}",
        timeout_seconds=30,
    )
    for _ in stream:  # the first event is the object; the watch ends after 30 s otherwise
        return
    raise AssertionError(f"no Endpoints object {namespace}/{name} after 30s")


@pytest.fixture
def web(admin: KubernetesCluster, namespace: str) -> str:
    """Service `web` (port 80) in front of two Ready pods of a Deployment (kwok's: nothing runs).

    The Service comes first, so its Endpoints object exists before the pods are Ready.
    """
    release = spec(namespace, V1, ROLLING, replicas=2)
    for service in layout.services(release):
        kube.apply.fn(admin, service)
    _wait_endpoints_object(admin, namespace, "web")
    kube.apply.fn(admin, layout.workload_manifest(release, Track.STABLE, V1, 2))
    assert wait_endpoints_ready.fn(admin, namespace, {"app": "web"}, 2, 60) == (2, 2)
    return "web"


def test_a_check_goes_through_the_apiserver_as_the_environment(
    admin, staging_sa, namespace, web
) -> None:
    endpoint = ServiceEndpoint.service_proxy(staging_sa, namespace, web, 80)
    assert endpoint.url.startswith("https://127.0.0.1:")  # the apiserver, over TLS with its CA
    result = check_health(endpoint, budget_seconds=BUDGET)
    assert not result.ok and result.status_code == 503
    assert result.attempts > 1  # a 503 is retried within the budget: endpoints may come
    # the Ready pods' loopback IPs are in the EndpointSlice, and the apiserver dialled one of them
    slices = client.DiscoveryV1Api(kube.api_for(admin)).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={web}"
    )
    ips = {a for s in slices.items for e in s.endpoints or [] for a in e.addresses}
    assert len(ips) == 2
    dialled = [
        ip for ip in ips if f"dial tcp {ip}:8080: connect: connection refused" in result.reason
    ]
    assert dialled and result.reason.startswith("the apiserver answered HTTP 503 itself: ")


def test_without_services_proxy_the_apiserver_refuses_naming_the_account(
    admin, namespace, web
) -> None:
    """The dev ServiceAccount is not bound in this namespace: 403, final at once."""
    dev = rbac.cluster_as_service_account(admin, "dev", namespace)
    result = check_health(ServiceEndpoint.service_proxy(dev, namespace, web, 80), BUDGET)
    assert not result.ok and result.status_code == 403 and result.attempts == 1
    assert result.reason.startswith("the apiserver answered HTTP 403 itself:")
    assert 'User "system:serviceaccount:kyb-system:kyb-pipeline-dev"' in result.reason
    assert 'cannot get resource "services/proxy"' in result.reason


def test_a_missing_service_is_the_apiserver_s_404(staging_sa, namespace) -> None:
    endpoint = ServiceEndpoint.service_proxy(staging_sa, namespace, "nothing", 80)
    [result] = smoke_test(endpoint, [SmokeRequest(name="ping", path="/ping")], BUDGET)
    assert not result.ok and result.status_code == 404 and result.attempts == 1
    assert result.reason == ('the apiserver answered HTTP 404 itself: services "nothing" not found')


def test_an_authorization_header_cannot_ride_through_the_proxy(staging_sa, namespace) -> None:
    bearer = SmokeRequest(name="api", path="/api", headers={"Authorization": "Bearer t0k3n"})
    endpoint = ServiceEndpoint.service_proxy(staging_sa, namespace, "web", 80)
    with pytest.raises(ConfigError, match="sets Authorization, which cannot reach the Service"):
        smoke_test(endpoint, [bearer], BUDGET)


def test_the_saved_staging_environment_checks_through_the_proxy(platform) -> None:
    staging = Environment.load("staging")
    endpoint = staging.endpoint("kyb-platform")
    assert endpoint.url == (
        f"{staging.cluster.server()}/api/v1/namespaces/kyb-staging/services/kyb-platform:80/proxy"
    )
    serving = _ready_addresses(KubernetesCluster.load(BLOCK_NAME), "kyb-staging", "kyb-platform")
    result = check_health(endpoint, budget_seconds=BUDGET)
    if serving:  # a delivery left staging's real pods running: the proxy reaches one of them
        assert result.ok and result.status_code == 200, result.reason
    else:  # 503 without Ready endpoints, 404 when no delivery made the Service
        assert result.status_code in (503, 404)
        assert result.reason.startswith(f"the apiserver answered HTTP {result.status_code} itself")


def _ready_addresses(admin: KubernetesCluster, namespace: str, service: str) -> set[str]:
    """The Ready pod addresses in a Service's EndpointSlices (none if it has none)."""
    found = client.DiscoveryV1Api(admin.api_client()).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}", _request_timeout=10
    )
    return {
        address
        for piece in found.items
        for endpoint in piece.endpoints or []
        if (endpoint.conditions and endpoint.conditions.ready)
        for address in endpoint.addresses
    }

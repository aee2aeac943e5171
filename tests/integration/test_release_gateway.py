"""A traffic-routed canary on the real platform: the HTTPRoute's weights move real requests.

The example service runs as real pods (the pod runner, label kyb.dev/run=true) in three versions
that report themselves on /health; Traefik, the platform's Gateway, routes the test's host name
by the HTTPRoute the release moves. The release runs as staging's pipeline ServiceAccount, so the
route's get/patch in deploy/rbac is all it takes. Shares are counted from the answers.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client
from prefect import flow

from blocks import KubernetesCluster
from core.release import route
from core.release.actions import Pause
from core.release.decisions import Choice, Decision
from core.release.observed import Outcome
from core.release.spec import ReleaseSpec
from flows.release.executor import ReleaseResult
from flows.release.flow import perform_release
from sandbox.example_image import build_example, docker_client, push
from sandbox.platform import BLOCK_NAME, Platform
from sandbox.podrunner import RUN_LABEL
from sandbox.traefik.manifests import parent_ref
from tests.integration import rbac
from tests.integration.release_helpers import Scripted, deployments, settle, spec

REQUESTS = 400
TOLERANCE = 5  # points of share around the weight
ENV = "staging"
READINESS = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1}
TEMPLATE = {  # the overlay's pod template: opted in to run for real, probed on /health
    "metadata": {"labels": {RUN_LABEL: "true"}},
    "spec": {
        "terminationGracePeriodSeconds": 5,
        "containers": [
            {
                "name": "web",
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": READINESS,
            }
        ],
    },
}
ROUTED = {
    "stableService": "web-stable",
    "canaryService": "web-canary",
    "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}},
    "scaleDownDelaySeconds": 1,
    "abortScaleDownDelaySeconds": 1,
}
WALK = {
    "canary": {
        **ROUTED,
        "steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}],
    }
}
FAIL = {"templates": [{"templateName": "success-rate"}]}
ABORTING = {"canary": {**ROUTED, "steps": [{"setWeight": 50}, {"pause": {}}, {"analysis": FAIL}]}}


@pytest.fixture(scope="module")
def images(platform: Platform, tmp_path_factory) -> dict[str, str]:
    """Versions v1, v2, v3 of the example service, by digest in the platform's registry."""
    dc = docker_client(platform)
    tag = uuid.uuid4().hex[:10]
    base = build_example(
        dc, tmp_path_factory.mktemp("context"), f"{platform.registry.address}/gateway-test:{tag}"
    )
    found = {version: push(platform, dc, base, version) for version in ("v1", "v2", "v3")}
    dc.images.remove(base, force=True)
    dc.close()
    return found


@pytest.fixture
def sa(namespace: str) -> Iterator[KubernetesCluster]:
    """Staging's pipeline ServiceAccount, bound in `namespace` only."""
    admin = KubernetesCluster.load(BLOCK_NAME)
    rbac.bind(admin, ENV, [namespace])
    cluster = rbac.cluster_as_service_account(admin, ENV, namespace, ttl_seconds=900)
    yield cluster
    rbac.unbind(admin, namespace)


@pytest.fixture
def web(platform: Platform, namespace: str, kube) -> Iterator[httpx.Client]:
    """The user's HTTPRoute (all to stable) and a client asking Traefik for its host name."""
    host = f"web.{namespace}.gateway-test"
    body = {
        "apiVersion": f"{route.GROUP}/{route.VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "parentRefs": [parent_ref()],
            "hostnames": [host],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "web-stable", "port": 80, "weight": 100},
                        {"name": "web-canary", "port": 80, "weight": 0},
                    ]
                }
            ],
        },
    }
    client.CustomObjectsApi(kube).create_namespaced_custom_object(
        route.GROUP, route.VERSION, namespace, route.PLURAL, body
    )
    with httpx.Client(base_url=platform.traefik.url, headers={"Host": host}, timeout=5) as c:
        yield c


def _send(web: httpx.Client, count: int = REQUESTS) -> Counter[str]:
    """`count` requests through the Gateway: how many each version answered (or the status)."""
    seen: Counter[str] = Counter()
    for _ in range(count):
        resp = web.get("/health")
        seen[resp.json()["version"] if resp.status_code == 200 else str(resp.status_code)] += 1
    return seen


@flow(name="gateway-release-under-test")
def release_as(
    spec: ReleaseSpec, cluster: KubernetesCluster, runner: Scripted, ask
) -> ReleaseResult:
    """The real release path as the ServiceAccount; `ask` answers its pauses."""
    return perform_release(spec.with_changes(template=TEMPLATE), cluster, runner, ask=ask)


def _weights(kube, namespace: str) -> dict[str, int]:
    found = client.CustomObjectsApi(kube).get_namespaced_custom_object(
        route.GROUP, route.VERSION, namespace, route.PLURAL, "web"
    )
    return {r["name"]: r["weight"] for r in found["spec"]["rules"][0]["backendRefs"]}


def test_route_weights_move_real_traffic_then_promote_and_abort(
    namespace: str, kube, sa: KubernetesCluster, web: httpx.Client, images: dict[str, str]
) -> None:
    v1, v2, v3 = images["v1"], images["v2"], images["v3"]
    first = release_as(spec(namespace, v1, WALK, replicas=2), sa, Scripted(), None)
    assert first.ok, first.summary
    assert _send(web) == {"v1": REQUESTS}

    shares: dict[int, Counter[str]] = {}

    def measure(pause: Pause, _: ReleaseSpec) -> Decision:
        weight = _weights(kube, namespace)["web-canary"]
        shares[weight] = _send(web)
        return Decision(Choice.PROMOTE, "test", f"measured at {weight}%")

    result = release_as(spec(namespace, v2, WALK, replicas=2), sa, Scripted(), measure)
    assert result.ok, result.summary
    assert set(shares) == {25, 50}, shares
    for weight, seen in shares.items():
        assert set(seen) == {"v1", "v2"}, seen  # every request answered by one of the two
        assert abs(100 * seen["v2"] / REQUESTS - weight) <= TOLERANCE, (weight, seen)
    assert _weights(kube, namespace) == {"web-stable": 100, "web-canary": 0}
    assert _send(web) == {"v2": REQUESTS}
    assert any(e.action == "route 25% of traffic to the canary" for e in result.journal)

    during: list[Counter[str]] = []

    def look(pause: Pause, _: ReleaseSpec) -> Decision:
        during.append(_send(web))
        return Decision(Choice.PROMOTE, "test", "go on to the analysis")

    failing = Scripted({"success-rate": Outcome.FAILED})
    aborted = release_as(spec(namespace, v3, ABORTING, replicas=2), sa, failing, look)
    assert not aborted.ok, aborted.summary
    assert "rolled back to the stable version" in aborted.summary
    assert abs(100 * during[0]["v3"] / REQUESTS - 50) <= TOLERANCE, during
    assert _weights(kube, namespace) == {"web-stable": 100, "web-canary": 0}
    assert _send(web) == {"v2": REQUESTS}  # after the abort, no request reaches the canary
    want = {"web": (v2, 2, 2), "web-canary": (v3, 0, 0)}
    assert settle(KubernetesCluster.load(BLOCK_NAME), namespace, want) == want


def test_a_missing_route_is_refused_before_anything_is_written(
    namespace: str, kube, sa: KubernetesCluster
) -> None:
    routed = spec(namespace, "127.0.0.1:5001/x@sha256:" + "1" * 64, WALK, replicas=1)
    with pytest.raises(Exception, match=r"HTTPRoute .*/web .*does not exist"):
        release_as(routed, sa, Scripted(), None)
    assert deployments(KubernetesCluster.load(BLOCK_NAME), namespace) == {}
    assert client.CoreV1Api(kube).list_namespaced_service(namespace).items == []


class Crash(Exception):
    """The worker dies while a person looks at the paused canary."""


def test_a_resumed_release_reads_the_weight_on_the_route(
    namespace: str, kube, sa: KubernetesCluster, web: httpx.Client, images: dict[str, str]
) -> None:
    v1, v2 = images["v1"], images["v2"]
    assert release_as(spec(namespace, v1, WALK, replicas=1), sa, Scripted(), None).ok

    def crash_at_50(pause: Pause, _: ReleaseSpec) -> Decision:
        if _weights(kube, namespace)["web-canary"] == 50:
            raise Crash("the worker died")
        return Decision(Choice.PROMOTE, "test", "go on")

    with pytest.raises(Crash):
        release_as(spec(namespace, v2, WALK, replicas=1), sa, Scripted(), crash_at_50)
    assert _weights(kube, namespace) == {"web-stable": 50, "web-canary": 50}
    left = _send(web)  # the crash left it at 50%: within the tolerance the shares test uses
    assert set(left) == {"v1", "v2"} and sum(left.values()) == REQUESTS, left
    assert abs(100 * left["v2"] / REQUESTS - 50) <= TOLERANCE, left

    approve = lambda pause, _: Decision(Choice.PROMOTE, "test", "go on")  # noqa: E731
    resumed = release_as(spec(namespace, v2, WALK, replicas=1), sa, Scripted(), approve)
    assert resumed.ok, resumed.summary
    routed = [e.action for e in resumed.journal if e.action.startswith("route ")]
    assert routed == ["route 0% of traffic to the canary"]  # 50% was seen, not set again
    assert _send(web) == {"v2": REQUESTS}

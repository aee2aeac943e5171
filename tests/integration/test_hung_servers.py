"""A server that accepts and never answers fails a call in bounded time, naming the server.

A release whose apiserver wedges mid-rollout fails, frees its lock and resumes on the next run.
"""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from kubernetes import client, watch
from prefect import flow

from blocks import KubernetesCluster, PrometheusServer
from blocks.cluster import ApiTimeout
from core.analysis.builtins import BUILTINS
from core.analysis.render import render
from flows.release.flow import perform_release
from tasks import kube, lease
from tasks.prometheus import PrometheusRunner
from tests.integration.hung import relay
from tests.integration.release_helpers import V1, V2, Scripted, deployments, spec

CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 20},
            {"pause": {"duration": 20}},
            {"setWeight": 60},
            {"pause": {"duration": 5}},
        ]
    }
}


def _through(cluster: KubernetesCluster, address: str, timeout: float) -> KubernetesCluster:
    """The same cluster and credentials, reached at `address` (a relay), with a short timeout."""
    data = yaml.safe_load(cluster.kubeconfig.get_secret_value())
    for entry in data["clusters"]:
        entry["cluster"]["server"] = f"https://{address}"
    return KubernetesCluster(
        kubeconfig=yaml.safe_dump(data),
        context=cluster.context,
        namespace=cluster.namespace,
        request_timeout=timeout,
    )


@pytest.fixture
def cluster(platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


def _apiserver(cluster: KubernetesCluster) -> tuple[str, int]:
    host, port = cluster.server().removeprefix("https://").rsplit(":", 1)
    return host, int(port)


def test_a_kubernetes_call_to_a_server_that_never_answers_fails_in_bounded_time(cluster):
    with relay(None) as hung:
        wedged = _through(cluster, hung.address, timeout=2)
        started = time.monotonic()
        with pytest.raises(ApiTimeout) as caught:
            kube.read_deployment.fn(wedged, "default", "web")
        took = time.monotonic() - started
    assert hung.address in str(caught.value)  # the message names the server
    assert "did not answer" in str(caught.value)
    assert took < 60, f"took {took:.0f}s"


def test_a_watch_waits_its_own_timeout_not_the_call_timeout(cluster, namespace):
    """A quiet watch of 6 s through a client whose calls time out after 2 s ends normally."""
    with relay(_apiserver(cluster)) as r:
        short = _through(cluster, r.address, timeout=2)
        core = client.CoreV1Api(short.api_client())
        started = time.monotonic()
        events = list(
            watch.Watch().stream(
                core.list_namespaced_config_map,
                namespace,
                field_selector="metadata.name=nothing-here",
                timeout_seconds=6,
            )
        )
        took = time.monotonic() - started
    assert events == []
    assert 5 <= took < 30


def test_an_analysis_against_a_prometheus_that_never_answers_measures_an_error(platform):
    with relay(None) as hung:
        server = PrometheusServer(url=f"http://{hung.address}")
        runner = PrometheusRunner(server, dict(BUILTINS))
        rendered = render(BUILTINS["error-rate"], {"service-name": "web"})["error-rate"]
        started = time.monotonic()
        measured = runner.measure(rendered, time.time())
        took = time.monotonic() - started
    assert measured.result is None
    assert measured.error == f"Prometheus http://{hung.address} did not answer within 10s"
    assert took < 30, f"took {took:.0f}s"  # one timeout, not four


@flow(name="release-through-a-relay")
def _release(s, cluster: KubernetesCluster):
    return perform_release(s, cluster, Scripted(), lock_timeout=lease.LEASE_SECONDS + 30)


def _wait_for_canary(cluster: KubernetesCluster, ns: str, seconds: int) -> None:
    """Watch until the release has scaled its canary up (the Deployment may not exist yet)."""
    apps = client.AppsV1Api(kube.api_for(cluster))
    for event in watch.Watch().stream(
        apps.list_namespaced_deployment,
        ns,
        field_selector="metadata.name=web-canary",
        timeout_seconds=seconds,
    ):
        if (event["object"].spec.replicas or 0) > 0:
            return
    raise AssertionError("the release never scaled its canary up")


def _lock(cluster: KubernetesCluster, ns: str, app: str) -> client.V1Lease:
    leases = client.CoordinationV1Api(kube.api_for(cluster))
    return leases.read_namespaced_lease(lease.lease_name(app), ns)


def test_a_release_whose_apiserver_wedges_fails_frees_its_lock_and_resumes(cluster, namespace):
    _release(spec(namespace, V1, CANARY, replicas=5), cluster)
    with relay(_apiserver(cluster)) as r:
        wedged = _through(cluster, r.address, timeout=2)
        waiter = threading.Thread(
            target=lambda: (_wait_for_canary(cluster, namespace, 120), r.hang())
        )
        waiter.start()
        started = time.monotonic()
        state = _release(spec(namespace, V2, CANARY, replicas=5), wedged, return_state=True)
        took = time.monotonic() - started
        waiter.join()
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert r.address in message and "did not answer" in message, message
    assert took < 600, f"took {took:.0f}s"
    # The wedged apiserver could not be told the lock is free, so the lock frees itself: it is
    # free within one lease period of the release's last renewal.
    assert lease.free_at(_lock(cluster, namespace, "web")) <= time.time() + lease.LEASE_SECONDS
    mid = deployments(cluster, namespace)
    assert mid["web-canary"][0] == V2 and mid["web-canary"][1] > 0  # stopped mid-rollout

    resumed = _release(spec(namespace, V2, CANARY, replicas=5), cluster)  # takes the lock over
    assert resumed.ok, resumed.summary
    assert _lock(cluster, namespace, "web").spec.holder_identity is None  # freed at its end
    final = deployments(cluster, namespace)
    assert final["web"][:2] == (V2, 5)
    assert final.get("web-canary", (V2, 0))[1] == 0

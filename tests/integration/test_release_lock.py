"""The per-app release lock is a Lease in the app's namespace, on the real cluster.

Two releases of one app never interleave; a lock whose holder died is taken over after its lease;
a release that cannot get the lock changes nothing and names who holds it; a run whose lock was
taken over stops writing.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client, watch

from blocks import KubernetesCluster
from core.release.errors import LockLost, ReleaseLocked
from core.release.observed import Outcome
from flows.release.flow import perform_release
from tasks import kube, lease
from tests.integration.release_helpers import V1, V2, V3, Scripted, deployments, release_flow, spec

CANARY = {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "3s"}}]}}


@pytest.fixture
def cluster() -> KubernetesCluster:
    return KubernetesCluster.load("local")


def _leases(cluster: KubernetesCluster) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(kube.api_for(cluster))


def _lock(cluster: KubernetesCluster, ns: str) -> client.V1Lease:
    return _leases(cluster).read_namespaced_lease(lease.lease_name("web"), ns)


def _plant(cluster: KubernetesCluster, ns: str, holder: str, renewed_ago: float) -> None:
    """A Lease as a run that stopped renewing `renewed_ago` seconds ago left it."""
    at = (datetime.now(UTC) - timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _leases(cluster).create_namespaced_lease(
        ns,
        {
            "metadata": {
                "name": lease.lease_name("web"),
                "annotations": {"kyb.dev/purpose": "release of a crashed run"},
            },
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": lease.LEASE_SECONDS,
                "acquireTime": at,
                "renewTime": at,
            },
        },
    )


def test_two_releases_of_one_app_run_one_after_the_other(cluster, namespace):
    release_flow(spec(namespace, V1, CANARY), Scripted())
    results: dict[str, object] = {}
    holders: list[str] = []

    def run(image: str) -> None:
        results[image] = release_flow(spec(namespace, image, CANARY), Scripted())

    first = threading.Thread(target=run, args=(V2,))
    first.start()
    for event in watch.Watch().stream(  # until the first holds the lock: then start the next
        _leases(cluster).list_namespaced_lease,
        namespace,
        field_selector=f"metadata.name={lease.lease_name('web')}",
        timeout_seconds=60,
    ):
        holder = event["object"].spec.holder_identity
        if holder and "flow-run/" in holder:
            holders.append(holder)
            break
    second = threading.Thread(target=run, args=(V3,))
    second.start()
    first.join(180)
    second.join(180)
    a, b = results[V2], results[V3]
    assert a.ok and b.ok, (a.summary, b.summary)
    a_ended = max(e.started + e.seconds for e in a.journal)
    assert min(e.started for e in b.journal) >= a_ended - 0.01, "the releases interleaved"
    assert deployments(cluster, namespace)["web"][:2] == (V3, 3)
    held = _lock(cluster, namespace)
    assert held.spec.holder_identity is None  # freed at the end
    assert held.spec.lease_transitions >= 2  # V1's run, then V2's, then V3's took it


def test_a_lock_whose_holder_stopped_renewing_is_taken_over(cluster, namespace):
    _plant(cluster, namespace, "flow-run/crashed", renewed_ago=lease.LEASE_SECONDS + 1)
    result = release_flow(spec(namespace, V1, CANARY), Scripted())
    assert result.ok, result.summary
    assert deployments(cluster, namespace)["web"][:2] == (V1, 3)
    assert _lock(cluster, namespace).spec.lease_transitions == 1


def test_a_release_that_cannot_get_the_lock_changes_nothing_and_says_who_holds_it(
    cluster, namespace
):
    _plant(cluster, namespace, "flow-run/busy", renewed_ago=0)
    started = time.monotonic()
    with pytest.raises(ReleaseLocked, match=r"flow-run/busy \(release of a crashed run\)"):
        perform_release(spec(namespace, V1, CANARY), cluster, Scripted(), lock_timeout=3)
    assert 3 <= time.monotonic() - started < 30
    assert deployments(cluster, namespace) == {}
    assert _lock(cluster, namespace).spec.holder_identity == "flow-run/busy"


def test_a_run_whose_lock_was_taken_over_stops_writing(cluster, namespace, monkeypatch):
    monkeypatch.setattr(lease, "RENEW_SECONDS", 0.3)
    with lease.hold(cluster, namespace, "web", "a release under test") as held:
        lease.check_held()  # ours: nothing raised
        taken = _lock(cluster, namespace)
        taken.spec.holder_identity = "flow-run/other"
        _leases(cluster).replace_namespaced_lease(lease.lease_name("web"), namespace, taken)
        deadline = time.monotonic() + 10
        while not held.lost and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(LockLost, match="taken by another run"):
            lease.check_held()
    assert _lock(cluster, namespace).spec.holder_identity == "flow-run/other"  # not freed by us


def test_a_failed_release_frees_its_lock(cluster, namespace):
    release_flow(spec(namespace, V1, CANARY), Scripted())
    analysed = spec(
        namespace,
        V2,
        {
            "canary": {
                "steps": [
                    {"setWeight": 50},
                    {"analysis": {"templates": [{"templateName": "error-rate"}]}},
                ]
            }
        },
    )
    result = release_flow(analysed, Scripted({"error-rate": Outcome.FAILED}))
    assert not result.ok
    assert deployments(cluster, namespace)["web"][:2] == (V1, 3)
    assert _lock(cluster, namespace).spec.holder_identity is None

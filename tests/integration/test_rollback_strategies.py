"""The rollback flow after rolling, blue-green and canary releases, on the real cluster."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect.artifacts import Artifact

from blocks import KubernetesCluster
from core.errors import ConfigError
from core.release.history import History
from core.release.status import RolloutState
from flows.rollback import rollback
from tasks import kube
from tasks.rollback import undo_once
from tests.integration.release_helpers import (
    V1,
    V2,
    V3,
    Scripted,
    deployments,
    release_flow,
    selector,
    settle,
    spec,
)

STRATEGIES = {
    "rolling": {"rolling": {"maxSurge": 1, "maxUnavailable": 0}},
    "blueGreen": {
        "blueGreen": {
            "activeService": "web-active",
            "previewService": "web-preview",
            "scaleDownDelaySeconds": 1,
            "abortScaleDownDelaySeconds": 1,
        }
    },
    "canary": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": 1}}]}},
}
SERVICE = {"rolling": "web", "blueGreen": "web-active", "canary": "web"}


@pytest.fixture
def cluster(platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


def serving(cluster: KubernetesCluster, ns: str, service: str) -> list[str]:
    """Images of the live pods a Service selects, sorted."""
    api = kube.api_for(cluster)
    picked = ",".join(f"{k}={v}" for k, v in sorted(selector(cluster, ns, service).items()))
    pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=picked).items
    return sorted(p.spec.containers[0].image for p in pods if not p.metadata.deletion_timestamp)


def history(cluster: KubernetesCluster, ns: str) -> History:
    cm = client.CoreV1Api(kube.api_for(cluster)).read_namespaced_config_map("web-history", ns)
    return History.loads(cm.data["history"], "web-history")


def services(cluster: KubernetesCluster, ns: str) -> dict[str, dict[str, str]]:
    items = client.CoreV1Api(kube.api_for(cluster)).list_namespaced_service(ns).items
    return {s.metadata.name: dict(s.spec.selector or {}) for s in items}


def after_rollback(kind: str) -> dict[str, tuple[str, int, int]]:
    """Deployments once traffic is back on V1 and V2 went to 0 (blue-green: V1 is on blue)."""
    return {
        "rolling": {"web": (V1, 3, 3)},
        "blueGreen": {"web-blue": (V1, 3, 3), "web-green": (V2, 0, 0)},
        "canary": {"web": (V1, 3, 3), "web-canary": (V2, 0, 0)},
    }[kind]


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_rollback_returns_traffic_to_v1_and_a_rerun_stays_there(cluster, namespace, kind) -> None:
    for image in (V1, V2):
        result = release_flow(spec(namespace, image, STRATEGIES[kind]), Scripted())
        assert result.ok, result.summary
    assert serving(cluster, namespace, SERVICE[kind]) == [V2] * 3

    done = rollback("web", namespace)
    assert (done["image"], done["from_image"], done["reused"]) == (V1, V2, False)
    assert done["strategy"] == kind
    assert serving(cluster, namespace, SERVICE[kind]) == [V1] * 3
    want = after_rollback(kind)
    assert settle(cluster, namespace, want) == want
    if kind == "blueGreen":
        assert (done["from"], done["to"]) == ("green", "blue")
        for svc in ("web-active", "web-preview"):
            assert selector(cluster, namespace, svc) == {"app": "web", "color": "blue"}
        switch = next(s for s in done["steps"] if s["action"].startswith("point Service web-act"))
        assert (switch["from"], switch["to"]) == ("app=web,color=green", "app=web,color=blue")
    else:
        assert selector(cluster, namespace, "web") == {"app": "web"}
        assert (done["from"], done["to"]) == (2, 1)  # the stable Deployment's revisions
    report = Artifact.get("rollback-web")
    assert report is not None and f"from {V2}" in report.data and f"to {V1}" in report.data
    assert "| 1 |" in report.data and "| from | to |" in report.data
    kept = history(cluster, namespace)
    assert [(s.image, s.by) for s in kept.served] == [
        (V1, "release"),
        (V2, "release"),
        (V1, "rollback"),
    ]

    # the first run's answer was lost: run it again. Without the recorded target, "the version
    # before the serving one" would now be V2, the bad one.
    again = rollback("web", namespace)
    assert (again["image"], again["reused"]) == (V1, True)
    assert not [
        s for s in again["steps"] if s["action"].split()[0] in ("scale", "point", "restore")
    ]
    assert serving(cluster, namespace, SERVICE[kind]) == [V1] * 3
    assert settle(cluster, namespace, want) == want
    assert history(cluster, namespace) == kept  # nothing new to record


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_nothing_to_roll_back_to_fails_and_changes_nothing(cluster, namespace, kind) -> None:
    assert release_flow(spec(namespace, V1, STRATEGIES[kind]), Scripted()).ok
    before = (deployments(cluster, namespace), services(cluster, namespace))
    recorded = history(cluster, namespace)
    with pytest.raises(ConfigError, match="nothing to roll back to: web has served no other"):
        rollback("web", namespace)
    assert (deployments(cluster, namespace), services(cluster, namespace)) == before
    assert history(cluster, namespace) == recorded and recorded.rollback is None
    with pytest.raises(ConfigError, match="no release of 'nope' is recorded"):
        rollback("nope", namespace)


def test_undo_whose_answer_was_lost_stays_on_the_decided_revision(
    cluster, namespace, monkeypatch
) -> None:
    """The automatic undo of a failed rolling release, when its write's answer is lost."""
    for image in (V1, V2, V3):
        assert release_flow(spec(namespace, image, STRATEGIES["rolling"]), Scripted()).ok
    real = client.AppsV1Api.patch_namespaced_deployment
    lost: list[str] = []

    def answer_lost(self, name, namespace, body, **kw):  # the write applies, its answer is lost
        live = real(self, name, namespace, body, **kw)
        if not lost:
            lost.append(name)
            raise ApiException(status=503, reason="answer lost after the write applied")
        return live

    monkeypatch.setattr(client.AppsV1Api, "patch_namespaced_deployment", answer_lost)
    undone = undo_once(cluster, namespace, "web")  # the write is retried (503 is transient)
    monkeypatch.undo()
    assert lost == ["web"]
    assert undone == {"from": 3, "to": 2, "image": V2}
    assert kube.wait_rollout(cluster, namespace, "web", 120)[0] is RolloutState.COMPLETE
    assert deployments(cluster, namespace) == {"web": (V2, 3, 3)}  # not back on V3

"""The `release` flow with its Prometheus analysis, end to end.

the real Prometheus scrapes loopback example-service instances labelled as the canary of a release
on the real cluster; a faulty canary is rolled back on the verdict, a healthy one is promoted, and
the result links the analysis report.
"""

from __future__ import annotations

import json

import pytest
from prefect.artifacts import Artifact

from blocks import KubernetesCluster
from core.analysis.builtins import BUILTINS
from core.analysis.templates import rescheduled
from core.release.errors import ReleaseFailed
from flows.release.flow import release
from sandbox.fleet import scraped
from sandbox.load import Load
from sandbox.platform import Platform
from tests.integration.release_helpers import V1, V2, settle, spec

FAST = {"interval": 2, "count": 4, "initial_delay": 5}
ERROR_RATE = rescheduled(BUILTINS["error-rate"], **FAST)
CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 40},
            {"analysis": {"templates": [{"templateName": "error-rate"}]}},
        ]
    }
}


@pytest.fixture
def cluster(platform: Platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


def _canary_release(platform: Platform, namespace: str, **faults: float) -> tuple[bool, str]:
    labels = {"service": "web", "namespace": namespace, "track": "canary"}
    with scraped(platform.prometheus, labels, **faults) as inst, Load([inst.url]):
        state = release(
            spec=spec(namespace, V2, CANARY, replicas=5), templates=[ERROR_RATE], return_state=True
        )
    if state.is_completed():
        return True, state.result()["summary"]
    with pytest.raises(ReleaseFailed) as failed:
        state.result()
    return False, str(failed.value)


def test_faulty_canary_is_rolled_back_on_the_prometheus_verdict(
    platform: Platform, cluster: KubernetesCluster, namespace: str
) -> None:
    release(spec=spec(namespace, V1, CANARY, replicas=5))  # first release: straight to full size
    ok, summary = _canary_release(platform, namespace, error_rate=0.3)
    assert not ok and "step analysis error-rate ended Failed" in summary
    want = {"web": (V1, 5, 5), "web-canary": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want  # a scaled-down canary's pods may linger
    report = Artifact.get("release-result-web")
    assert report is not None and "**Failed**: error-rate:" in report.data
    key = f"analysis-{namespace}-web-step-1"  # the second step (index 1) is the analysis
    assert f"report `{key}`" in report.data
    rows = Artifact.get(key)
    assert rows is not None
    data = json.loads(rows.data) if isinstance(rows.data, str) else rows.data
    assert data[0]["outcome"] == "Failed" and f'namespace=~"{namespace}"' in data[0]["query"]


def test_healthy_canary_is_promoted_on_the_prometheus_verdict(
    platform: Platform, cluster: KubernetesCluster, namespace: str
) -> None:
    release(spec=spec(namespace, V1, CANARY, replicas=5))
    ok, summary = _canary_release(platform, namespace)
    assert ok, summary
    want = {"web": (V2, 5, 5), "web-canary": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want  # a scaled-down canary's pods may linger


def test_a_faulty_first_deploy_is_scaled_to_zero_on_the_prometheus_verdict(
    platform: Platform, cluster: KubernetesCluster, namespace: str
) -> None:
    """A first deploy has no stable version to return to: analysed as stable, failing, it goes.

    It runs as the stable track, so that is what its analysis measures.
    """
    first = spec(namespace, V2, CANARY, replicas=3, firstDeploy={"analysis": True})
    labels = {"service": "web", "namespace": namespace, "track": "stable"}
    with (
        scraped(platform.prometheus, labels, error_rate=0.3) as inst,
        Load([inst.url]),
    ):
        state = release(spec=first, templates=[ERROR_RATE], return_state=True)
    with pytest.raises(ReleaseFailed) as failed:
        state.result()
    why = str(failed.value)
    assert "firstDeploy analysis error-rate ended Failed" in why and "scaled to 0" in why
    assert settle(cluster, namespace, {"web": (V2, 0, 0)}) == {"web": (V2, 0, 0)}

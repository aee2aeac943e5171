"""The Prometheus analysis wired into every strategy, end to end through the `release` flow.

The real Prometheus scrapes loopback example-service instances labelled as the pods each phase
measures are (track canary or stable; a blue-green color), and the cluster state after the
release shows what the verdict did: a faulty blue-green preview is never promoted, a slow rolling
release is undone by its post-deploy window, a faulty canary is stopped by its background
analysis, and a Prometheus that stops answering is an Error that promotes nothing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.artifacts import Artifact

from blocks import KubernetesCluster, PrometheusServer
from core.analysis.builtins import BUILTINS
from core.analysis.templates import AnalysisTemplate, rescheduled
from core.release.errors import ReleaseFailed
from flows.release.flow import release
from sandbox import example
from sandbox.components.prometheus import Prometheus
from sandbox.fleet import scraped
from sandbox.load import Load
from sandbox.platform import Platform
from sandbox.settings import Ports, Settings
from tests.integration.release_helpers import (
    V1,
    V2,
    deployments,
    revision,
    selector,
    settle,
    spec,
)

FAST = {"interval": 2, "count": 4, "initial_delay": 5}
TEMPLATES = [rescheduled(BUILTINS[name], **FAST) for name in BUILTINS]


def only(name: str) -> dict:
    return {"templates": [{"templateName": name}]}


BLUE_GREEN = {
    "blueGreen": {
        "activeService": "web-active",
        "previewService": "web-preview",
        "autoPromotionEnabled": True,
        "scaleDownDelaySeconds": 1,
        "abortScaleDownDelaySeconds": 1,
        "prePromotionAnalysis": only("error-rate"),
    }
}
ROLLING = {"rolling": {"maxSurge": 1, "maxUnavailable": 0, "analysis": only("latency-p95")}}
BACKGROUND = {
    "canary": {
        "analysis": only("error-rate"),
        "steps": [{"setWeight": 40}, {"pause": {"duration": 600}}],
    }
}


@pytest.fixture
def cluster(platform: Platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


def released(
    new_spec,
    *,
    labels: dict[str, str],
    prometheus: Prometheus,
    templates: list[AnalysisTemplate] = TEMPLATES,
    prometheus_block: str = "local",  # the name of the KYB Prometheus block the analyses ask
    **faults: float,
) -> tuple[bool, str, float]:
    """Release `new_spec` while a labelled instance serves traffic and is scraped.

    Release `new_spec` while an instance with `labels` (and `faults`) serves traffic and is
    scraped; (succeeded, summary or failure, seconds the release took).
    """
    with scraped(prometheus, labels, **faults) as inst, Load([inst.url]):
        started = time.monotonic()
        state = release(
            spec=new_spec,
            prometheus=PrometheusServer.load(prometheus_block),
            templates=templates,
            return_state=True,
        )
        took = time.monotonic() - started
    if state.is_completed():
        return True, state.result()["summary"], took
    with pytest.raises(ReleaseFailed) as failed:
        state.result()
    return False, str(failed.value), took


def rows(key: str) -> list[dict]:
    artifact = Artifact.get(key)
    assert artifact is not None, f"no artifact {key}"
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def test_faulty_blue_green_preview_fails_pre_promotion_and_is_never_active(
    platform: Platform, cluster: KubernetesCluster, namespace: str
) -> None:
    release(spec=spec(namespace, V1, BLUE_GREEN))
    old = selector(cluster, namespace, "web-active")["color"]
    new = "green" if old == "blue" else "blue"
    # the new color's pods are labelled with their color, which the analysis selects
    preview = {"service": "web", "namespace": namespace, "color": new}
    ok, why, _ = released(
        spec(namespace, V2, BLUE_GREEN),
        labels=preview,
        prometheus=platform.prometheus,
        error_rate=0.3,
    )
    assert not ok and "prePromotion analysis error-rate ended Failed" in why, why
    assert selector(cluster, namespace, "web-active") == {"app": "web", "color": old}
    want = {f"web-{old}": (V1, 3, 3), f"web-{new}": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want
    table = rows(f"analysis-{namespace}-web-pre-promotion")
    assert table[0]["outcome"] == "Failed" and f'color=~"{new}"' in table[0]["query"]


def test_slow_rolling_release_is_rolled_back_by_its_post_deploy_window(
    platform: Platform, cluster: KubernetesCluster, namespace: str
) -> None:
    release(spec=spec(namespace, V1, {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}))
    stable = {"service": "web", "namespace": namespace, "track": "stable"}
    ok, why, _ = released(
        spec(namespace, V2, ROLLING), labels=stable, prometheus=platform.prometheus, latency_ms=700
    )
    assert not ok and "postDeploy analysis latency-p95 ended Failed" in why, why
    assert "rolled back to revision 1" in why
    assert deployments(cluster, namespace) == {"web": (V1, 3, 3)}
    assert revision(cluster, namespace, "web") == "3"
    table = rows(f"analysis-{namespace}-web-post-deploy")
    assert table[0]["threshold"] == "success: result[0] <= 0.5" and table[0]["outcome"] == "Failed"


def test_background_analysis_stops_a_faulty_canary_during_its_pause(
    platform: Platform, cluster: KubernetesCluster, namespace: str
) -> None:
    release(spec=spec(namespace, V1, BACKGROUND, replicas=5))
    canary = {"service": "web", "namespace": namespace, "track": "canary"}
    ok, why, took = released(
        spec(namespace, V2, BACKGROUND, replicas=5),
        labels=canary,
        prometheus=platform.prometheus,
        error_rate=0.3,
    )
    assert not ok and "background analysis error-rate ended Failed" in why, why
    assert took < 300, "the background verdict must cut the 600 s pause short"
    want = {"web": (V1, 5, 5), "web-canary": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want


@pytest.fixture
def own_prometheus(platform: Platform, tmp_path: Path) -> Iterator[tuple[Prometheus, str]]:
    """A private Prometheus (which this test stops) and the name of a block pointing at it."""
    second = Prometheus(Settings(home=tmp_path, ports=Ports(prometheus=example.free_port())))
    second.up()
    name = f"stopping-{uuid.uuid4().hex[:8]}"
    PrometheusServer(url=second.url, scrape_interval_seconds=2).save(name)
    try:
        yield second, name
    finally:
        second.down()
        PrometheusServer.delete(name)


def test_prometheus_stopping_mid_canary_is_an_error_and_nothing_is_promoted(
    platform: Platform, cluster: KubernetesCluster, namespace: str, own_prometheus
) -> None:
    prometheus, block = own_prometheus
    step = {"canary": {"steps": [{"setWeight": 40}, {"analysis": only("error-rate")}]}}
    release(spec=spec(namespace, V1, step, replicas=5))
    patient = [
        rescheduled(BUILTINS["error-rate"], **{**FAST, "count": 30, "consecutive_error_limit": 1})
    ]
    stopper = threading.Timer(12, prometheus.down)  # after the first good measurements
    stopper.start()
    canary = {"service": "web", "namespace": namespace, "track": "canary"}
    ok, why, _ = released(
        spec(namespace, V2, step, replicas=5),
        labels=canary,
        prometheus=prometheus,
        templates=patient,
        prometheus_block=block,
    )
    stopper.join()
    assert not ok and "step analysis error-rate ended Error" in why, why
    result = Artifact.get("release-result-web")
    assert result is not None and "consecutive errors 2 > consecutiveErrorLimit 1" in result.data
    key = f"analysis-{namespace}-web-step-1"
    assert f"report `{key}`" in result.data and rows(key)[0]["values"].endswith("error, error")
    want = {"web": (V1, 5, 5), "web-canary": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want


def test_background_analysis_aborts_a_canary_waiting_for_a_human(
    platform: Platform, cluster: KubernetesCluster, namespace: str
) -> None:
    waiting = {
        "canary": {"analysis": only("error-rate"), "steps": [{"setWeight": 40}, {"pause": {}}]}
    }
    release(spec=spec(namespace, V1, waiting, replicas=5))
    canary = {"service": "web", "namespace": namespace, "track": "canary"}
    ok, why, took = released(
        spec(namespace, V2, waiting, replicas=5),
        labels=canary,
        prometheus=platform.prometheus,
        error_rate=0.3,
    )
    assert not ok, why
    assert took < 300, "nobody answers: the background verdict must answer the pause"
    result = Artifact.get("release-result-web")
    assert result is not None and "abort by background analysis" in result.data
    assert "background: **Failed**" in result.data
    want = {"web": (V1, 5, 5), "web-canary": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want

"""Prometheus finds real pods through the apiserver; the analysis selects on the pods' labels.

Against the platform's cluster, registry, pod runner and Prometheus: two Deployments of the example
service (track=stable, track=canary), opted in to scraping by annotation, run as real processes on
their pod IPs; Prometheus's `kubernetes-pods` job (Kubernetes service discovery with a
ServiceAccount token) scrapes them, and the series carry the pods' own namespace, pod, app, track
and pod-template-hash. A built-in analysis template, rendered as the analysis renders it, measures
the canary's real requests. A pod without the annotation is seen and dropped, never scraped.
"""

from __future__ import annotations

import math
import stat
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from blocks import KubernetesCluster
from core.analysis.builtins import BUILTINS
from core.analysis.render import render
from sandbox import prometheus as sd
from sandbox.errors import PlatformError
from sandbox.example_image import build_example, docker_client, push
from sandbox.platform import BLOCK_NAME, Platform
from sandbox.podrunner import RUN_LABEL
from tasks.kube import watch_pods

SCRAPED = {sd.SCRAPE_ANNOTATION: "true", sd.PORT_ANNOTATION: "8080"}
REQUESTS = {"stable": 3, "canary": 5}  # GET /api/v1/verify sent to each track's pod


@pytest.fixture(scope="module")
def image(platform: Platform, tmp_path_factory) -> str:
    """The example service's image, pushed to the platform's registry (the runner pulls it)."""
    tag = f"{platform.registry.address}/prometheus-sd-test:{uuid.uuid4().hex[:10]}"
    dc = docker_client(platform)
    try:
        ref = build_example(dc, tmp_path_factory.mktemp("context"), tag)
        push(platform, dc, ref)
    finally:
        dc.close()
    return ref


def _deployment(name: str, image: str, labels: dict, annotations: dict) -> dict:
    pod_labels = {**labels, RUN_LABEL: "true"}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/health", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def _ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod["status"].get("conditions") or []
    )


def _poll(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    """probe()'s first truthy answer, polled every second up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(1)


def _query(platform: Platform, promql: str) -> list[dict]:
    resp = httpx.get(
        f"{platform.prometheus.url}/api/v1/query", params={"query": promql}, timeout=10
    )
    resp.raise_for_status()
    return resp.json()["data"]["result"]


def _targets(platform: Platform) -> dict:
    resp = httpx.get(f"{platform.prometheus.url}/api/v1/targets", timeout=10)
    resp.raise_for_status()
    return resp.json()["data"]


def test_series_carry_the_pods_labels_and_the_analysis_selects_on_them(
    platform: Platform, kube, namespace: str, image: str
) -> None:
    apps = client.AppsV1Api(kube)
    for track in ("stable", "canary"):
        name = "web" if track == "stable" else "web-canary"
        body = _deployment(name, image, {"app": "web", "track": track}, SCRAPED)
        apps.create_namespaced_deployment(namespace, body)
    quiet = _deployment("quiet", image, {"app": "quiet"}, {})  # runs, but asks for no scrape
    apps.create_namespaced_deployment(namespace, quiet)
    cluster = KubernetesCluster.load(BLOCK_NAME)
    ok, pods = watch_pods(
        cluster,
        namespace,
        f"{RUN_LABEL}=true",
        lambda p: (len(p) == 3 and all(map(_ready, p.values())), p),
        120,
    )
    assert ok, {n: p["status"].get("conditions") for n, p in pods.items()}
    # what the apiserver says about each pod: the labels a series must carry
    by_track = {p["metadata"]["labels"].get("track"): p for p in pods.values()}
    quiet_pod = by_track.pop(None)

    selector = f'namespace="{namespace}", path="/api/v1/verify", status="200"'
    _poll(
        "series from both pods",
        lambda: len(_query(platform, f"http_requests_total{{{selector}}}")) == 2,
    )
    for track, count in REQUESTS.items():
        for _ in range(count):
            answer = httpx.get(
                f"http://{by_track[track]['status']['podIP']}:8080/api/v1/verify", timeout=5
            )
            assert answer.status_code == 200

    def counted() -> list[dict]:
        series = _query(platform, f"http_requests_total{{{selector}}}")
        values = sorted(float(s["value"][1]) for s in series)
        return series if values == sorted(map(float, REQUESTS.values())) else []

    for series in _poll("the requests in Prometheus", counted):
        labels = series["metric"]
        pod = by_track[labels["track"]]
        meta = pod["metadata"]
        assert labels["job"] == sd.JOB
        assert labels["namespace"] == meta["namespace"] == namespace
        assert labels["pod"] == meta["name"]
        assert labels["app"] == labels["service"] == meta["labels"]["app"] == "web"
        assert labels["pod_template_hash"] == meta["labels"]["pod-template-hash"]
        assert labels["instance"] == f"{pod['status']['podIP']}:8080"
        assert float(series["value"][1]) == REQUESTS[labels["track"]]  # that pod's own process

    # the analysis's success-rate on the canary, rendered as the analysis renders it
    template = BUILTINS["success-rate"]
    args = {"service-name": "web", "namespace": namespace, "track": "canary", "window": "30s"}
    (promql,) = (r.query for r in render(template, args).values())

    def measured() -> float | None:
        result = _query(platform, promql)
        value = float(result[0]["value"][1]) if result else math.nan
        return None if math.isnan(value) else value

    assert _poll("a success rate of the canary", measured) == 1.0
    other = render(template, {**args, "namespace": f"{namespace}-elsewhere"})
    assert (
        _query(platform, next(iter(other.values())).query) == []
    )  # it selects on the pods' namespace

    def dropped() -> bool:
        found = _targets(platform)["droppedTargets"]
        name = "__meta_kubernetes_pod_name"
        return any(t["discoveredLabels"].get(name) == quiet_pod["metadata"]["name"] for t in found)

    _poll("the unannotated pod among the dropped targets", dropped)
    active = [
        t for t in _targets(platform)["activeTargets"] if t["labels"].get("namespace") == namespace
    ]
    assert {t["labels"]["pod"] for t in active} == {
        p["metadata"]["name"] for p in by_track.values()
    }
    assert all(t["health"] == "up" for t in active)
    assert quiet_pod["status"]["podIP"] not in {
        t["scrapeUrl"].split("/")[2].split(":")[0] for t in active
    }


def test_prometheus_authenticates_with_a_token_file_it_never_shows(platform: Platform) -> None:
    token_file = platform.prometheus_pods.token_file
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    resp = httpx.get(f"{platform.prometheus.url}/api/v1/status/config", timeout=10)
    loaded = resp.json()["data"]["yaml"]
    assert f"credentials_file: {token_file}" in loaded
    assert token not in loaded and token not in platform.prometheus.config_file.read_text()


def _last_reload(platform: Platform) -> float:
    (series,) = _query(platform, "prometheus_config_last_reload_success_timestamp_seconds")
    return float(series["value"][1])


def test_prometheus_reloads_only_a_changed_job_and_keeps_its_config_when_one_is_refused(
    platform: Platform,
) -> None:
    jobs = yaml.safe_load(platform.prometheus.jobs_file.read_text())
    before = _last_reload(platform)
    assert platform.prometheus.set_jobs(jobs) is False  # unchanged: no reload
    broken = {"job_name": "broken", "kubernetes_sd_configs": [{"role": "nothing"}]}
    with pytest.raises(PlatformError, match="reload refused"):
        platform.prometheus.set_jobs([*jobs, broken])
    assert _last_reload(platform) == before
    assert yaml.safe_load(platform.prometheus.jobs_file.read_text()) == jobs
    resp = httpx.get(f"{platform.prometheus.url}/api/v1/status/config", timeout=10)
    loaded = resp.json()["data"]["yaml"]
    assert f"job_name: {sd.JOB}" in loaded and "broken" not in loaded
    assert "broken" not in platform.prometheus.config_file.read_text()

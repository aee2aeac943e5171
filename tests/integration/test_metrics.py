"""The metrics exporter against real runs on the local Prefect server, scraped by Prometheus."""

from __future__ import annotations

import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prometheus_client.parser import text_string_to_metric_families

from core.delivery.record import Result
from core.release.errors import ReleaseFailed
from deployments.metrics import PipelineCollector, pipeline_registry
from deployments.metrics_exporter import serve
from flows import record
from sandbox.fleet import wait_scraped

pytestmark = pytest.mark.platform

IMAGE = "127.0.0.1:5001/kyb-platform@sha256:" + "c" * 64
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@flow(name="release")
def release(app: str, env: str, strategy: str, commit_time: str = "", fail: str = "") -> str:
    """Records an attempt as perform_release does, ending as `fail` says (or succeeding)."""
    if commit_time:
        record.commit("c0ffee", commit_time)
    with record.recorded("release", app, env, env, strategy, IMAGE) as rec:
        if fail == "failed":
            raise RuntimeError("the apiserver went away mid-release")
        rec.result = Result.ROLLED_BACK if fail else Result.SUCCEEDED
    if fail:
        raise ReleaseFailed("analysis error-rate failed", app=app)
    return app


@flow(name="rollback")
def rollback(app: str, env: str) -> str:
    with record.recorded("rollback", app, env, env) as rec:
        rec.result = Result.SUCCEEDED
    return app


@flow(name="backup")
def backup(fail: bool = False) -> str:
    if fail:
        raise RuntimeError("velero backup failed")
    return "done"


def _run(fn: Any, *args: Any, **kwargs: Any) -> FlowRun:
    state = fn(*args, return_state=True, **kwargs)
    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=30).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _seconds(run: FlowRun) -> float:
    """How long the run's attempt took, as its record says (its run's start and end aside)."""
    return (_ended(run) - _started(run)).total_seconds()


def _started(run: FlowRun) -> datetime:
    [key] = [k for k in run.labels if k.endswith(".started")]
    return datetime.fromisoformat(run.labels[key])


def _ended(run: FlowRun) -> datetime:
    [key] = [k for k in run.labels if k.endswith(".ended")]
    return datetime.fromisoformat(run.labels[key])


@pytest.fixture(scope="module")
def history(platform) -> dict[str, Any]:
    """One app's story in its own environment: ok, rolled back + manual rollback, failed, ok."""
    uid = uuid.uuid4().hex[:8]
    app, ns = f"metrics-{uid}", f"m-{uid}"
    commit = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    runs = {
        "ok": _run(release, app, ns, "canary", commit_time=commit),
        "rolled_back": _run(release, app, ns, "blueGreen", fail="rolled_back"),
        "manual": _run(rollback, app, ns),
        "failed": _run(release, app, ns, "rolling", fail="failed"),
        "ok2": _run(release, app, ns, "rolling", commit_time=commit),
        "backup": _run(backup),
        "backup_failed": _run(backup, fail=True),
    }
    assert [r.state_type.value for r in runs.values()] == [
        "COMPLETED",
        "FAILED",
        "COMPLETED",
        "FAILED",
        "COMPLETED",
        "COMPLETED",
        "FAILED",
    ]
    return {"app": app, "env": ns, "commit": datetime.fromisoformat(commit), "runs": runs}


@pytest.fixture(scope="module")
def exporter(history) -> Iterator[str]:
    """The exporter on a free loopback port, reading the last day, cached for 30 s."""
    port = _free_port()
    server, _ = serve(pipeline_registry(days=1, cache_seconds=30), port)
    yield f"127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def test_exporter_serves_the_apps_series(history, exporter) -> None:
    app, env, runs = history["app"], history["env"], history["runs"]
    got = _scrape(f"http://{exporter}/metrics")
    key = {"app": app, "environment": env}

    assert _get(got, "kyb_metrics_prefect_up") == 1
    assert _get(got, "kyb_metrics_window_days") == 1
    releases = {
        labels: v
        for (name, labels), v in got.items()
        if name == "kyb_releases" and ("app", app) in labels
    }
    assert releases == {
        frozenset({**key, "strategy": s, "result": r}.items()): 1.0
        for s, r in [
            ("canary", "succeeded"),
            ("blueGreen", "rolled_back"),
            ("rolling", "failed"),
            ("rolling", "succeeded"),
        ]
    }
    assert _get(got, "kyb_rollbacks", **key, kind="automatic") == 1
    assert _get(got, "kyb_rollbacks", **key, kind="manual") == 1

    duration = {**key, "strategy": "blueGreen", "result": "rolled_back"}
    seconds = _seconds(runs["rolled_back"])
    assert _get(got, "kyb_release_duration_seconds_gcount", **duration) == 1
    assert _get(got, "kyb_release_duration_seconds_gsum", **duration) == pytest.approx(seconds)
    assert _get(got, "kyb_release_duration_seconds_bucket", **duration, le="30.0") == 1
    assert _get(got, "kyb_release_duration_seconds_bucket", **duration, le="+Inf") == 1

    recoveries = [
        (_ended(runs["manual"]) - _ended(runs["rolled_back"])).total_seconds(),
        (_ended(runs["ok2"]) - _ended(runs["failed"])).total_seconds(),
    ]
    ttr = _get(got, "kyb_time_to_recover_seconds", **key)
    assert ttr == pytest.approx(statistics.median(recoveries))

    envk = {"environment": env}
    assert _get(got, "kyb_dora_change_failure_rate", **envk) == pytest.approx(0.5)
    assert _get(got, "kyb_dora_deployment_frequency_per_day", **envk) == pytest.approx(2.0)
    leads = [(_ended(runs[k]) - history["commit"]).total_seconds() for k in ("ok", "ok2")]
    lead = _get(got, "kyb_dora_lead_time_seconds", **envk)
    assert lead == pytest.approx(statistics.median(leads))

    last_backup = _get(got, "kyb_last_successful_backup_timestamp_seconds")
    assert last_backup is not None
    assert last_backup >= runs["backup"].end_time.timestamp() - 1e-3
    assert last_backup != pytest.approx(runs["backup_failed"].end_time.timestamp(), abs=1e-3)


def test_prometheus_scrapes_the_exporter(platform, history, exporter) -> None:
    prometheus, app = platform.prometheus, history["app"]
    name = f"kyb-pipeline-{app}"
    labels = {"job": "kyb-pipeline-test", "suite": app}
    prometheus.add_target(name, exporter, labels)
    try:
        wait_scraped(prometheus, labels)
        query = f'kyb_releases{{suite="{app}",app="{app}",result="rolled_back"}}'
        deadline = time.monotonic() + 30
        while True:
            resp = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=5)
            result = resp.json()["data"]["result"]
            if result or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(result) == 1
        assert result[0]["metric"]["strategy"] == "blueGreen"
        assert result[0]["metric"]["environment"] == history["env"]
        assert result[0]["value"][1] == "1"
    finally:
        prometheus.remove_target(name)


def test_unreachable_prefect_exposes_only_up_zero(platform) -> None:
    port = _free_port()  # nothing listens there
    api = f"http://127.0.0.1:{port}/api"
    with temporary_settings({PREFECT_API_URL: api, PREFECT_CLIENT_MAX_RETRIES: 0}):
        families = list(PipelineCollector(days=1, cache_seconds=0).collect())
    assert [f.name for f in families] == ["kyb_metrics_prefect_up"]
    assert families[0].samples[0].value == 0

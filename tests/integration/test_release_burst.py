"""A burst of 50 releases, each a flow run of the release deployment run by a worker, all complete.

As in production: separate flow-run processes of one process worker, the deployment's
concurrency limit from prefect.yaml (the rest wait their turn), the platform's Prefect server on
PostgreSQL. On SQLite this burst got "database is locked" answers and releases failed.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from blocks import KubernetesCluster, PrometheusServer, block_ref
from tasks import kube
from tests.integration.release_helpers import V1
from tests.integration.workers import PREFECT, ROOT, deployed, release_limit

BURST = 50
DONE_WITHIN = 900  # 50 flow-run processes on 2 busy cores: about 2-4 minutes here
STOP_WITHIN = 180  # seconds the worker has to end after SIGTERM before it is killed


@pytest.fixture
def pool(platform) -> Any:
    """The release flow deployed on a pool of this test's own, with prefect.yaml's limit."""
    with deployed(("flows/release/flow.py:release",), concurrency_limit=release_limit()) as name:
        yield name


def _stop(worker: subprocess.Popen) -> None:
    """Stop the worker as a supervisor would: TERM, then KILL if it has not ended in time.

    It waits for its last flow-run processes to exit, and those flush their events and logs to a
    server still busy with the burst: on a CI run that took over 60 s after every run had ended.
    """
    worker.terminate()
    try:
        worker.wait(timeout=STOP_WITHIN)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=30)


def _spec(namespace: str, app: str) -> dict[str, Any]:
    return {
        "app": app,
        "namespace": namespace,
        "image": V1,
        "replicas": 1,
        "strategy": {"rolling": {"maxSurge": 1, "maxUnavailable": 0}},
        "firstDeploy": {"analysis": False},
    }


def test_fifty_releases_at_once_through_a_worker_all_complete(
    platform, pool: str, namespace: str, tmp_path: Path
) -> None:
    cluster = KubernetesCluster.load("local")
    refs = {
        "cluster": block_ref(KubernetesCluster, "local"),
        "prometheus": block_ref(PrometheusServer, "local"),
    }
    apps = [f"burst-{i}" for i in range(BURST)]
    with get_client(sync_client=True) as api:
        deployment = api.read_deployment_by_name(f"release/{pool}")
        ids = [
            api.create_flow_run_from_deployment(
                deployment.id, parameters={"spec": _spec(namespace, app), **refs}
            ).id
            for app in apps
        ]
    log = tmp_path / "worker.log"  # a file: 50 runs' logs would fill a pipe and stall it
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", pool],
        cwd=ROOT,
        env={**os.environ, **platform.env(), "PREFECT_WORKER_QUERY_SECONDS": "2"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + DONE_WITHIN
        with get_client(sync_client=True) as api:
            while True:
                runs = api.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=BURST
                )
                if len(runs) == BURST and all(r.state and r.state.is_final() for r in runs):
                    break
                states = sorted(r.state_name or "" for r in runs)
                assert time.monotonic() < deadline, f"not all done in {DONE_WITHIN}s: {states}"
                time.sleep(2)  # bounded by the deadline: the API has no wait for many runs
    finally:
        _stop(worker)
    output = log.read_text()
    ended = {r.name: r.state_name for r in runs}
    assert sorted(set(ended.values())) == ["Completed"], (ended, output[-3000:])
    apps_api = client.AppsV1Api(kube.api_for(cluster))
    live = {d.metadata.name: d for d in apps_api.list_namespaced_deployment(namespace).items}
    for app in apps:
        assert live[app].spec.template.spec.containers[0].image == V1
        assert live[app].status.ready_replicas == 1, app

"""In-cluster runs for tests and benchmarks: deploy the variants, run one, find its Job."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from prefect.client.orchestration import get_client

from blocks import KubernetesCluster, PrometheusServer, block_ref
from sandbox.components.kube_worker import IN_CLUSTER_BLOCK, NAMESPACE
from sandbox.platform import Platform
from tasks import kube
from tests.integration.release_helpers import spec

ROOT = Path(__file__).resolve().parents[2]
RUN_SECONDS = 420  # a Job's pod started, the flow's imports, the release itself


def deploy(platform: Platform, names: list[str]) -> dict[str, str]:
    """`prefect deploy` of prefect.yaml's deployments `names` ("flow/deployment"): name -> id."""
    prefect = Path(sys.executable).parent / "prefect"
    done = subprocess.run(
        [str(prefect), "--no-prompt", "deploy", *[f"--name={n.split('/')[1]}" for n in names]],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env={**platform.env(), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with get_client(sync_client=True) as api:
        return {n: str(api.read_deployment_by_name(n).id) for n in names}


def release_params(namespace: str, image: str, strategy: dict) -> dict[str, Any]:
    """The release flow's parameters for app `web`, through the `in-cluster` cluster block."""
    body = spec(namespace, image, strategy)
    return {
        "spec": body.model_dump(mode="json", by_alias=True, exclude_none=True),
        "cluster": block_ref(KubernetesCluster, IN_CLUSTER_BLOCK),
        "prometheus": block_ref(PrometheusServer, "local"),
    }


def run(deployment_id: str, parameters: dict[str, Any]) -> Any:
    """Start a run of the deployment as the UI would; wait until it is over; the run."""
    with get_client(sync_client=True) as api:
        found = api.create_flow_run_from_deployment(uuid.UUID(deployment_id), parameters=parameters)
        deadline = time.monotonic() + RUN_SECONDS
        while not (found := api.read_flow_run(found.id)).state.is_final():
            assert time.monotonic() < deadline, f"{found.state_name}: {found.state.message}"
            time.sleep(1)  # the API has no watch on a run's state: polled, bounded
    return found


def finished_job(admin: KubernetesCluster, run_id: uuid.UUID) -> tuple[Any, Any]:
    """The run's Job in kyb-system once it is over (its pod exited), and the pod it ran."""
    selector = f"prefect.io/flow-run-id={run_id}"
    api = kube.api_for(admin)
    job = None
    for event in watch.Watch().stream(  # the run reports its end just before its process exits
        client.BatchV1Api(api).list_namespaced_job,
        NAMESPACE,
        label_selector=selector,
        timeout_seconds=120,
    ):
        job = event["object"]
        if job.status.succeeded or job.status.failed:
            break
    assert job is not None and (job.status.succeeded or job.status.failed), job
    pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=selector).items
    return job, pods[0]

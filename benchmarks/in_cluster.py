"""How long an in-cluster flow run waits for its flow: scheduled, Job, pod, flow Running.

Needs `uv run sandbox up kube-worker`. Each round creates a run of `release-in-cluster` (deployed
from prefect.yaml by the test suite's way: `prefect deploy`) that releases a small canary into a
namespace of its own, and reads back from the API and the cluster:

- scheduled: the run's Scheduled state (it was created to start at once);
- job: the Job's creationTimestamp (the worker polled, and created it);
- container: the pod's container startedAt (the pod runner pulled the image and started it);
- running: the run's Running state (the flow's process started, loaded the code and began).

Cold: the worker's Deployment scaled to 0, its containers gone and the image removed from Docker,
so the worker's pod and then the Job's pod pull the image first (a new node's view). Warm: the
image is there and the worker polls. Run: `uv run python -m benchmarks.in_cluster [--rounds N]`.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from datetime import datetime

import docker
from kubernetes import client
from prefect.client.orchestration import get_client
from prefect.settings import temporary_settings

from blocks import KubernetesCluster
from sandbox.components.kube_worker import NAMESPACE, WORKER
from sandbox.platform import Platform
from sandbox.podrunner import POD_NAMESPACE
from tasks import kube
from tests.integration import in_cluster as jobs
from tests.integration import rbac
from tests.integration.release_helpers import V1, V2, Scripted, release_flow, spec

CANARY = {"canary": {"steps": [{"setWeight": 100}]}}
DEPLOYMENT = "release/release-in-cluster"


def _state_time(run_id: uuid.UUID, name: str) -> datetime:
    with get_client(sync_client=True) as api:
        states = api.read_flow_run_states(run_id)
    return min(s.timestamp for s in states if s.name == name)


def _round(admin: KubernetesCluster, deployment: str, namespace: str, image: str) -> dict:
    run = jobs.run(deployment, jobs.release_params(namespace, image, CANARY))
    job, pod = jobs.finished_job(admin, run.id)
    scheduled = _state_time(run.id, "Scheduled")
    started = pod.status.container_statuses[0].state.terminated.started_at
    return {
        "state": run.state_name,
        "job": (job.metadata.creation_timestamp - scheduled).total_seconds(),
        "container": (started - scheduled).total_seconds(),
        "running": (_state_time(run.id, "Running") - scheduled).total_seconds(),
    }


def _cold(platform: Platform, admin: KubernetesCluster, image: str) -> float:
    """The worker stopped and every kyb-system container gone, the image removed: a new node."""
    apps = client.AppsV1Api(kube.api_for(admin))
    apps.patch_namespaced_deployment_scale(WORKER, NAMESPACE, {"spec": {"replicas": 0}})
    dc = docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"], timeout=120)
    mine = {"label": f"{POD_NAMESPACE}={NAMESPACE}"}  # the pod runner's label of the pod's home
    deadline = time.monotonic() + 120
    while dc.containers.list(all=True, filters=mine):
        if time.monotonic() > deadline:
            raise TimeoutError("the worker's container is still there")
        time.sleep(1)  # the pod runner removes it once the pod is gone: polled, bounded
    dc.images.remove(dc.images.get(image).id, force=True)  # every tag of it, its layers
    user, password = platform.registry.credentials()
    started = time.monotonic()  # what a cold pull alone costs, for the figures below
    dc.images.pull(image, auth_config={"username": user, "password": password.get_secret_value()})
    pulled = time.monotonic() - started
    dc.images.remove(dc.images.get(image).id, force=True)
    apps.patch_namespaced_deployment_scale(WORKER, NAMESPACE, {"spec": {"replicas": 1}})
    return pulled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="warm rounds")
    args = parser.parse_args()
    platform = Platform()
    os.environ.update(platform.env())
    with temporary_settings(platform.prefect.client_settings()):
        platform.up(["kube-worker"], say=lambda _msg: None)
        image = platform.kube_worker.image
        admin = KubernetesCluster.load("local")
        core = client.CoreV1Api(kube.api_for(admin))
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": namespace}})
        rbac.bind(admin, "dev", [namespace])
        try:
            deployment = jobs.deploy(platform, [DEPLOYMENT])[DEPLOYMENT]
            assert release_flow(spec(namespace, V1, CANARY), Scripted()).ok
            pull = _cold(platform, admin, image)
            rows = [("cold", _round(admin, deployment, namespace, V2))]
            for i in range(args.rounds):
                rows.append(
                    (f"warm {i + 1}", _round(admin, deployment, namespace, [V1, V2][i % 2]))
                )
        finally:
            rbac.unbind(admin, namespace)
            core.delete_namespace(namespace)
    print("seconds from the run scheduled to: its Job, its container started, the flow Running")
    print(f"{'round':<8} {'job':>6} {'container':>10} {'running':>8}  state")
    for name, row in rows:
        times = f"{row['job']:6.1f} {row['container']:10.1f} {row['running']:8.1f}"
        print(f"{name:<8} {times}  {row['state']}")
    warm = sorted(r["running"] for n, r in rows if n != "cold")
    print(f"cold {rows[0][1]['running']:.1f}s vs warm median {warm[len(warm) // 2]:.1f}s")
    print(f"a cold pull of the image alone: {pull:.1f}s (the worker's pod pulls it first)")
    if pull < 2:  # 193 MB from the registry takes seconds: its layers were still on the machine
        print("  not cold: another local image still holds the image's layers (see docker images)")


if __name__ == "__main__":
    main()

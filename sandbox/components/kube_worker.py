"""The in-cluster work pool: a Prefect Kubernetes worker running as a pod of the main cluster.

`sandbox up kube-worker` (opt-in, like argo-rollouts) builds the pipeline's image if its code or
lock changed (sandbox/pipeline_image.py) and pushes it by digest, then does what a team does on
its own cluster (deploy/worker/): the `kyb-prefect-api` Secret with the API's auth, the
`kyb-kubernetes` pool with deploy/worker/base-job-template.json (its image default: that digest),
the worker's ServiceAccount, Role and Deployment, and the `in-cluster` KubernetesCluster block
(in-cluster configuration: a flow run uses its pod's ServiceAccount). The worker's pod and each
flow run's Job pod carry kyb.dev/run=true, so the pod runner runs them for real.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from sandbox.components import Status
from sandbox.components.prefect_server import PrefectServer
from sandbox.errors import PlatformError
from sandbox.podrunner import RUN_LABEL
from sandbox.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
WORKER_DIR = ROOT / "deploy" / "worker"
TEMPLATE = WORKER_DIR / "base-job-template.json"
MANIFEST = WORKER_DIR / "prefect-worker.yaml"
POOL = "kyb-kubernetes"
NAMESPACE = "kyb-system"
WORKER = "kyb-prefect-worker"
SECRET = "kyb-prefect-api"
IN_CLUSTER_BLOCK = "in-cluster"  # KubernetesCluster(in_cluster=True): a run's own ServiceAccount
READY_SECONDS = 240  # a cold pull of the image by the pod runner, then the worker's start


def job_template(image: str) -> dict[str, Any]:
    """The pool's base job template: the shipped one, its image default set, its pods opted in."""
    template = json.loads(TEMPLATE.read_text())
    template["variables"]["properties"]["image"]["default"] = image
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]
    pod.setdefault("metadata", {}).setdefault("labels", {})[RUN_LABEL] = "true"
    return template


def worker_objects(image: str, api_url: str, auth: str) -> list[dict[str, Any]]:
    """The Secret with the API's auth, then deploy/worker/prefect-worker.yaml filled in.

    Its IMAGE and PREFECT_API_URL set, its pod opted in to the pod runner.
    """
    from sandbox.rbac import load

    objects = copy.deepcopy(load(MANIFEST))
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]
        pod["metadata"]["labels"][RUN_LABEL] = "true"
        [container] = pod["spec"]["containers"]
        container["image"] = image
        for var in container["env"]:
            if var["name"] == "PREFECT_API_URL":
                var["value"] = api_url
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {"auth-string": auth},
    }
    return [secret, *objects]


def ensure_pool(template: dict[str, Any], update: bool) -> None:
    """Create the `kyb-kubernetes` pool with `template` (Prefect's API must be set).

    If it exists, its template is replaced only when `update`: otherwise a pool a team tuned is
    left as it is.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as api:
        try:
            api.create_work_pool(
                WorkPoolCreate(name=POOL, type="kubernetes", base_job_template=template)
            )
        except ObjectAlreadyExists:
            if update:
                api.update_work_pool(POOL, WorkPoolUpdate(base_job_template=template))


class KubeWorker:
    """The `kyb-kubernetes` pool's worker, in the main cluster (see the module's docstring)."""

    name = "kube-worker"

    def __init__(
        self, settings: Settings, prefect: PrefectServer, build: Callable[[], str]
    ) -> None:
        self.settings, self.prefect, self.build = settings, prefect, build
        self.image = ""

    def _apps(self) -> client.AppsV1Api:
        from kubernetes import config

        return client.AppsV1Api(config.new_client_from_config(str(self.settings.kubeconfig)))

    def install(self) -> None:
        """Build the pipeline's image unless the registry has it for this code and lock."""
        self.image = self.build()

    def up(self) -> None:
        """Apply the worker, create or update the pool and the block, wait for the worker."""
        from prefect.settings import temporary_settings

        from blocks import KubernetesCluster
        from sandbox.rbac import MANIFEST as RBAC
        from sandbox.rbac import apply_objects, load

        admin = KubernetesCluster.from_kubeconfig_file(self.settings.kubeconfig)
        auth = self.prefect.auth_string().get_secret_value()
        apply_objects(admin, load(RBAC))  # kyb-system and the environments' ServiceAccounts
        apply_objects(admin, worker_objects(self.image, self.prefect.api_url, auth))
        with temporary_settings(self.prefect.client_settings()):
            ensure_pool(job_template(self.image), update=True)
            KubernetesCluster(in_cluster=True).save(IN_CLUSTER_BLOCK, overwrite=True)
            self._wait_for_worker()

    def _rolled_out(self, seconds: float) -> bool:
        """Watch the worker's Deployment until it runs this image on a ready pod, or time out."""
        from kubernetes import watch

        stream = watch.Watch().stream(
            self._apps().list_namespaced_deployment,
            NAMESPACE,
            field_selector=f"metadata.name={WORKER}",
            timeout_seconds=max(int(seconds), 1),
        )
        for event in stream:
            found = event["object"]
            status = found.status
            current = found.spec.template.spec.containers[0].image == self.image
            if current and (status.updated_replicas or 0) >= 1 and (status.ready_replicas or 0):
                return True
        return False

    def _wait_for_worker(self) -> None:
        """The worker's pod ready (a watch), then a worker of the pool ONLINE in Prefect."""
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + READY_SECONDS
        online = self._rolled_out(READY_SECONDS)
        with get_client(sync_client=True) as api:
            while online and not any(
                w.status == "ONLINE" for w in api.read_workers_for_work_pool(POOL)
            ):
                online = time.monotonic() < deadline
                time.sleep(2)  # Prefect has no watch on a worker's heartbeat: polled, bounded
        if not online:
            raise PlatformError(
                self.name,
                f"no worker of pool {POOL} online within {READY_SECONDS}s",
                f"see `kubectl -n {NAMESPACE} describe pod -l app.kubernetes.io/name={WORKER}`"
                " and the podrunner's log in the state folder",
            )

    def down(self) -> None:
        """Delete the worker's Deployment (the pool, its Jobs' history and the image stay)."""
        if not self.settings.kubeconfig.exists():
            return
        try:
            self._apps().delete_namespaced_deployment(WORKER, NAMESPACE, _request_timeout=10)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        except OSError:  # the cluster is down already
            pass

    def status(self) -> Status:
        """Running when the worker's pod is ready, else stopped."""
        where = f"pool {POOL}, Deployment {NAMESPACE}/{WORKER}"
        try:
            found = self._apps().read_namespaced_deployment(WORKER, NAMESPACE, _request_timeout=5)
        except Exception:  # no cluster, no Deployment: not running either way
            return Status(self.name, "stopped", where)
        ready = found.status.ready_replicas or 0
        image = found.spec.template.spec.containers[0].image
        return Status(self.name, "running" if ready else "stopped", where, f"image {image}")

    def env(self) -> dict[str, str]:
        """Nothing: flows reach it through the Prefect API (deployments of pool kyb-kubernetes)."""
        return {}

"""Faults of the orchestrator itself, injected into a canary release run by a real worker.

A canary of 4 replicas (setWeight 50, pause 30 s, setWeight 100) from V1 to V2, a deployment run
of the release flow on a process pool of its own, with the reconcile flow deployed beside it on
a schedule (every RECONCILE_EVERY s, for this namespace only): what prefect.yaml sets up, minus
the wait. Used by tests/integration/test_orchestrator_faults.py and benchmarks/faults.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from prefect.client.orchestration import get_client

from blocks import KubernetesCluster, PrometheusServer, block_ref
from sandbox.platform import Platform
from tasks import kube
from tests.integration.release_helpers import V1, V2, Scripted, deployments, release_flow, spec
from tests.integration.workers import PREFECT, ROOT, deployed

CANARY = {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": 30}}, {"setWeight": 100}]}}
REPLICAS = 4
RECONCILE_EVERY = 20  # seconds; prefect.yaml runs it every 60
OUTAGE = 90  # seconds the Prefect server is away
CLEAN_WITHIN = 420  # seconds from the fault's end to a clean state


@dataclass
class Scene:
    """One release run under a worker, and what the test does to them."""

    platform: Platform
    cluster: KubernetesCluster
    namespace: str
    pool: str
    log: Path
    worker: subprocess.Popen | None = None
    run_id: str = ""
    marks: dict[str, float] = field(default_factory=dict)

    def start_worker(self) -> None:
        env = {**os.environ, **self.platform.env(), "PREFECT_WORKER_QUERY_SECONDS": "2"}
        self.worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", self.pool],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop_worker(self, sig: int = signal.SIGTERM) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(sig)
            try:
                self.worker.wait(120)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(30)

    def flow_processes(self) -> list[int]:
        """The flow-run processes the worker started (its children)."""
        assert self.worker is not None
        path = Path(f"/proc/{self.worker.pid}/task/{self.worker.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def release(self) -> None:
        """Start the V2 canary as a run of the release deployment."""
        body = spec(self.namespace, V2, CANARY, replicas=REPLICAS)
        params = {
            "spec": body.model_dump(mode="json", by_alias=True, exclude_none=True),
            "cluster": block_ref(KubernetesCluster, "local"),
            "prometheus": block_ref(PrometheusServer, "local"),
        }
        with get_client(sync_client=True) as api:
            deployment = api.read_deployment_by_name(f"release/{self.pool}")
            run = api.create_flow_run_from_deployment(deployment.id, parameters=params)
        self.run_id = str(run.id)

    def wait_canary(self, ready: bool, timeout: float = 180) -> None:
        """Until the V2 canary Deployment exists (ready: and has all its pods ready)."""
        apps = client.AppsV1Api(kube.api_for(self.cluster))
        stream = watch.Watch().stream(
            apps.list_namespaced_deployment,
            self.namespace,
            field_selector="metadata.name=web-canary",
            timeout_seconds=int(timeout),
        )
        for event in stream:
            dep = event["object"]
            image = dep.spec.template.spec.containers[0].image
            want = dep.spec.replicas or 0
            if image == V2 and want and (not ready or (dep.status.ready_replicas or 0) >= want):
                return
        raise AssertionError(
            f"no V2 canary within {timeout}s: {deployments(self.cluster, self.namespace)}"
        )

    def run(self) -> Any:
        with get_client(sync_client=True) as api:
            return api.read_flow_run(uuid.UUID(self.run_id))

    def clean_after(self, since: float, want: str, timeout: float = CLEAN_WITHIN) -> float:
        """Seconds from `since` until the run is over and the cluster serves `want` alone.

        Clean: the run ended (Completed for V2; Failed or Crashed after a rollback to V1), web
        runs `want` at 4 ready replicas, and the canary has none.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = deployments(self.cluster, self.namespace)
            run = self.run()
            served = found.get("web", (None, 0, 0)) == (want, REPLICAS, REPLICAS)
            if run.state.is_final() and served and found.get("web-canary", (V2, 0))[1] == 0:
                return time.monotonic() - since
            assert time.monotonic() < deadline, (run.state_name, run.state.message, found)
            time.sleep(1)  # bounded by the deadline: a run's end and two Deployments to watch


@contextlib.contextmanager
def scene(platform: Platform, tmp: Path) -> Iterator[Scene]:
    """V1 released (in-process), and a pool with release and scheduled reconcile deployments."""
    cluster = KubernetesCluster.load("local")
    core = client.CoreV1Api(kube.api_for(cluster))
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        assert release_flow(spec(namespace, V1, CANARY, replicas=REPLICAS), Scripted()).ok
        flows = ("flows/release/flow.py:release", "flows/reconcile.py:reconcile")
        options = {"interval": RECONCILE_EVERY, "parameters": {"namespaces": [namespace]}}
        with deployed(flows, per_flow={"reconcile": options}) as pool:
            found = Scene(platform, cluster, namespace, pool, tmp / "worker.log")
            found.start_worker()
            try:
                yield found
            finally:
                found.stop_worker()
    finally:
        core.delete_namespace(namespace)


def prefect_away(s: Scene, seconds: float = OUTAGE) -> None:
    """The Prefect server stopped for `seconds`, then started again (its data kept)."""
    s.platform.prefect.down()
    time.sleep(seconds)  # the outage itself
    s.platform.up(["prefect"], say=lambda _msg: None)

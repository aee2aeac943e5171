"""Helpers for release tests: specs, a scripted analysis runner, cluster reads, a resumer thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client, watch
from prefect import flow, resume_flow_run
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType

from blocks import KubernetesCluster
from core.analysis.verdict import Verdict
from core.release.actions import AnalysisPhase
from core.release.observed import Outcome
from core.release.spec import AnalysisRef, ReleaseSpec
from flows.release.flow import perform_release
from tasks import kube

REPO = "127.0.0.1:5001/kyb-platform@sha256:"
V1, V2, V3 = (REPO + ch * 64 for ch in "123")
NOT_READY = {"metadata": {"labels": {"sandbox.kyb.dev/not-ready": "true"}}}


class Scripted:
    """A test double of the analysis protocol (the Prometheus judge is tested on its own).

    answers each template name with a fixed outcome and records every call.
    """

    def __init__(self, outcomes: dict[str, Outcome] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.calls: list[tuple[str, AnalysisPhase]] = []

    def run(
        self, ref: AnalysisRef, phase: AnalysisPhase, spec: ReleaseSpec, key: str = ""
    ) -> Verdict:
        name = ref.names[0]
        self.calls.append((name, phase))
        outcome = self.outcomes.get(name, Outcome.SUCCESSFUL)
        return Verdict(outcome, f"scripted {outcome} for {name}")

    def validate(self, spec: ReleaseSpec) -> None:
        """Every scripted template exists."""


def spec(ns: str, image: str, strategy: dict, replicas: int = 3, **kw) -> ReleaseSpec:
    """A release of app `web`; a first deploy is not analysed unless `firstDeploy` says so.

    Most tests release V1 first only to have a stable version to move from: that is not what
    they test, and its analyses would consume their scripted verdicts.
    """
    kw.setdefault("firstDeploy", {"analysis": False})
    return ReleaseSpec.model_validate(
        {
            "app": "web",
            "namespace": ns,
            "image": image,
            "replicas": replicas,
            "strategy": strategy,
            **kw,
        }
    )


@flow(name="release-under-test")
def release_flow(spec: ReleaseSpec, runner: Scripted):
    """The real release path with a scripted analysis runner injected."""
    return perform_release(spec, KubernetesCluster.load("local"), runner)


def _shapes(items: list) -> dict[str, tuple[str, int, int]]:
    return {
        d.metadata.name: (
            d.spec.template.spec.containers[0].image,
            d.spec.replicas,
            d.status.ready_replicas or 0,
        )
        for d in items
    }


def deployments(cluster: KubernetesCluster, ns: str) -> dict[str, tuple[str, int, int]]:
    """Name -> (image, spec.replicas, readyReplicas) for every Deployment in ns."""
    apps = client.AppsV1Api(kube.api_for(cluster))
    return _shapes(apps.list_namespaced_deployment(ns).items)


def settle(
    cluster: KubernetesCluster, ns: str, want: dict, seconds: int = 30
) -> dict[str, tuple[str, int, int]]:
    """`deployments()` once it equals `want`, or as it is after watching for `seconds`.

    a scale to 0 is written at once, but readyReplicas follows the pods' end, after the flow
    returned.
    """
    apps = client.AppsV1Api(kube.api_for(cluster))
    listed = apps.list_namespaced_deployment(ns)
    found = _shapes(listed.items)
    if found == want:
        return found
    changes = watch.Watch()
    for _ in changes.stream(
        apps.list_namespaced_deployment,
        ns,
        timeout_seconds=seconds,
        resource_version=listed.metadata.resource_version,
    ):
        found = deployments(cluster, ns)
        if found == want:
            changes.stop()
    return found


def selector(cluster: KubernetesCluster, ns: str, service: str) -> dict[str, str]:
    core = client.CoreV1Api(kube.api_for(cluster))
    return dict(core.read_namespaced_service(service, ns).spec.selector)


PAUSED = FlowRunFilter(
    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
)


def resume_when_paused(
    answers: list[dict],
    timeout: float = 120,
    flow_name: str | None = None,
    before: Callable[[], None] | None = None,
) -> threading.Thread:
    """Answer each pause of flow runs started from now on, in turn (another thread, as a human).

    `flow_name` limits it to runs of that flow, so a pause of another test's run (another session
    on the same server) is never answered with this test's input. `before` runs at each pause
    before it is answered (to look at the cluster as the person would).
    """
    since = datetime.now(UTC)
    only = FlowFilter(name=FlowFilterName(any_=[flow_name])) if flow_name else None

    def work() -> None:
        deadline = time.monotonic() + timeout
        pending = list(answers)
        with get_client(sync_client=True) as c:
            while pending and time.monotonic() < deadline:
                runs = c.read_flow_runs(  # paused ones only: scheduled runs (a reconcile
                    flow_filter=only,  # every minute) have no start time and sort first
                    flow_run_filter=PAUSED,
                    limit=20,
                    sort="START_TIME_DESC",
                )
                paused = [
                    r
                    for r in runs
                    if r.state and r.state.is_paused() and r.start_time and r.start_time >= since
                ]
                if paused:
                    if before is not None:
                        before()
                    resume_flow_run(paused[0].id, run_input=pending.pop(0))
                time.sleep(0.5)  # bounded by the deadline: polling for the next pause

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def flow_state(flow_run_id) -> str:
    with get_client(sync_client=True) as c:
        return c.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )[0].state.type.value


def revision(cluster: KubernetesCluster, ns: str, name: str) -> str:
    """The Deployment's `deployment.kubernetes.io/revision`."""
    apps = client.AppsV1Api(kube.api_for(cluster))
    annotations = apps.read_namespaced_deployment(name, ns).metadata.annotations or {}
    return annotations.get("deployment.kubernetes.io/revision", "")


def record_left(cluster: KubernetesCluster, ns: str, app: str = "web") -> dict | None:
    """The run record a release left on the cluster (ConfigMap `<app>-release`), or None."""
    core = client.CoreV1Api(kube.api_for(cluster))
    found = core.list_namespaced_config_map(ns, field_selector=f"metadata.name={app}-release")
    return json.loads(found.items[0].data["record"]) if found.items else None

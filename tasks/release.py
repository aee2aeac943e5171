"""The release's tasks: its run record, what it observes, its Services, pauses and analyses."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from core.analysis.verdict import AnalysisRunner, Verdict
from core.release import layout
from core.release.actions import (
    RunAnalysis,
)
from core.release.history import HISTORY_SUFFIX, History
from core.release.observed import ObservedState, Outcome, RunRecord, WorkloadView
from core.release.spec import ReleaseSpec
from tasks import RETRIES, kube, router


# ---- the run record, kept on the cluster ---------------------------------------------------
def _dump(rec: RunRecord, image: str) -> str:
    return json.dumps(
        {
            "image": image,
            "step_index": rec.step_index,
            "pauses_done": sorted(rec.pauses_done),
            "analyses": {k: v.value for k, v in rec.analyses.items()},
            "promoted": rec.promoted,
            "aborted": rec.aborted,
            "first_deploy": rec.first_deploy,
        }
    )


def _load(text: str, image: str) -> RunRecord:
    data = json.loads(text)
    if data.get("image") != image:
        return RunRecord()  # a record of another release: start fresh
    return RunRecord(
        step_index=data["step_index"],
        pauses_done=frozenset(data["pauses_done"]),
        analyses={k: Outcome(v) for k, v in data["analyses"].items()},
        promoted=data["promoted"],
        aborted=data["aborted"],
        first_deploy=bool(data.get("first_deploy", False)),
    )


def load_record(cluster: KubernetesCluster, spec: ReleaseSpec) -> RunRecord:
    """The record a crashed run of this same release left, or a fresh one.

    Reads here are plain calls, not task runs (a run repeats them at every step); the client
    retries them (tasks.kube.READ_RETRIES).
    """
    data = _record_data(cluster, spec.namespace, spec.app)
    return RunRecord() if data is None else _load(data.get("record", "{}"), spec.image)


def _record_data(cluster: KubernetesCluster, namespace: str, app: str) -> dict[str, str] | None:
    """The data of ConfigMap `<app>-release` (None: no release of `app` is under way)."""
    core = client.CoreV1Api(kube.api_for(cluster))
    try:
        cm = core.read_namespaced_config_map(app + layout.RECORD_SUFFIX, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cm.data or {}


@task(name="release-record-save", cache_policy=NO_CACHE, **RETRIES)
def save_record(cluster: KubernetesCluster, spec: ReleaseSpec, rec: RunRecord | None) -> None:
    """Keep the record on the cluster (None: the release ended, forget it)."""
    name = spec.app + layout.RECORD_SUFFIX
    if rec is None:
        core = client.CoreV1Api(kube.api_for(cluster))
        try:
            core.delete_namespaced_config_map(name, spec.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        return
    kube.apply.fn(
        cluster,
        {  # inside this retrying task
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": spec.namespace, "labels": layout.MANAGED_BY},
            # the spec too: a reconciler finishes or rolls back a crashed run from the cluster alone
            "data": {
                "record": _dump(rec, spec.image),
                "spec": spec.model_dump_json(by_alias=True, exclude_none=True),
            },
        },
    )


def unfinished(cluster: KubernetesCluster, namespace: str, app: str) -> ReleaseSpec | None:
    """The spec of the release of `app` whose run record is still on the cluster (None: none).

    A record without its spec (written before the spec was kept) reads as None: re-run that
    release by hand.
    """
    text = (_record_data(cluster, namespace, app) or {}).get("spec")
    return ReleaseSpec.model_validate_json(text) if text else None


# ---- observing -----------------------------------------------------------------------------
def observe(cluster: KubernetesCluster, spec: ReleaseSpec, rec: RunRecord) -> ObservedState:
    """What the cluster shows for this release's workloads, Services and router, plus the record."""
    api = kube.api_for(cluster)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    workloads = {}
    for track in layout.tracks(spec):
        try:
            dep = apps.read_namespaced_deployment(layout.workload_name(spec, track), spec.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            continue
        workloads[track] = WorkloadView.from_deployment(kube.to_dict(api, dep), spec.container)
    services = {}
    for name in layout.service_names(spec):
        try:
            services[name] = dict(
                core.read_namespaced_service(name, spec.namespace).spec.selector or {}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
    weight = router.read_weight.fn(cluster, spec)  # None without a router
    return ObservedState(workloads=workloads, services=services, canary_weight=weight, record=rec)


@task(name="ensure-services", cache_policy=NO_CACHE, **RETRIES)
def ensure_services(
    cluster: KubernetesCluster, spec: ReleaseSpec, services: list[dict[str, Any]] | None = None
) -> None:
    """Create the release's Services that are missing; never reset an existing selector.

    `services`: the Services to make sure of (default: the pipeline engine's, layout.services).
    """
    core = client.CoreV1Api(kube.api_for(cluster))
    for svc in layout.services(spec) if services is None else services:
        try:
            core.create_namespaced_service(spec.namespace, svc)
        except ApiException as exc:
            if exc.status != 409:  # 409: it exists, and its selector is the truth
                raise


# ---- performing ----------------------------------------------------------------------------
@task(name="pause", cache_policy=NO_CACHE)
def timed_pause(seconds: float, reason: str, cut: threading.Event | None = None) -> bool:
    """A timed pause step.

    wait `seconds` (the step's own duration, bounded by the spec), or less if `cut` is set first (a
    background analysis ended). True if the pause ran its course.
    """
    get_run_logger().info("pausing %ss: %s", round(seconds, 1), reason)
    if cut is None:
        time.sleep(seconds)
        return True
    return not cut.wait(seconds)


@task(name="analysis", cache_policy=NO_CACHE)
def run_analysis(runner: AnalysisRunner, action: RunAnalysis, spec: ReleaseSpec) -> Verdict:
    """Run one analysis through the configured runner and log its verdict."""
    verdict = runner.run(action.ref, action.phase, spec, action.key)
    get_run_logger().info(
        "%s analysis %s: %s (%s)", action.phase, action.key, verdict.outcome, verdict.reason
    )
    return verdict


# ---- the app's release history, read by rollbacks -------------------------------------------
def now_iso() -> str:
    """The current UTC time, to the second, as the history records it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_history(cluster: KubernetesCluster, namespace: str, app: str) -> History | None:
    """The app's release history (ConfigMap `<app>-history`), or None if it has none."""
    core = client.CoreV1Api(kube.api_for(cluster))
    name = app + HISTORY_SUFFIX
    try:
        cm = core.read_namespaced_config_map(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return History.loads((cm.data or {}).get("history", "{}"), f"ConfigMap {namespace}/{name}")


@task(name="release-history-save", cache_policy=NO_CACHE, **RETRIES)
def save_history(cluster: KubernetesCluster, namespace: str, app: str, history: History) -> None:
    """Keep the app's release history on the cluster (server-side apply: idempotent)."""
    kube.apply.fn(
        cluster,
        {  # inside this retrying task
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": app + HISTORY_SUFFIX,
                "namespace": namespace,
                "labels": layout.MANAGED_BY,
            },
            "data": {"history": history.dumps()},
        },
    )


def remember_release(cluster: KubernetesCluster, spec: ReleaseSpec) -> None:
    """Add a successful release to the app's history: its layout, and its image as now serving."""
    found = load_history(cluster, spec.namespace, spec.app) or History()
    save_history(cluster, spec.namespace, spec.app, found.released(spec, now_iso()))

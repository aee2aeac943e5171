"""What `kyb release get` reads from the cluster, through the pipeline's own readers."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from blocks import KubernetesCluster
from cli.output import ExitCode, fail
from core.release.history import History
from core.release.layout import RECORD_SUFFIX
from core.release.observed import Track
from core.release.rollback import AppLayout
from core.release.spec import StrategyKind
from tasks import kube, router
from tasks.release import load_history
from tasks.rollback import observe_app


def load_cluster(name: str) -> KubernetesCluster:
    """The saved KubernetesCluster block `name` (exit 3 naming it when there is none)."""
    try:
        return KubernetesCluster.load(name)
    except ValueError:
        fail(
            f"no KYB Kubernetes Cluster block named {name!r}: give --cluster with a saved one "
            "(prefect block ls)",
            ExitCode.NOT_FOUND,
        )


def _probe_layout(cluster: KubernetesCluster, namespace: str, app: str) -> AppLayout | None:
    """A layout naming every workload the app may have, from whichever of them exists."""
    names = {Track.STABLE: app, **{t: f"{app}-{t.value}" for t in Track if t is not Track.STABLE}}
    for name in names.values():
        found = kube.read_deployment.fn(cluster, namespace, name)
        if found is not None:
            lay = AppLayout.of_deployment(found)
            return dataclasses.replace(lay, app=app, workloads=names)
    return None


def _record(cluster: KubernetesCluster, namespace: str, app: str) -> dict[str, Any] | None:
    """The run record an unfinished release keeps (ConfigMap `<app>-release`), or None."""
    core = client.CoreV1Api(kube.api_for(cluster))
    try:
        cm = core.read_namespaced_config_map(app + RECORD_SUFFIX, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return json.loads((cm.data or {}).get("record") or "{}")


def _weight(cluster: KubernetesCluster, found: History | None) -> int | None:
    """The canary weight on the app's route (None: no router, or it cannot be read)."""
    if found is None or found.spec is None:
        return None
    try:
        return router.read_weight.fn(cluster, found.spec)
    except Exception:  # a missing route or Gateway: the weight is then unknown, not an error
        return None


def pods(cluster: KubernetesCluster, namespace: str) -> list[dict[str, Any]]:
    """Every pod in `namespace` as API JSON."""
    api = kube.api_for(cluster)
    return [
        kube.to_dict(api, p) for p in client.CoreV1Api(api).list_namespaced_pod(namespace).items
    ]


def snapshot(cluster: KubernetesCluster, namespace: str, app: str) -> dict[str, Any] | None:
    """The app's workloads, Services, canary weight, run record and pods; None if it has none."""
    found = load_history.fn(cluster, namespace, app)
    if found is not None and found.spec is not None:
        lay = AppLayout.of_release(found.spec)
    else:
        lay = _probe_layout(cluster, namespace, app)
        if lay is None:
            return None
    state = observe_app.fn(cluster, lay)
    if not state.workloads:
        return None
    spec = found.spec if found is not None else None
    steps = spec.strategy.canary.steps if spec is not None and spec.strategy.canary else ()
    return {
        "kind": str(lay.kind if spec is not None else _kind(state.workloads)),
        "workloads": [
            {"track": t.value, **dataclasses.asdict(v)} for t, v in state.workloads.items()
        ],
        "services": {k: dict(v) for k, v in state.services.items()},
        "route_weight": _weight(cluster, found),
        "steps_total": len(steps) if steps else None,
        "record": _record(cluster, namespace, app),
        "pods": pods(cluster, namespace),
    }


def _kind(workloads: Any) -> StrategyKind:
    """The strategy the existing workloads suggest, when no release history says it."""
    if Track.BLUE in workloads or Track.GREEN in workloads:
        return StrategyKind.BLUE_GREEN
    if Track.CANARY in workloads:
        return StrategyKind.CANARY
    return StrategyKind.ROLLING

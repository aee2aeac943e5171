"""What `kyb release get` reads from the cluster, through the pipeline's own readers."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from blocks import KubernetesCluster
from cli.output import load_saved
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
    return load_saved(KubernetesCluster, name, "--cluster")


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
    found = load_history(cluster, namespace, app)
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


def watch_pods(
    cluster: KubernetesCluster,
    namespace: str,
    on_wake: Callable[[bool], None],
    timeout: float,
    every: float = 2.0,
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    """Watch the namespace's pods until `timeout` or `stopped()`, waking at events and often.

    `on_wake(True)` follows the first list and each pod event, `on_wake(False)` the end of each
    watch request: one request after another, each closed by the server after `every` seconds and
    resumed from the last resourceVersion seen (an expired one, 410, lists again). `stopped` is
    asked at each wake, so a stop is seen within `every` seconds.
    """
    core = client.CoreV1Api(kube.api_for(cluster))
    deadline = time.monotonic() + timeout
    version = core.list_namespaced_pod(namespace, _request_timeout=30).metadata.resource_version
    on_wake(True)  # what changed before the list, since the caller last looked
    while (left := deadline - time.monotonic()) > 0 and not stopped():
        try:
            for event in watch.Watch().stream(
                core.list_namespaced_pod,
                namespace,
                resource_version=version,
                timeout_seconds=max(1, int(min(left, every))),
                _request_timeout=every + 30,
            ):
                version = event["object"].metadata.resource_version
                on_wake(True)
                if time.monotonic() >= deadline or stopped():
                    return
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: the resourceVersion expired; list again
                raise
            listed = core.list_namespaced_pod(namespace, _request_timeout=30)
            version = listed.metadata.resource_version
            on_wake(True)
        on_wake(False)

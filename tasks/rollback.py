"""The rollback's tasks: what the cluster shows of an app's layout, a template restore, a check."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from core.delivery.checks import count_ready
from core.release import layout
from core.release.errors import RollbackFailed
from core.release.observed import WorkloadView
from core.release.revisions import Revision, current_revision, history, rollback_target, undo_patch
from core.release.rollback import AppLayout, AppState, VerifyServing, foreign_pods, labels
from tasks import RETRIES, kube


def _get(read: Any, *args: str) -> Any:
    """`read(*args)`, or None when the object does not exist."""
    try:
        return read(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


@task(name="rollback-observe", cache_policy=NO_CACHE, **RETRIES)
def observe_app(cluster: KubernetesCluster, lay: AppLayout) -> AppState:
    """The app's workloads (with their revisions), Services and any unfinished release record."""
    api = kube.api_for(cluster)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    workloads, revisions, services = {}, {}, {}
    for track, name in lay.workloads.items():
        found = _get(apps.read_namespaced_deployment, name, lay.namespace)
        if found is None:
            continue
        dep = kube.to_dict(api, found)
        workloads[track] = WorkloadView.from_deployment(dep, lay.container)
        selector = labels(dep["spec"]["selector"].get("matchLabels"))
        sets = apps.list_namespaced_replica_set(lay.namespace, label_selector=selector).items
        revisions[track] = tuple(history(dep, [kube.to_dict(api, s) for s in sets]))
    for name in filter(None, (lay.service, lay.preview)):
        svc = _get(core.read_namespaced_service, name, lay.namespace)
        if svc is not None:
            services[name] = dict(svc.spec.selector or {})
    unfinished = None
    cm = _get(core.read_namespaced_config_map, lay.app + layout.RECORD_SUFFIX, lay.namespace)
    if cm is not None:  # a release's run record: that release has not ended
        unfinished = json.loads((cm.data or {}).get("record") or "{}").get("image") or "unknown"
    return AppState(workloads, revisions, services, unfinished)


@task(name="k8s-restore-template", cache_policy=NO_CACHE, **RETRIES)
def restore_template(
    cluster: KubernetesCluster, namespace: str, name: str, template: dict[str, Any]
) -> None:
    """Replace a Deployment's whole pod template (idempotent: the same template every try)."""
    apps = client.AppsV1Api(kube.api_for(cluster))
    patch = [{"op": "replace", "path": "/spec/template", "value": template}]
    apps.patch_namespaced_deployment(
        name, namespace, patch, _content_type="application/json-patch+json"
    )


@task(name="k8s-undo-target", cache_policy=NO_CACHE, **RETRIES)
def undo_target(
    cluster: KubernetesCluster, namespace: str, name: str, to_revision: int = 0
) -> tuple[int, Revision]:
    """(current revision, the revision to go back to) of a Deployment, read once.

    Raises:
        ConfigError: no earlier revision, or to_revision is unknown or the current one.
    """
    api = kube.api_for(cluster)
    apps = client.AppsV1Api(api)
    dep = kube.to_dict(api, apps.read_namespaced_deployment(name, namespace))
    selector = labels(dep["spec"]["selector"]["matchLabels"])
    sets = apps.list_namespaced_replica_set(namespace, label_selector=selector).items
    current = current_revision(dep)
    revisions = history(dep, [kube.to_dict(api, s) for s in sets])
    return current, rollback_target(revisions, current, to_revision)


def undo_once(
    cluster: KubernetesCluster, namespace: str, name: str, to_revision: int = 0
) -> dict[str, Any]:
    """`kubectl rollout undo` with the target decided once, outside the retried write.

    A write whose answer was lost is retried with the same template, so the retry never decides
    "the previous revision" again (which, once the first write applied, is the bad one).

    Returns:
        {"from": revision, "to": revision, "image": image restored}.
    """
    current, target = undo_target(cluster, namespace, name, to_revision)
    restore_template(cluster, namespace, name, undo_patch(target)[0]["value"])
    return {"from": current, "to": target.number, "image": target.image}


def _verdict(pods: dict[str, Any], check: VerifyServing, container: str) -> tuple[bool, str]:
    ready, total = count_ready(pods.values())
    others = foreign_pods(pods.values(), container, check.image)
    text = f"{ready}/{total} pods ready, all of {check.image}"
    if others:
        text = f"{ready}/{total} pods ready; of another image: {', '.join(sorted(others)[:5])}"
    return not others and ready >= check.replicas, text


@task(name="rollback-verify", cache_policy=NO_CACHE, **RETRIES)
def verify_serving(
    cluster: KubernetesCluster,
    namespace: str,
    check: VerifyServing,
    container: str,
    timeout: float = 120.0,
) -> str:
    """Watch the pods `check` selects until all run its image and enough are Ready.

    Returns:
        One line on what the Service selects.

    Raises:
        RollbackFailed: the Service selects other pods, or not enough ready ones, after `timeout`.
    """
    api = kube.api_for(cluster)
    core = client.CoreV1Api(api)
    if check.service:
        live = dict(core.read_namespaced_service(check.service, namespace).spec.selector or {})
        if live != dict(check.selector):
            raise RollbackFailed(
                f"Service {check.service} selects {labels(live)}, not {labels(check.selector)}"
            )
    selector = labels(check.selector)
    ok, text = kube.watch_pods(
        cluster, namespace, selector, lambda pods: _verdict(pods, check, container), timeout
    )
    if ok:
        return text
    where = f"Service {check.service}" if check.service else f"selector {selector}"
    raise RollbackFailed(f"{where} does not select only ready pods of {check.image}: {text}")

"""The `argo` engine's cluster calls: write a Rollout and its templates, follow it, answer it.

Promote and abort are the patches `kubectl argo rollouts promote|abort` sends (merge patches of
the Rollout's status subresource, `spec.paused` on the object), so the controller cannot tell the
flow from a person at a terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from core.errors import ConfigError
from core.release.argo_rollout import GROUP, PLURAL, VERSION, read_status
from core.release.errors import SpecError
from tasks import RETRIES, kube
from tasks.workload import apiserver_message

MERGE = "application/merge-patch+json"
REFUSED = (400, 403, 404, 409, 422)  # what a dry run reports as a permanent refusal
WATCH_SECONDS = 60  # one watch request; the follower opens the next one
# `kubectl argo rollouts` patches, as the plugin sends them (pkg/kubectl-argo-rollouts/cmd)
ABORT = {"status": {"abort": True}}
RETRY = {"status": {"abort": False}}
PROMOTE_FULL = {"status": {"promoteFull": True}}
CLEAR_PAUSES = {"status": {"pauseConditions": None}}


def _objects(cluster: KubernetesCluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api_for(cluster))


@task(name="argo-served", cache_policy=NO_CACHE, **RETRIES)
def check_served(cluster: KubernetesCluster, namespace: str) -> None:
    """Raise ConfigError unless the cluster serves Rollouts (Argo Rollouts is installed).

    Raises:
        ConfigError: no Rollout CRD; says how to install it or to use the pipeline engine.
    """
    try:
        _objects(cluster).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, limit=1, _request_timeout=30
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
        raise ConfigError(
            f"engine argo: the cluster serves no {GROUP}/{VERSION} Rollouts: install Argo "
            "Rollouts (its CRDs and controller), or release with engine pipeline; nothing was "
            "changed",
            namespace=namespace,
        ) from None


def _read(cluster: KubernetesCluster, plural: str, meta: dict[str, Any]) -> dict[str, Any]:
    return _objects(cluster).get_namespaced_custom_object(
        GROUP, VERSION, meta["namespace"], plural, meta["name"], _request_timeout=30
    )


def _apply(cluster: KubernetesCluster, plural: str, body: dict[str, Any], dry: bool) -> dict:
    meta = body["metadata"]
    try:
        stored = _objects(cluster).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            meta["namespace"],
            plural,
            meta["name"],
            body,
            field_manager=kube.FIELD_MANAGER,
            force=True,
            dry_run="All" if dry else None,
            _content_type=kube.APPLY,
            _request_timeout=30,
        )
        if stored is None:  # 201 Created: the client reads no body for it; read what was stored
            stored = {"metadata": meta} if dry else _read(cluster, plural, meta)
        return stored
    except ApiException as exc:
        if not dry or exc.status not in REFUSED:
            raise
        raise SpecError(
            f"the cluster refused {body['kind']} {meta['namespace']}/{meta['name']} in a dry "
            f"run: {apiserver_message(exc)}; nothing was changed",
        ) from None


@task(name="argo-dry-run", cache_policy=NO_CACHE, **RETRIES)
def dry_run(
    cluster: KubernetesCluster, rollout: dict[str, Any], templates: list[dict[str, Any]]
) -> None:
    """Server-side dry run of the templates and the Rollout, before any write.

    Raises:
        SpecError: the apiserver refused one; the message is its own.
    """
    for doc in templates:
        _apply(cluster, "analysistemplates", doc, dry=True)
    _apply(cluster, PLURAL, rollout, dry=True)


@task(name="argo-write-templates", cache_policy=NO_CACHE, **RETRIES)
def write_templates(cluster: KubernetesCluster, templates: list[dict[str, Any]]) -> list[str]:
    """Server-side apply AnalysisTemplates (idempotent); return their names."""
    return [
        _apply(cluster, "analysistemplates", d, dry=False)["metadata"]["name"] for d in templates
    ]


@task(name="argo-write-rollout", cache_policy=NO_CACHE, **RETRIES)
def write_rollout(cluster: KubernetesCluster, rollout: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply the Rollout (idempotent); return it as the apiserver stored it."""
    return _apply(cluster, PLURAL, rollout, dry=False)


@task(name="argo-read-rollout", cache_policy=NO_CACHE, **RETRIES)
def read_rollout(cluster: KubernetesCluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The Rollout, or None when there is none."""
    try:
        return _objects(cluster).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=30
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _patch_status(cluster: KubernetesCluster, namespace: str, name: str, body: dict) -> None:
    _objects(cluster).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, body, _content_type=MERGE, _request_timeout=30
    )


@task(name="argo-abort", cache_policy=NO_CACHE, **RETRIES)
def abort(cluster: KubernetesCluster, namespace: str, name: str) -> None:
    """`kubectl argo rollouts abort`: the controller moves all traffic back to stable."""
    _patch_status(cluster, namespace, name, ABORT)


@task(name="argo-retry", cache_policy=NO_CACHE, **RETRIES)
def retry(cluster: KubernetesCluster, namespace: str, name: str) -> None:
    """`kubectl argo rollouts retry rollout`: an aborted Rollout tries its update again."""
    _patch_status(cluster, namespace, name, RETRY)


@task(name="argo-promote", cache_policy=NO_CACHE, **RETRIES)
def promote(cluster: KubernetesCluster, namespace: str, name: str, full: bool = False) -> None:
    """`kubectl argo rollouts promote [--full]`: past the pause (or every step, with full)."""
    live = _objects(cluster).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, _request_timeout=30
    )
    status = read_status(live)
    if (live.get("spec") or {}).get("paused"):
        _objects(cluster).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"spec": {"paused": False}},
            _content_type=MERGE,
            _request_timeout=30,
        )
    if full:
        if status.current != status.stable:
            _patch_status(cluster, namespace, name, PROMOTE_FULL)
        return
    if status.human_pause == "InconclusiveAnalysisRun" and status.step is not None:
        nxt = min(status.step + 1, status.steps)
        body = {"status": {"pauseConditions": None, "controllerPause": False}}
        body["status"]["currentStepIndex"] = nxt
        _patch_status(cluster, namespace, name, body)
    elif status.pauses:
        _patch_status(cluster, namespace, name, CLEAR_PAUSES)


def follow(
    cluster: KubernetesCluster, namespace: str, name: str, resource_version: str | None
) -> Iterator[dict[str, Any]]:
    """The Rollout each time it changes, from `resource_version` on, for one watch request.

    Ends after WATCH_SECONDS (the caller opens the next one with the last version it saw); a
    410 Gone (the version is too old) ends it at once, so the caller reads the Rollout afresh.
    """
    stream = watch.Watch().stream(
        _objects(cluster).list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        field_selector=f"metadata.name={name}",
        resource_version=resource_version,
        timeout_seconds=WATCH_SECONDS,
        _request_timeout=WATCH_SECONDS + 30,
    )
    try:
        for event in stream:
            if event.get("type") in ("ADDED", "MODIFIED") and isinstance(event["object"], dict):
                yield event["object"]
    except ApiException as exc:
        if exc.status != 410:
            raise


@task(name="argo-analysis-runs", cache_policy=NO_CACHE, **RETRIES)
def analysis_runs(cluster: KubernetesCluster, namespace: str, uid: str) -> list[dict[str, Any]]:
    """The AnalysisRuns the Rollout with `uid` started, oldest first."""
    found = _objects(cluster).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "analysisruns", _request_timeout=30
    )
    mine = [
        run
        for run in found.get("items") or []
        if any(o.get("uid") == uid for o in run["metadata"].get("ownerReferences") or ())
    ]
    return sorted(mine, key=lambda r: r["metadata"].get("creationTimestamp") or "")


@task(name="argo-replica-sets", cache_policy=NO_CACHE, **RETRIES)
def replica_sets(cluster: KubernetesCluster, namespace: str, uid: str) -> list[dict[str, Any]]:
    """The Rollout's ReplicaSets (its revisions), as API JSON, newest revision last."""
    api = kube.api_for(cluster)
    found = client.AppsV1Api(api).list_namespaced_replica_set(namespace, _request_timeout=30)
    mine = [
        kube.to_dict(api, rs)
        for rs in found.items
        if any(o.uid == uid for o in rs.metadata.owner_references or ())
    ]
    return sorted(mine, key=revision)


def revision(rs: dict[str, Any]) -> int:
    """A Rollout ReplicaSet's revision (its `rollout.argoproj.io/revision`; 0 if unset)."""
    return int((rs["metadata"].get("annotations") or {}).get("rollout.argoproj.io/revision", 0))


@task(name="argo-undo", cache_policy=NO_CACHE, **RETRIES)
def set_template(
    cluster: KubernetesCluster, namespace: str, name: str, template: dict[str, Any]
) -> int:
    """`kubectl argo rollouts undo`: the Rollout's pod template replaced; its new generation."""
    patch = [{"op": "replace", "path": "/spec/template", "value": template}]
    stored = _objects(cluster).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        patch,
        _content_type="application/json-patch+json",
        _request_timeout=30,
    )
    return int(stored["metadata"]["generation"])

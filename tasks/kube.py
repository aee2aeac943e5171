"""The Kubernetes boundary: idempotent writes, reads, and waits on the watch API."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from core.errors import ConfigError
from core.release.errors import RolloutTimeout
from core.release.status import RolloutState, rollout_state
from tasks import RETRIES, TRANSIENT_STATUS

FIELD_MANAGER = "kyb-pipeline"
APPLY = "application/apply-patch+yaml"
# Connections kept open to one apiserver, shared by the process's threads (the client's default is
# 5 per CPU, 10 here): with 20 releases at once it discarded connections and redid TLS handshakes.
POOL_SIZE = 32
# The pipeline's reads that are no task runs of their own (a release observes its workloads at
# every step: a task run each bought nothing but three events on the Prefect server) are retried
# here, by urllib3, like the retrying tasks: a refused connection (nothing was sent, so any method)
# and a transient answer to a GET, 7 times 0.5-1-2-4-8-16-32 s apart, about a minute. Writes
# answered 5xx are left to their task's retries, which know whether a write is idempotent.
READ_RETRIES = urllib3.Retry(
    total=7,
    connect=7,
    read=2,
    status=7,
    other=0,
    backoff_factor=0.5,
    backoff_max=32,
    status_forcelist=TRANSIENT_STATUS - {409},
    allowed_methods=frozenset({"GET", "HEAD"}),
    raise_on_status=False,
    respect_retry_after_header=True,
)
_clients: dict[str, ApiClient] = {}
T = TypeVar("T")


def api_for(cluster: KubernetesCluster) -> ApiClient:
    """One ApiClient per cluster configuration for this process (built from the block in memory)."""
    secret = cluster.kubeconfig.get_secret_value() if cluster.kubeconfig else "in-cluster"
    key = hashlib.sha256(
        f"{secret}\0{cluster.context}\0{cluster.request_timeout}".encode()
    ).hexdigest()
    if key not in _clients:
        api = cluster.api_client(pool_size=POOL_SIZE, retries=READ_RETRIES)
        _clients[key] = api
    return _clients[key]


def to_dict(api: ApiClient, obj: Any) -> dict[str, Any]:
    """A client model as API JSON (camelCase), the form the pure core reads."""
    return api.sanitize_for_serialization(obj)


@task(name="k8s-apply", cache_policy=NO_CACHE, **RETRIES)
def apply(cluster: KubernetesCluster, manifest: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply a Deployment, Service or ConfigMap (idempotent); return the live object."""
    api = api_for(cluster)
    kind, meta = manifest.get("kind"), manifest.get("metadata", {})
    name, ns = meta.get("name"), meta.get("namespace") or cluster.namespace
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    writers = {
        "Deployment": apps.patch_namespaced_deployment,
        "Service": core.patch_namespaced_service,
        "ConfigMap": core.patch_namespaced_config_map,
    }
    if kind not in writers or not name:
        raise ConfigError(f"cannot apply kind {kind!r}: give a name and one of {sorted(writers)}")
    live = writers[kind](
        name, ns, manifest, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY
    )
    return to_dict(api, live)


@task(name="k8s-apply-objects", cache_policy=NO_CACHE, **RETRIES)
def apply_objects(cluster: KubernetesCluster, objects: list[dict[str, Any]]) -> list[str]:
    """Server-side apply any objects, Namespaces first; idempotent.

    Server-side apply any objects (an overlay's Namespace, ConfigMap, Secret, HPA, ...),
    Namespaces first; idempotent. Returns "Kind namespace/name" for each object applied.
    """
    dyn = DynamicClient(api_for(cluster))
    done = []
    for obj in sorted(objects, key=lambda o: o.get("kind") != "Namespace"):
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        resource = dyn.resources.get(api_version=obj.get("apiVersion"), kind=kind)
        ns = (meta.get("namespace") or cluster.namespace) if resource.namespaced else None
        body = {**obj, "metadata": {**meta, **({"namespace": ns} if ns else {})}}
        dyn.server_side_apply(
            resource, body=body, namespace=ns, field_manager=FIELD_MANAGER, force_conflicts=True
        )
        done.append(f"{kind} {ns + '/' if ns else ''}{meta.get('name')}")
    return done


@task(name="k8s-scale", cache_policy=NO_CACHE, **RETRIES)
def scale(cluster: KubernetesCluster, namespace: str, name: str, replicas: int) -> None:
    """Set a Deployment's replica count through its scale subresource (idempotent)."""
    apps = client.AppsV1Api(api_for(cluster))
    apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})


@task(name="k8s-switch-selector", cache_policy=NO_CACHE, **RETRIES)
def switch_selector(
    cluster: KubernetesCluster, namespace: str, service: str, selector: dict[str, str]
) -> None:
    """Replace a Service's whole selector (not merge), so traffic goes where selector points."""
    core = client.CoreV1Api(api_for(cluster))
    patch = [{"op": "replace", "path": "/spec/selector", "value": selector}]
    core.patch_namespaced_service(
        service, namespace, patch, _content_type="application/json-patch+json"
    )


@task(name="k8s-read-deployment", cache_policy=NO_CACHE, **RETRIES)
def read_deployment(cluster: KubernetesCluster, namespace: str, name: str) -> dict | None:
    """The Deployment as API JSON, or None when it does not exist."""
    api = api_for(cluster)
    try:
        return to_dict(api, client.AppsV1Api(api).read_namespaced_deployment(name, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def watch_pods(
    cluster: KubernetesCluster,
    namespace: str,
    selector: str,
    judge: Callable[[dict[str, dict[str, Any]]], tuple[bool, T]],
    timeout: float,
) -> tuple[bool, T]:
    """List the pods `selector` matches, then watch them until `judge(pods)` says done.

    `pods` maps names to API JSON; the last judgement is returned when `timeout` runs out. An
    expired resourceVersion (410) lists again.
    """
    api = api_for(cluster)
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    verdict = judge({})
    while (left := deadline - time.monotonic()) > 0:
        listed = core.list_namespaced_pod(namespace, label_selector=selector)
        pods = {p.metadata.name: to_dict(api, p) for p in listed.items}
        if (verdict := judge(pods))[0]:
            return verdict
        stream = watch.Watch().stream(
            core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=max(1, int(min(left, 60))),
        )
        try:
            for event in stream:
                pod = to_dict(api, event["object"])
                if event["type"] == "DELETED":
                    pods.pop(pod["metadata"]["name"], None)
                else:
                    pods[pod["metadata"]["name"]] = pod
                if (verdict := judge(pods))[0] or time.monotonic() >= deadline:
                    return verdict
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: the resourceVersion expired; list again
                raise
    return verdict


def wait_for_rollout(
    api: ApiClient,
    namespace: str,
    name: str,
    timeout: float = 600,
    seen: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[RolloutState, str]:
    """Watch a Deployment until its rollout completes or exceeds its progress deadline.

    Args:
        api: a configured kubernetes ApiClient (see api_for).
        namespace: the Deployment's namespace.
        name: the Deployment's name.
        timeout: seconds to wait in all.
        seen: called with the Deployment (API JSON) at every read and watch event, to report
            progress from what the watch already shows.

    Returns:
        (COMPLETE or DEADLINE_EXCEEDED, the reason in one line).

    Raises:
        RolloutTimeout: neither happened in time.
    """
    apps = client.AppsV1Api(api)
    deadline = time.monotonic() + timeout
    reason = "no status yet"
    while (left := deadline - time.monotonic()) > 0:
        current = apps.read_namespaced_deployment(name, namespace)
        state, reason = rollout_state(_seen(seen, to_dict(api, current)))
        if state is not RolloutState.PROGRESSING:
            return state, reason
        stream = watch.Watch().stream(
            apps.list_namespaced_deployment,
            namespace,
            field_selector=f"metadata.name={name}",
            resource_version=current.metadata.resource_version,
            timeout_seconds=max(1, int(min(left, 60))),
        )
        try:
            for event in stream:
                state, reason = rollout_state(_seen(seen, to_dict(api, event["object"])))
                if state is not RolloutState.PROGRESSING:
                    return state, reason
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: our resourceVersion expired; read again and re-watch
                raise
    raise RolloutTimeout(
        f"rollout still progressing after {timeout:.0f}s: {reason}",
        namespace=namespace,
        deployment=name,
    )


def _seen(
    seen: Callable[[dict[str, Any]], None] | None, deployment: dict[str, Any]
) -> dict[str, Any]:
    if seen is not None:
        seen(deployment)
    return deployment


@task(name="k8s-wait-rollout", cache_policy=NO_CACHE, **RETRIES)
def wait_rollout(
    cluster: KubernetesCluster,
    namespace: str,
    name: str,
    timeout: float = 600,
    seen: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[RolloutState, str]:
    """Task form of wait_for_rollout (a dropped watch or apiserver restart is retried)."""
    return wait_for_rollout(api_for(cluster), namespace, name, timeout, seen)

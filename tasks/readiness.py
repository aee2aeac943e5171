"""Readiness of a new version's pods, read from their Ready condition (list, then watch)."""

from __future__ import annotations

import time

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from core.delivery.checks import count_ready
from core.delivery.errors import EndpointsNotReady
from core.errors import ConfigError
from tasks import RETRIES
from tasks.kube import api_for, to_dict


def _label_selector(selector: dict[str, str]) -> str:
    if not selector:
        raise ConfigError("give a non-empty label selector: an empty one matches every pod")
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


@task(name="endpoints-ready", cache_policy=NO_CACHE, **RETRIES)
def endpoints_ready(
    cluster: KubernetesCluster, namespace: str, selector: dict[str, str]
) -> tuple[int, int]:
    """(Ready pods, pods) matching the selector, terminating pods left out.

    Readiness of the new version's endpoints is read from its pods' Ready condition, which is
    what puts a pod into a Service's EndpointSlices.
    """
    api = api_for(cluster)
    pods = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=_label_selector(selector)
    )
    return count_ready(to_dict(api, p) for p in pods.items)


@task(name="wait-endpoints-ready", cache_policy=NO_CACHE, **RETRIES)
def wait_endpoints_ready(
    cluster: KubernetesCluster,
    namespace: str,
    selector: dict[str, str],
    want: int,
    timeout_seconds: float = 300.0,
) -> tuple[int, int]:
    """Watch pods matching the selector until `want` of them are Ready (and not terminating).

    Readiness is read from the pods' Ready condition, as in endpoints_ready (the sandbox's
    EndpointSlices stay empty). A dropped watch or an apiserver restart is retried.

    Args:
        cluster: the cluster block.
        namespace: the pods' namespace.
        selector: the new version's pod labels, e.g. {"app": "web", "track": "canary"}.
        want: how many Ready pods are enough.
        timeout_seconds: seconds to wait in all.

    Returns:
        (Ready pods, pods) when enough were Ready.

    Raises:
        EndpointsNotReady: fewer than `want` were Ready in time.
    """
    labels = _label_selector(selector)
    if want < 0 or not timeout_seconds > 0:
        raise ConfigError(f"want >= 0 and timeout_seconds > 0, not {want} and {timeout_seconds}")
    api = api_for(cluster)
    pods_api = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout_seconds
    ready = total = 0
    while (left := deadline - time.monotonic()) > 0:
        listed = pods_api.list_namespaced_pod(namespace, label_selector=labels)
        pods = {p.metadata.name: to_dict(api, p) for p in listed.items}
        ready, total = count_ready(pods.values())
        if ready >= want:
            return ready, total
        stream = watch.Watch().stream(
            pods_api.list_namespaced_pod,
            namespace,
            label_selector=labels,
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
                ready, total = count_ready(pods.values())
                if ready >= want:
                    return ready, total
                if time.monotonic() >= deadline:
                    break
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: our resourceVersion expired; list again and re-watch
                raise
    raise EndpointsNotReady(
        f"only {ready} of the {want} wanted pods are Ready after {timeout_seconds:.0f}s "
        f"({total} pods match): see the pods' events and readiness probes",
        namespace=namespace,
        selector=labels,
    )

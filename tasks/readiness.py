"""Readiness of a new version's pods, read from their Ready condition (list, then watch)."""

from __future__ import annotations

from kubernetes import client
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from core.delivery.checks import count_ready
from core.delivery.errors import EndpointsNotReady
from core.errors import ConfigError
from tasks import RETRIES
from tasks.kube import api_for, to_dict, watch_pods


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
    ok, (ready, total) = watch_pods(
        cluster,
        namespace,
        labels,
        lambda pods: ((counted := count_ready(pods.values()))[0] >= want, counted),
        timeout_seconds,
    )
    if ok:
        return ready, total
    raise EndpointsNotReady(
        f"only {ready} of the {want} wanted pods are Ready after {timeout_seconds:.0f}s "
        f"({total} pods match): see the pods' events and readiness probes",
        namespace=namespace,
        selector=labels,
    )

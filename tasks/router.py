"""The Gateway API traffic router: read and set a canary's weight on the user's HTTPRoute."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from core.errors import ConfigError, TransientError
from core.release import route
from core.release.spec import GatewayApiRouting, ReleaseSpec
from tasks import RETRIES, kube

SERVED_TIMEOUT = 30.0  # seconds for the Gateway to report the new generation of the route
POLL = 0.1  # seconds between reads of the route's status while waiting (bounded by the above)
# A Gateway reports Accepted/ResolvedRefs when its control plane took the route; the data plane
# follows (Traefik: its providers' throttle, 200 ms here, then a new router). Gateway API has no
# route condition for "programmed", so the weight is given this long to reach the data plane.
PROPAGATION = 1.0


def routing(spec: ReleaseSpec) -> GatewayApiRouting | None:
    """The spec's gatewayAPI router, or None (no router, or another kind)."""
    canary = spec.strategy.canary
    found = canary.traffic_routing if canary else None
    return found if isinstance(found, GatewayApiRouting) else None


def _where(spec: ReleaseSpec) -> tuple[str, str, str, str]:
    """(namespace, route, stable Service, canary Service) of a gatewayAPI-routed spec."""
    router, canary = routing(spec), spec.strategy.canary
    if router is None or canary is None or not (canary.stable_service and canary.canary_service):
        raise ConfigError("this release has no gatewayAPI traffic router", app=spec.app)
    return (
        router.namespace or spec.namespace,
        router.http_route,
        canary.stable_service,
        canary.canary_service,
    )


def _read(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    objects = client.CustomObjectsApi(api)
    try:
        return objects.get_namespaced_custom_object(
            route.GROUP, route.VERSION, namespace, route.PLURAL, name
        )
    except ApiException as exc:
        if exc.status == 404:
            raise ConfigError(
                f"HTTPRoute {namespace}/{name} (trafficRouting's httpRoute) does not exist: "
                "ship it with the environment, its backendRefs naming the stable and canary "
                "Services",
                namespace=namespace,
            ) from exc
        raise


@task(name="router-check", cache_policy=NO_CACHE, **RETRIES)
def check_route(cluster: KubernetesCluster, spec: ReleaseSpec) -> int:
    """Refuse a missing route or one not naming both Services; return its canary weight."""
    namespace, name, stable, canary = _where(spec)
    found = _read(kube.api_for(cluster), namespace, name)
    return route.canary_weight(found, stable, canary)


@task(name="router-weight", cache_policy=NO_CACHE, **RETRIES)
def read_weight(cluster: KubernetesCluster, spec: ReleaseSpec) -> int | None:
    """The canary's weight on the route (None: the spec has no gatewayAPI router)."""
    if routing(spec) is None:
        return None
    return check_route.fn(cluster, spec)


@task(name="router-set-weight", cache_policy=NO_CACHE, **RETRIES)
def set_weight(cluster: KubernetesCluster, spec: ReleaseSpec, weight: int) -> str:
    """Set stable 100 - weight, canary weight on the route; wait until the Gateway serves it.

    Returns:
        One line for the journal: the weights and how long the Gateway took to take them.

    Raises:
        ConfigError: the route is missing, names not both Services, or its Gateway refuses it.
        TransientError: the Gateway did not report the change within SERVED_TIMEOUT (retried).
    """
    namespace, name, stable, canary = _where(spec)
    api = kube.api_for(cluster)
    found = _read(api, namespace, name)
    patch = route.weight_patch(found, stable, canary, weight)
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        route.GROUP,
        route.VERSION,
        namespace,
        route.PLURAL,
        name,
        patch,
        _content_type="application/json-patch+json",
    )
    started = time.monotonic()
    while True:
        ok, why = route.served(_read(api, namespace, name))
        if ok:
            break
        if time.monotonic() - started > SERVED_TIMEOUT:
            raise TransientError(f"HTTPRoute {namespace}/{name}: {why} after {SERVED_TIMEOUT}s")
        time.sleep(POLL)  # bounded by SERVED_TIMEOUT; the role grants get, not watch, on routes
    taken = time.monotonic() - started
    time.sleep(PROPAGATION)
    note = (
        f"HTTPRoute {namespace}/{name}: {stable} {100 - weight}, {canary} {weight}, "
        f"accepted after {taken:.2f}s (+{PROPAGATION:.0f}s for the data plane)"
    )
    get_run_logger().info(note)
    return note

"""The Kubernetes boundary: wait on rollouts with the watch API (no sleep loops)."""

from __future__ import annotations

import time

from kubernetes import client, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from core.errors import PipelineError
from core.rollout import RolloutState, rollout_state


class RolloutTimeout(PipelineError):
    """The rollout neither completed nor failed within the time we were willing to wait."""


def wait_for_rollout(
    api: ApiClient, namespace: str, name: str, timeout: float = 600
) -> tuple[RolloutState, str]:
    """Watch a Deployment until its rollout completes or exceeds its progress deadline.

    Args:
        api: a configured kubernetes ApiClient (from the cluster block).
        namespace: the Deployment's namespace.
        name: the Deployment's name.
        timeout: seconds to wait in all.

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
        state, reason = rollout_state(api.sanitize_for_serialization(current))
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
                state, reason = rollout_state(api.sanitize_for_serialization(event["object"]))
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

"""The manual `rollback` flow: a Deployment back to its previous (or a given) revision, verified."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.concurrency.sync import concurrency

from blocks import KubernetesCluster
from core.errors import ConfigError
from core.release.errors import RollbackFailed
from core.release.status import RolloutState
from flows.hooks import on_release_failure, on_rollback
from flows.release.flow import ensure_limit, lock_name
from tasks import kube
from tasks.health import check_health

HEALTH_BUDGET = 60.0  # seconds the rolled-back version has to report healthy, retries included


def _verify_health(health_url: str) -> dict[str, Any]:
    """Check the /health contract at `health_url` (retrying 5xx and connection errors)."""
    parts = urlsplit(health_url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    base = f"{parts.scheme}://{parts.netloc}"
    result = check_health(base, budget_seconds=HEALTH_BUDGET, path=path or "/health")
    if not result.ok:
        raise RollbackFailed(
            f"rolled back, but {health_url} is not healthy: {result.reason} "
            f"({result.attempts} attempts in {result.seconds:.1f}s)"
        )
    return {"status": "healthy", **result.model_dump()}


@flow(
    name="rollback",
    on_completion=[on_rollback],
    on_failure=[on_release_failure],
    on_crashed=[on_release_failure],
)
def rollback(
    app: str,
    namespace: str,
    to_revision: int = 0,
    cluster_block: str = "local",
    health_url: str = "",
) -> dict[str, Any]:
    """Roll `app`'s Deployment back, as the seed's rollback.sh does, then verify it is healthy.

    Args:
        app: the Deployment (the stable workload of rolling and canary releases).
        namespace: its namespace.
        to_revision: 0 for the previous revision, or a revision number from its history.
        cluster_block: name of the KYB Kubernetes Cluster block.
        health_url: optional loopback URL answering the /health contract after the rollback.
    """
    log = get_run_logger()
    cluster = KubernetesCluster.load(cluster_block)
    name = lock_name(app, namespace)  # the same lock as releases: never interleave with one
    ensure_limit(name)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=1800, lease_duration=60):
        if kube.read_deployment(cluster, namespace, app) is None:
            raise ConfigError(f"no Deployment {app!r} in namespace {namespace!r}: check the names")
        undone = kube.undo(cluster, namespace, app, to_revision)
        state, why = kube.wait_rollout(cluster, namespace, app, 600)
    if state is not RolloutState.COMPLETE:
        raise RollbackFailed(f"rollback to revision {undone['to']} did not complete: {why}")
    health = _verify_health(health_url) if health_url else None
    summary = (
        f"{app} rolled back from revision {undone['from']} to {undone['to']} "
        f"({undone['image']}): {why}"
    )
    report = f"# Rollback of `{app}` in `{namespace}`\n\n{summary}\n\nHealth: {health or '-'}"
    create_markdown_artifact(report, key=f"rollback-{app}")
    log.info(summary)
    return {**undone, "summary": summary, "health": health}

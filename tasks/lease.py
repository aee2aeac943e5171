"""The per-app release lock: a `coordination.k8s.io` Lease in the app's namespace.

One release or rollback of an app at a time. The lock lives in the cluster it protects, as a
controller's leader lock does: it needs no Prefect server (losing the server cannot cancel a
release through its lease), a Lease whose holder stopped renewing it (a killed worker, a crashed
flow process) is taken over LEASE_SECONDS after its last renewal, and `kubectl get lease -n <ns>`
shows who holds it. A run re-run with the same flow run id takes its own lock back at once.

Expiry compares the Lease's renewTime with this machine's clock, as Kubernetes' node leases do:
the clocks of the machines that run flows are assumed to be NTP-synchronised within seconds.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from logging import Logger, LoggerAdapter
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_logger, get_run_logger

from blocks import KubernetesCluster
from core.release.errors import LockLost, ReleaseLocked
from tasks import is_transient
from tasks.kube import api_for

LEASE_SECONDS = 60  # a holder that has not renewed for this long is gone; its lock may be taken
RENEW_SECONDS = 15  # four renewals per lease: an apiserver restart between two loses nothing
MANAGED_BY = "kyb-pipeline"
logger = get_logger("kyb.lease")


class Held:
    """A lock this run holds; `check()` raises once it went to another run."""

    def __init__(self, namespace: str, app: str, holder: str, log: Logger | LoggerAdapter) -> None:
        self.namespace, self.app, self.holder, self.log = namespace, app, holder, log
        self.lost = ""

    def check(self) -> None:
        """Raise LockLost if another run took the lock over (never write after that)."""
        if self.lost:
            raise LockLost(self.lost, namespace=self.namespace, app=self.app)


_held: ContextVar[Held | None] = ContextVar("kyb_held_lease", default=None)


def lease_name(app: str) -> str:
    """The Lease that serialises the releases and rollbacks of `app` in its namespace."""
    return f"kyb-release-{app}"


def run_logger() -> Logger | LoggerAdapter:
    """The flow run's logger (its lines reach the Prefect UI), else this module's."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logger


def holder_identity() -> str:
    """Who holds the lock: the flow run (the same after a re-run), else this process."""
    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow_run is not None:
        return f"flow-run/{ctx.flow_run.id}"
    return f"process/{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _stamp(at: datetime | None = None) -> str:
    """A MicroTime as the apiserver writes it."""
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def free_at(lease: client.V1Lease) -> float:
    """When (epoch seconds) the lease is free for another holder: 0 if it is free already."""
    spec = lease.spec
    if spec is None or not spec.holder_identity or spec.renew_time is None:
        return 0.0
    return spec.renew_time.timestamp() + (spec.lease_duration_seconds or LEASE_SECONDS)


def holder(cluster: KubernetesCluster, namespace: str, app: str) -> tuple[str, float]:
    """Who holds the app's lock and until when (epoch seconds): ("", 0) when nobody does."""
    leases = client.CoordinationV1Api(api_for(cluster))
    try:
        found = leases.read_namespaced_lease(lease_name(app), namespace)
    except ApiException as exc:
        if exc.status == 404:
            return "", 0.0
        raise
    until = free_at(found)
    return ((found.spec.holder_identity or "") if until else ""), until


def _body(app: str, holder: str, purpose: str, taken: client.V1Lease | None) -> dict[str, Any]:
    now = _stamp()
    meta: dict[str, Any] = {
        "name": lease_name(app),
        "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/name": app},
        "annotations": {"kyb.dev/purpose": purpose[:500]},
    }
    transitions = 0
    if taken is not None:
        meta["resourceVersion"] = taken.metadata.resource_version
        before = taken.spec.holder_identity if taken.spec else None
        transitions = (taken.spec.lease_transitions or 0) + (before != holder)
    spec = {
        "holderIdentity": holder,
        "leaseDurationSeconds": LEASE_SECONDS,
        "acquireTime": now,
        "renewTime": now,
        "leaseTransitions": transitions,
    }
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


@task(name="release-lock", cache_policy=NO_CACHE)
def acquire(
    cluster: KubernetesCluster,
    namespace: str,
    app: str,
    purpose: str,
    timeout: float,
    on_held: Callable[[str], None] | None = None,
) -> str:
    """Take the app's lock, waiting up to `timeout` seconds for its holder; return our identity.

    A task run of its own, so a release that waits shows it in the UI: who it waits for, and
    how long. Passing faults are retried inside, up to `timeout`. `on_held` is called with the
    holder's identity each time the lock is found held (at most every RENEW_SECONDS).

    Raises:
        ReleaseLocked: another run still held it after `timeout` seconds (named in the message).
    """
    leases = client.CoordinationV1Api(api_for(cluster))
    name, holder = lease_name(app), holder_identity()
    deadline = time.monotonic() + timeout
    told = None
    while True:
        try:
            current = _take(leases, namespace, app, holder, purpose)
        except ApiException as exc:
            if not is_transient(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1)  # a conflict (another run took it meanwhile) or a passing fault
            continue
        if current is None:
            return holder
        left = deadline - time.monotonic()
        if left <= 0:
            raise ReleaseLocked(
                f"{current.spec.holder_identity} ({_purpose(current)}) has held the lock of "
                f"{app} for longer than {timeout:.0f}s; wait for it to end, or abort it",
                namespace=namespace,
                lease=name,
            )
        if told != current.spec.holder_identity:
            told = current.spec.holder_identity
            run_logger().info(
                "waiting for %s to release %s/%s (%s)", told, namespace, name, _purpose(current)
            )
        if on_held is not None:
            on_held(current.spec.holder_identity)
        _wait_change(leases, current, min(left, max(1.0, free_at(current) - time.time())))


def _purpose(lease: client.V1Lease) -> str:
    return (lease.metadata.annotations or {}).get("kyb.dev/purpose", "purpose unknown")


def _take(
    leases: client.CoordinationV1Api, namespace: str, app: str, holder: str, purpose: str
) -> client.V1Lease | None:
    """Create or take over the Lease; None once it is ours, else the Lease as its holder has it."""
    try:
        leases.create_namespaced_lease(namespace, _body(app, holder, purpose, None))
        return None
    except ApiException as exc:
        if exc.status != 409:
            raise
    current = leases.read_namespaced_lease(lease_name(app), namespace)
    if current.spec.holder_identity != holder and free_at(current) > time.time():
        return current
    leases.replace_namespaced_lease(
        lease_name(app), namespace, _body(app, holder, purpose, current)
    )  # 409 if another run took it since the read: the caller tries again
    return None


def _wait_change(leases: client.CoordinationV1Api, seen: client.V1Lease, seconds: float) -> None:
    """Block until the Lease changes (renewed, released, deleted) or `seconds` pass."""
    stream = watch.Watch().stream(
        leases.list_namespaced_lease,
        seen.metadata.namespace,
        field_selector=f"metadata.name={seen.metadata.name}",
        resource_version=seen.metadata.resource_version,
        timeout_seconds=max(1, int(seconds)),
        _request_timeout=seconds + 10,
    )
    with contextlib.suppress(ApiException):  # 410: our version is too old; the caller re-reads
        for _ in stream:
            return


def _patch(holder: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A JSON patch that applies only while `holder` still holds the Lease (else 422)."""
    return [{"op": "test", "path": "/spec/holderIdentity", "value": holder}, *ops]


def _renew(
    leases: client.CoordinationV1Api, namespace: str, app: str, held: Held, stop: threading.Event
) -> None:
    renewed = time.time()
    while not stop.wait(RENEW_SECONDS):
        ops = [{"op": "replace", "path": "/spec/renewTime", "value": _stamp()}]
        try:
            leases.patch_namespaced_lease(lease_name(app), namespace, _patch(held.holder, ops))
            renewed = time.time()
        except ApiException as exc:
            if exc.status in (404, 422):  # deleted, or the test op failed: another holder
                held.lost = f"the lock of {app} was taken by another run or deleted"
                held.log.error("%s: this release stops at its next step", held.lost)
                return
            held.log.warning("could not renew the lock of %s (%s); trying again", app, exc.status)
        except Exception as exc:  # the apiserver is away: keep trying while the lease lasts
            held.log.warning("could not renew the lock of %s: %s", app, type(exc).__name__)
        if time.time() - renewed > LEASE_SECONDS:
            held.log.warning("the lock of %s expired unrenewed; another run may take it", app)


def check_held() -> None:
    """In a release that holds its lock, raise LockLost if the lock went to another run."""
    held = _held.get()
    if held is not None:
        held.check()


@contextlib.contextmanager
def hold(
    cluster: KubernetesCluster,
    namespace: str,
    app: str,
    purpose: str,
    timeout: float = 1800,
    on_held: Callable[[str], None] | None = None,
) -> Iterator[Held]:
    """Hold the app's lock for the body: acquired, renewed from a thread, released at the end.

    `on_held` sees the holder while this run waits (an emergency rollback pre-empts with it).

    Raises:
        ReleaseLocked: another run held it for longer than `timeout` seconds.
    """
    leases = client.CoordinationV1Api(api_for(cluster))
    holder = acquire(cluster, namespace, app, purpose, timeout, on_held)
    held = Held(namespace, app, holder, run_logger())
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(leases, namespace, app, held, stop), name="lease-renew", daemon=True
    )
    renewer.start()
    token = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(token)
        stop.set()
        renewer.join(timeout=10)
        _release(leases, namespace, app, held)


def _release(leases: client.CoordinationV1Api, namespace: str, app: str, held: Held) -> None:
    """Free the lock (its holder cleared; the Lease stays, with its count of transitions)."""
    ops = [{"op": "remove", "path": "/spec/holderIdentity"}]
    try:
        leases.patch_namespaced_lease(lease_name(app), namespace, _patch(held.holder, ops))
    except ApiException as exc:
        if exc.status not in (404, 422):  # gone or not ours: nothing to free
            held.log.warning(
                "could not release the lock of %s (%s): it frees itself in %ss",
                app,
                exc.status,
                LEASE_SECONDS,
            )
    except Exception as exc:
        held.log.warning("could not release the lock of %s: %s", app, type(exc).__name__)

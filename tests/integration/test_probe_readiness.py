"""Opt-in realistic readiness on KWOK: label sandbox.kyb.dev/readiness=probe waits out the probe.

The stages pod-probe-start and pod-probe-ready (sandbox/cluster/stages) start a labelled pod at once
(Running, containers started, Ready False) and turn it Ready once its readinessProbe's
initialDelaySeconds have passed. Unlabelled pods keep kwok's instant readiness; a pod that also
carries sandbox.kyb.dev/not-ready=true never turns Ready. Every wait is a bounded watch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes import client, watch

from core.release.status import RolloutState
from sandbox.platform import Platform
from tasks.kube import wait_for_rollout

IMAGE = "127.0.0.1:5001/kyb-platform@sha256:" + "7" * 64  # never pulled: kwok runs nothing
PROBE = {"sandbox.kyb.dev/readiness": "probe"}
NOT_READY = {"sandbox.kyb.dev/not-ready": "true"}
DELAY = 4  # the readinessProbe's initialDelaySeconds


def _container(initial_delay: int | None) -> dict:
    container: dict = {"name": "app", "image": IMAGE}
    if initial_delay is not None:
        container["readinessProbe"] = {
            "httpGet": {"path": "/health", "port": 8080},
            "initialDelaySeconds": initial_delay,
            "periodSeconds": 5,
        }
    return container


def _pod(name: str, labels: dict, initial_delay: int | None = DELAY) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name, **labels}},
        "spec": {"containers": [_container(initial_delay)], "terminationGracePeriodSeconds": 0},
    }


def _condition(pod: client.V1Pod, kind: str) -> client.V1PodCondition | None:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


def _is(pod: client.V1Pod, kind: str, status: str) -> bool:
    cond = _condition(pod, kind)
    return cond is not None and cond.status == status


def _started_unready(pod: client.V1Pod) -> bool:
    """Running, every container started and running, nothing ready yet."""
    statuses = pod.status.container_statuses or []
    return (
        pod.status.phase == "Running"
        and pod.status.start_time is not None
        and _is(pod, "Ready", "False")
        and _is(pod, "ContainersReady", "False")
        and bool(statuses)
        and all(s.started and not s.ready and s.state.running for s in statuses)
    )


def _ready(pod: client.V1Pod) -> bool:
    return pod.status.phase == "Running" and _is(pod, "Ready", "True")


def _ready_after_start(pod: client.V1Pod) -> float:
    """Seconds from status.startTime to the Ready condition's lastTransitionTime (whole seconds)."""
    return (_condition(pod, "Ready").last_transition_time - pod.status.start_time).total_seconds()


@dataclass
class Seen:
    """What a watch saw of one pod: when (monotonic) it was first started-unready, then Ready."""

    last: client.V1Pod
    unready_at: float | None = None
    unready: client.V1Pod | None = None
    ready_at: float | None = None
    history: list[str] = field(default_factory=list)


def _watch_pods(
    core: client.CoreV1Api,
    namespace: str,
    selector: str,
    done: Callable[[dict[str, Seen]], bool],
    seconds: int,
) -> dict[str, Seen]:
    """Watch the namespace's pods matching `selector` until `done(seen)` or `seconds` passed.

    A watch without a resourceVersion starts with the current objects, so nothing is missed; the
    server ends it after `seconds` and the client gives up 10 s later, so it is bounded either way.
    """
    seen: dict[str, Seen] = {}
    changes = watch.Watch()
    for event in changes.stream(
        core.list_namespaced_pod,
        namespace,
        label_selector=selector,
        timeout_seconds=seconds,
        _request_timeout=seconds + 10,
    ):
        now, pod = time.monotonic(), event["object"]
        entry = seen.setdefault(pod.metadata.name, Seen(pod))
        entry.last = pod
        ready = _condition(pod, "Ready")
        entry.history.append(f"{event['type']} {pod.status.phase} Ready={ready and ready.status}")
        if entry.unready_at is None and _started_unready(pod):
            entry.unready_at, entry.unready = now, pod
        if entry.ready_at is None and _ready(pod):
            entry.ready_at = now
        if done(seen):
            changes.stop()
    return seen


def _deployment(name: str, replicas: int) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, **PROBE}},
                "spec": {"containers": [_container(DELAY)], "terminationGracePeriodSeconds": 0},
            },
        },
    }


def test_labelled_pods_start_at_once_and_turn_ready_after_the_initial_delay(
    platform: Platform, kube, namespace
) -> None:
    core = client.CoreV1Api(kube)
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, _deployment("probe", 2))

    # Bounded: scheduling and the 4 s delay take ~5 s; 60 s leaves room for a loaded machine.
    seen = _watch_pods(
        core,
        namespace,
        "app=probe",
        lambda s: len(s) == 2 and all(e.ready_at is not None for e in s.values()),
        seconds=60,
    )
    assert len(seen) == 2, {name: e.history for name, e in seen.items()}
    for name, entry in seen.items():
        why = f"{name}: {entry.history}"
        # it started at once: Running, its container started, Ready and ContainersReady False
        assert entry.unready is not None and entry.unready_at is not None, why
        assert entry.ready_at is not None, why
        # ...and stayed unready for about the delay, as this watch saw it
        assert entry.ready_at - entry.unready_at >= DELAY - 1, why
        pod = entry.last
        assert _ready(pod) and _is(pod, "ContainersReady", "True"), why
        assert all(s.ready and s.started for s in pod.status.container_statuses), why
        # the pod's own timestamps: Ready initialDelaySeconds after its start, not at once
        after = _ready_after_start(pod)
        assert DELAY <= after <= DELAY + 2, f"{why}: Ready {after} s after start"
        started = pod.status.container_statuses[0].state.running.started_at
        assert started == pod.status.start_time, why
        assert pod.status.pod_ip and pod.status.pod_ip.startswith("127."), why
    state, reason = wait_for_rollout(kube, namespace, "probe", timeout=30)
    assert state is RolloutState.COMPLETE, reason


def test_pods_without_the_label_or_without_a_probe_turn_ready_at_once(
    platform: Platform, kube, namespace
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _pod("plain", {}))  # kwok's default pod-ready
    core.create_namespaced_pod(namespace, _pod("no-probe", PROBE, initial_delay=None))

    # Bounded: both are Ready within a second or two of scheduling; 30 s for a loaded machine.
    seen = _watch_pods(
        core,
        namespace,
        "app in (plain,no-probe)",
        lambda s: len(s) == 2 and all(e.ready_at is not None for e in s.values()),
        seconds=30,
    )
    assert set(seen) == {"plain", "no-probe"}, {name: e.history for name, e in seen.items()}
    for name, entry in seen.items():
        why = f"{name}: {entry.history}"
        assert entry.ready_at is not None, why
        after = _ready_after_start(entry.last)
        assert 0 <= after <= 1, f"{why}: Ready {after} s after start"
    # the unlabelled pod takes kwok's one-step path: never seen running but unready
    assert seen["plain"].unready is None, seen["plain"].history


def test_a_probe_pod_marked_not_ready_never_turns_ready(platform: Platform, kube, namespace):
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _pod("both", {**PROBE, **NOT_READY}))

    # Bounded by the server: the watch ends after 9 s, i.e. at least 8 s after the pod started
    # (it starts within a fraction of a second), twice the probe's delay; it must never be Ready.
    begun = time.monotonic()
    seen = _watch_pods(core, namespace, "app=both", lambda s: False, seconds=9)
    entry = seen.get("both")
    assert entry is not None and entry.unready_at is not None, entry and entry.history
    assert entry.ready_at is None, entry.history
    pod = core.read_namespaced_pod("both", namespace)
    assert _started_unready(pod), entry.history
    assert entry.unready_at - begun < 8, entry.history  # it did start, at once
    assert time.monotonic() - entry.unready_at >= 8, entry.history  # watched 8 s since
    # the not-ready stage started it, with its message
    assert "not-ready" in (_condition(pod, "Ready").message or ""), _condition(pod, "Ready")

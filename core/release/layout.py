"""Where a release lives on the cluster: workload names, labels, Services and manifests (pure)."""

from __future__ import annotations

import copy
from typing import Any

from core.release.defaults import COLOR_LABEL, COLORS, TRACK_LABEL
from core.release.observed import Track
from core.release.spec import ReleaseSpec, StrategyKind

RECORD_SUFFIX = "-release"  # ConfigMap `<app>-release` keeps the run record for crash recovery
MANAGED_BY = {"app.kubernetes.io/managed-by": "kyb-pipeline"}
HTTP_PORT = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}


def tracks(spec: ReleaseSpec) -> tuple[Track, ...]:
    """The workloads a strategy uses."""
    if spec.kind == StrategyKind.CANARY:
        return (Track.STABLE, Track.CANARY)
    if spec.kind == StrategyKind.BLUE_GREEN:
        return tuple(Track(c) for c in COLORS)
    return (Track.STABLE,)


def workload_name(spec: ReleaseSpec, track: Track) -> str:
    """The Deployment name of one track."""
    if track is Track.STABLE:
        return spec.app
    return f"{spec.app}-{track.value}"


def selector(spec: ReleaseSpec, track: Track) -> dict[str, str]:
    """The pod labels (and Deployment selector) of one track."""
    if spec.kind == StrategyKind.CANARY:
        return {**spec.labels, TRACK_LABEL: track.value}
    if spec.kind == StrategyKind.BLUE_GREEN:
        return {**spec.labels, COLOR_LABEL: track.value}
    return dict(spec.labels)


def pod_labels(spec: ReleaseSpec, track: Track) -> dict[str, str]:
    """The labels of one track's pods: its selector, and for a rolling update track=stable.

    A rolling Deployment selects on the spec's labels alone (a selector cannot change once
    created); its pods still say which track they are, so its analysis measures them as a
    canary's stable pods are measured.
    """
    if spec.kind == StrategyKind.ROLLING:
        return {**selector(spec, track), TRACK_LABEL: Track.STABLE.value}
    return selector(spec, track)


def track_metadata(spec: ReleaseSpec, track: Track) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, annotations) a canary's `canaryMetadata`/`stableMetadata` put on `track`'s pods."""
    canary = spec.strategy.canary
    meta = canary and (canary.canary_metadata if track is Track.CANARY else canary.stable_metadata)
    return (dict(meta.labels), dict(meta.annotations)) if meta else ({}, {})


def pod_template(
    spec: ReleaseSpec,
    image: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The spec's pod template with its container running `image`, `labels` and `annotations` added.

    A copy: the spec's template is left as it is.
    """
    pod = copy.deepcopy(spec.template) if spec.template else {}
    meta = pod.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    if annotations or meta.get("annotations"):
        meta["annotations"] = {**(meta.get("annotations") or {}), **(annotations or {})}
    containers = pod.setdefault("spec", {}).setdefault("containers", [])
    mine = next((c for c in containers if c.get("name") == spec.container), None)
    if mine is None:
        containers.insert(0, {"name": spec.container, "image": image})
    else:
        mine["image"] = image
    return pod


def workload_manifest(spec: ReleaseSpec, track: Track, image: str, replicas: int) -> dict[str, Any]:
    """A Deployment for `track` running `image` at `replicas`.

    rolling    one Deployment `<app>` selecting the spec's labels.
    canary     `<app>` (track=stable) and `<app>-canary` (track=canary), both behind Service `<app>`
               (replica-weighted traffic); stableService/canaryService select one track each.
    blueGreen  `<app>-blue` and `<app>-green` (color label); activeService and previewService select
               one color each, so a switch is a selector change.

    The pods are the spec's pod template (`spec.template`: its labels, annotations, resources,
    probes, env, securityContext, volumes) with the release's container running `image`, the
    track's selector labels, and a canary's `canaryMetadata`/`stableMetadata` on its track.

    Args:
        spec: the release.
        track: which workload.
        image: the image (by digest) for the spec's container.
        replicas: the replica count.
    """
    extra_labels, extra_annotations = track_metadata(spec, track)
    labels = {**extra_labels, **pod_labels(spec, track)}
    pod = pod_template(spec, image, labels, extra_annotations)
    rolling = spec.strategy.rolling or spec.strategy.canary
    body: dict[str, Any] = {
        "replicas": replicas,
        "progressDeadlineSeconds": spec.deadline_seconds,
        "minReadySeconds": spec.min_ready_seconds,
        "revisionHistoryLimit": spec.revision_history_limit,
        "selector": {"matchLabels": selector(spec, track)},
        "template": pod,
    }
    if rolling is not None:
        body["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {
                "maxSurge": rolling.max_surge,
                "maxUnavailable": rolling.max_unavailable,
            },
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": workload_name(spec, track),
            "namespace": spec.namespace,
            "labels": {**selector(spec, track), **MANAGED_BY},
        },
        "spec": body,
    }


NO_COLOR = "none"  # a blue-green Service's color before its first release: selects no pod


def service(
    spec: ReleaseSpec, name: str, selects: dict[str, str], track: Track | None = None
) -> dict[str, Any]:
    """A Service; a canary's stableService/canaryService carry their track's metadata too."""
    labels, annotations = track_metadata(spec, track) if track else ({}, {})
    meta = {"name": name, "namespace": spec.namespace, "labels": {**labels, **spec.labels}}
    meta["labels"].update(MANAGED_BY)
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"selector": selects, "ports": [HTTP_PORT]},
    }


def services(spec: ReleaseSpec) -> list[dict[str, Any]]:
    """The Services a release needs, each with its initial selector (created only if missing)."""
    out = []
    if spec.strategy.blue_green is None:  # both tracks behind one Service: replica-weighted
        out.append(service(spec, spec.app, dict(spec.labels)))
    if spec.strategy.canary is not None:
        c = spec.strategy.canary
        for name, track in ((c.stable_service, Track.STABLE), (c.canary_service, Track.CANARY)):
            if name:
                out.append(service(spec, name, selector(spec, track), track))
    if spec.strategy.blue_green is not None:
        # no color yet: nothing serves until a first deploy passed its analyses and is switched in
        bg, nothing = spec.strategy.blue_green, {**spec.labels, COLOR_LABEL: NO_COLOR}
        for name in (bg.active_service, bg.preview_service):
            if name:
                out.append(service(spec, name, nothing))
    return [
        s
        for i, s in enumerate(out)
        if s["metadata"]["name"] not in {o["metadata"]["name"] for o in out[:i]}
    ]


def service_names(spec: ReleaseSpec) -> list[str]:
    """Names of the Services in services(spec)."""
    return [s["metadata"]["name"] for s in services(spec)]

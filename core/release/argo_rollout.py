"""The `argo` engine's half that needs no cluster: a spec as a Rollout, and a Rollout's status read.

With `engine: argo` the cluster's Argo Rollouts controller performs the release and the flow
follows it. What the flow writes is the release as Argo writes it:

- one Rollout `<app>` (argoproj.io/v1alpha1) whose pod template is the spec's, with the image
  pinned by digest; `progressDeadlineAbort: true`, so a missed deadline goes back to stable as the
  pipeline engine does;
- the canary's steps, background analysis, stable/canary Services and metadata as given; a rolling
  spec becomes a canary without steps (Argo's rolling update);
- pods labelled `track: canary|stable` through Argo's ephemeral metadata (canaryMetadata and
  stableMetadata, activeMetadata and previewMetadata for blue-green), so the same analysis
  templates measure the same pods under either engine;
- every analysis with the arguments the pipeline engine would give it (service-name, namespace,
  track) unless it sets them itself, since Argo passes only what a Rollout names.

What Argo cannot do the way the spec asks is refused before anything is written (refusals()).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.release import layout
from core.release.analysis_ref import AnalysisRef
from core.release.defaults import TRACK_LABEL
from core.release.errors import SpecError
from core.release.spec import ReleaseSpec, StrategyKind
from core.release.steps import PodMetadata

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "rollouts"
API_VERSION = f"{GROUP}/{VERSION}"
# the track each analysis phase measures, as the pipeline engine's (core/analysis/prepare.py)
PHASE_TRACK = {
    "step": "canary",
    "background": "canary",
    "prePromotion": "canary",
    "postPromotion": "stable",
}
# pauses the controller holds until someone answers: what the flow turns into a Prefect gate
HUMAN_PAUSES = ("CanaryPauseStep", "BlueGreenPause", "InconclusiveAnalysisRun")


def refusals(spec: ReleaseSpec) -> list[str]:
    """What the `argo` engine cannot do as `spec` asks, each with what to do instead."""
    out = []
    canary, rolling = spec.strategy.canary, spec.strategy.rolling
    if canary is not None and canary.traffic_routing is not None:
        out.append(
            "trafficRouting: the platform's Argo Rollouts controller loads no traffic-router "
            "plugin (Argo's Gateway API support is the plugin argoproj-labs/gatewayAPI, "
            "downloaded by the controller at start): use engine pipeline for a routed canary, "
            "or remove trafficRouting (and setCanaryScale) for a replica-weighted one"
        )
    if rolling is not None and rolling.analysis is not None:
        out.append(
            "a rolling update's post-deploy analysis has no Argo equivalent: use a canary with "
            "an analysis step, or engine pipeline"
        )
    return out


def refuse(spec: ReleaseSpec) -> None:
    """Raise SpecError naming everything the `argo` engine cannot do for `spec`."""
    if found := refusals(spec):
        raise SpecError(f"engine argo: {'; '.join(found)}; nothing was changed", app=spec.app)


def _analysis(ref: AnalysisRef | None, phase: str, spec: ReleaseSpec) -> dict[str, Any] | None:
    if ref is None:
        return None
    implicit = {"service-name": spec.app, "namespace": spec.namespace, "track": PHASE_TRACK[phase]}
    return ref.with_defaults(implicit).model_dump(by_alias=True, exclude_none=True)


def _metadata(track: str, given: PodMetadata | None) -> dict[str, Any]:
    labels = {**(given.labels if given else {}), TRACK_LABEL: track}
    out: dict[str, Any] = {"labels": labels}
    if given and given.annotations:
        out["annotations"] = dict(given.annotations)
    return out


def _canary(spec: ReleaseSpec) -> dict[str, Any]:
    surge = spec.strategy.canary or spec.strategy.rolling
    assert surge is not None
    out: dict[str, Any] = {"maxSurge": surge.max_surge, "maxUnavailable": surge.max_unavailable}
    canary = spec.strategy.canary
    if canary is None:
        return out  # a rolling update: a canary without steps
    steps = []
    for step in canary.steps:
        if step.analysis is not None:
            steps.append({"analysis": _analysis(step.analysis, "step", spec)})
        else:
            steps.append(step.model_dump(by_alias=True, exclude_none=True))
    out["steps"] = steps
    if background := _analysis(canary.analysis, "background", spec):
        out["analysis"] = background
    for key, name in (
        ("stableService", canary.stable_service),
        ("canaryService", canary.canary_service),
    ):
        if name:
            out[key] = name
    out["canaryMetadata"] = _metadata("canary", canary.canary_metadata)
    out["stableMetadata"] = _metadata("stable", canary.stable_metadata)
    return out


def _blue_green(spec: ReleaseSpec) -> dict[str, Any]:
    bg = spec.strategy.blue_green
    assert bg is not None
    out: dict[str, Any] = {
        "activeService": bg.active_service,
        "autoPromotionEnabled": bg.auto_promotion_enabled,
        "scaleDownDelaySeconds": bg.scale_down_delay_seconds,
        "abortScaleDownDelaySeconds": bg.abort_scale_down_delay_seconds,
        "activeMetadata": _metadata("stable", None),
        "previewMetadata": _metadata("canary", None),
    }
    optional = {
        "previewService": bg.preview_service,
        "autoPromotionSeconds": bg.auto_promotion_seconds,
        "previewReplicaCount": bg.preview_replica_count,
        "prePromotionAnalysis": _analysis(bg.pre_promotion_analysis, "prePromotion", spec),
        "postPromotionAnalysis": _analysis(bg.post_promotion_analysis, "postPromotion", spec),
    }
    return {**out, **{k: v for k, v in optional.items() if v is not None}}


def rollout_manifest(spec: ReleaseSpec) -> dict[str, Any]:
    """The Rollout that performs `spec` under Argo Rollouts (call refuse(spec) first)."""
    strategy = (
        {"blueGreen": _blue_green(spec)}
        if spec.kind == StrategyKind.BLUE_GREEN
        else {"canary": _canary(spec)}
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "Rollout",
        "metadata": {
            "name": spec.app,
            "namespace": spec.namespace,
            "labels": {**spec.labels, **layout.MANAGED_BY},
        },
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": dict(spec.labels)},
            "template": layout.pod_template(spec, spec.image, dict(spec.labels)),
            "minReadySeconds": spec.min_ready_seconds,
            "revisionHistoryLimit": spec.revision_history_limit,
            "progressDeadlineSeconds": spec.deadline_seconds,
            "progressDeadlineAbort": True,
            "strategy": strategy,
        },
    }


def services(spec: ReleaseSpec) -> list[dict[str, Any]]:
    """The Services the Rollout names (Argo adds its pod-template-hash to their selectors).

    A canary without stable and canary Services gets `<app>` over both versions' pods, as under
    the pipeline engine; Argo leaves that one alone.
    """
    if (bg := spec.strategy.blue_green) is not None:
        names = [n for n in (bg.active_service, bg.preview_service) if n]
    else:
        canary = spec.strategy.canary
        names = [spec.app]
        if canary is not None:
            names += [n for n in (canary.stable_service, canary.canary_service) if n]
    unique = list(dict.fromkeys(names))
    return [layout.service(spec, name, dict(spec.labels)) for name in unique]


@dataclass(frozen=True)
class RolloutStatus:
    """What the controller says about a Rollout, read from its object."""

    generation: int
    observed: bool  # the controller has seen the current spec
    phase: str  # Healthy, Progressing, Paused, Degraded ("" before the controller saw it)
    message: str
    step: int | None  # currentStepIndex (canary)
    steps: int
    pauses: tuple[str, ...]  # pauseConditions' reasons
    aborted: bool
    stable: str  # stableRS: the stable pod template hash
    current: str  # currentPodHash
    updated: int
    ready: int
    replicas: int
    active: str | None = None  # blue-green: the hash the active Service selects

    @property
    def back_on_stable(self) -> bool:
        """Aborted, and the controller is done going back: all traffic on the stable version.

        Blue-green: the active Service selects the stable pods (the preview's go after
        abortScaleDownDelaySeconds). Canary without a router: no pod of the new version is left,
        since its share of traffic is its share of pods.
        """
        if not (self.aborted and self.phase == "Degraded"):
            return False
        return self.active == self.stable if self.active is not None else self.updated == 0

    @property
    def promoted(self) -> bool:
        """The new version is stable and healthy: nothing left to do."""
        return (
            self.observed
            and not self.aborted
            and self.phase == "Healthy"
            and bool(self.current)
            and self.current == self.stable
        )

    @property
    def human_pause(self) -> str | None:
        """The reason of a pause the controller holds until someone answers, else None."""
        return next((r for r in self.pauses if r in HUMAN_PAUSES), None)

    def describe(self) -> str:
        """One line: phase, step, message."""
        step = f" step {self.step}/{self.steps}" if self.step is not None and self.steps else ""
        message = f": {self.message}" if self.message else ""
        return f"{self.phase or 'not seen yet'}{step}{message}"


def read_status(rollout: dict[str, Any]) -> RolloutStatus:
    """A Rollout's status as the controller wrote it."""
    meta, status = rollout.get("metadata") or {}, rollout.get("status") or {}
    generation = int(meta.get("generation") or 0)
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    canary, blue_green = strategy.get("canary") or {}, "blueGreen" in strategy
    return RolloutStatus(
        generation=generation,
        observed=str(status.get("observedGeneration", "")) == str(generation),
        phase=status.get("phase") or "",
        message=status.get("message") or "",
        step=status.get("currentStepIndex"),
        steps=len(canary.get("steps") or ()),
        pauses=tuple(c.get("reason", "") for c in status.get("pauseConditions") or ()),
        aborted=bool(status.get("abort")),
        stable=status.get("stableRS") or "",
        current=status.get("currentPodHash") or "",
        updated=int(status.get("updatedReplicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        replicas=int(status.get("replicas") or 0),
        active=(status.get("blueGreen") or {}).get("activeSelector") if blue_green else None,
    )

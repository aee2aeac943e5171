"""How far a release has come, in percent: rollout counts, blue-green phases, canary steps."""

from __future__ import annotations

from enum import StrEnum

from core.release.actions import (
    AnalysisPhase,
    ApplyWorkload,
    Done,
    Pause,
    Promote,
    ReleaseAction,
    RunAnalysis,
    Scale,
    ScaleDownAfter,
    StartFirstDeploy,
    SwitchService,
    WaitReady,
)
from core.release.argo_rollout import RolloutStatus
from core.release.observed import RunRecord, WorkloadView
from core.release.spec import ReleaseSpec, StrategyKind

ROLLED_OUT = 90.0  # a rolling release with post-deploy analysis: the rollout's share of 100


class Phase(StrEnum):
    """A blue-green release's phases, in order."""

    PREVIEW = "preview"  # the new color scaled up and ready behind previewService
    PRE_ANALYSIS = "pre-promotion analysis"
    PROMOTION = "promotion"  # the pause for approval (or auto-promotion)
    SWITCH = "switch"  # new color at full size, activeService switched to it
    POST_ANALYSIS = "post-promotion analysis"
    SCALE_DOWN = "scale-down"  # the old color to 0


def share(done: float, total: float) -> float:
    """`done` of `total` as a fraction in [0, 1] (0 when there is nothing to count)."""
    return max(0.0, min(1.0, done / total)) if total > 0 else 0.0


def rollout_share(view: WorkloadView | None, image: str, replicas: int) -> float:
    """The fraction of a Deployment's rollout to `image` done, from its replica counts.

    Half of it is the new pods created (updatedReplicas), half the new pods ready: the
    Deployment counts ready pods of every revision, so the old pods still there (status.replicas
    minus updatedReplicas, taken as ready) are subtracted. A Deployment on another image, or
    whose status has not caught up with its spec yet, counts 0; a settled one counts 1.

    Args:
        view: the Deployment as the cluster shows it (None: it does not exist).
        image: the image being rolled out.
        replicas: the desired number of replicas.
    """
    if view is None or view.image != image or not view.observed:
        return 0.0
    if view.runs(image, replicas):
        return 1.0
    updated = min(view.updated, replicas)
    old = max(0, (view.replicas if view.total is None else view.total) - view.updated)
    ready = max(0, min(view.ready - old, updated))
    return share(updated + ready, 2 * replicas)


def canary_percent(step_index: int, steps: int) -> float:
    """The share of a canary's steps done, in percent (no steps: 0 until Done)."""
    return round(100 * share(step_index, steps), 1)


def blue_green_phases(spec: ReleaseSpec) -> tuple[Phase, ...]:
    """The phases a blue-green release of `spec` goes through (its analyses only if it has them)."""
    bg = spec.strategy.blue_green
    if bg is None:
        raise ValueError(f"blue-green phases of a {spec.kind} spec")
    out = [Phase.PREVIEW]
    out += [Phase.PRE_ANALYSIS] if bg.pre_promotion_analysis else []
    out += [Phase.PROMOTION, Phase.SWITCH]
    out += [Phase.POST_ANALYSIS] if bg.post_promotion_analysis else []
    return (*out, Phase.SCALE_DOWN)


def blue_green_phase(spec: ReleaseSpec, action: ReleaseAction, record: RunRecord) -> Phase | None:
    """The phase `action` belongs to (None: a rollback or an end, which moves no phase)."""
    bg = spec.strategy.blue_green
    if bg is None or record.aborted:
        return None
    match action:
        case RunAnalysis(phase=AnalysisPhase.POST_PROMOTION):
            return Phase.POST_ANALYSIS
        case RunAnalysis():
            return Phase.PRE_ANALYSIS
        case Pause() | Promote():
            return Phase.PROMOTION
        case ScaleDownAfter():
            return Phase.SCALE_DOWN
        case SwitchService(service=svc) if svc == bg.active_service:
            return Phase.SWITCH
        case StartFirstDeploy() | SwitchService():
            return Phase.PREVIEW
        case ApplyWorkload() | Scale() | WaitReady():
            return Phase.SWITCH if record.promoted else Phase.PREVIEW
    return None


def phase_percent(phases: tuple[Phase, ...], phase: Phase, within: float = 0.0) -> float:
    """Percent at `phase`, `within` (0..1) of the way through it; every phase weighs the same.

    A phase the release does not have (a first release's switch without a promotion pause)
    counts as the start of the next one it has.
    """
    order = list(Phase)
    index = next((i for i, p in enumerate(phases) if order.index(p) >= order.index(phase)), 0)
    inside = within if index < len(phases) and phases[index] is phase else 0.0
    return round(100 * share(index + max(0.0, min(1.0, inside)), len(phases)), 1)


def release_percent(
    spec: ReleaseSpec,
    action: ReleaseAction,
    record: RunRecord,
    view: WorkloadView | None = None,
) -> float | None:
    """How far a release is when it performs `action` (None: no move, e.g. during a rollback).

    Args:
        spec: the release.
        action: what the release does now.
        record: the run's record (canary step, promotion, abort).
        view: the workload `action` works on, as last seen (a rollout's counts move the percent
            of a rolling release and of a blue-green preview or switch while it is watched).
    """
    if isinstance(action, Done):
        return 100.0
    if action.terminal or record.aborted:
        return None
    if spec.kind == StrategyKind.CANARY:
        steps = spec.strategy.canary.steps if spec.strategy.canary else []
        return canary_percent(record.step_index, len(steps)) if steps else None
    counted = rollout_share(view, spec.image, spec.replicas)
    if spec.kind == StrategyKind.ROLLING:
        rolling = spec.strategy.rolling
        top = ROLLED_OUT if rolling is not None and rolling.analysis else 100.0
        if isinstance(action, RunAnalysis):
            return top
        return round(min(top * counted, 99.0), 1)
    phase = blue_green_phase(spec, action, record)
    if phase is None:
        return None
    within = counted if phase in (Phase.PREVIEW, Phase.SWITCH) else 0.0
    if isinstance(action, SwitchService) and phase is Phase.SWITCH:
        within = 0.5  # the switch itself: half way between the new color's growth and its check
    return phase_percent(blue_green_phases(spec), phase, within)


def argo_percent(spec: ReleaseSpec, status: RolloutStatus) -> float:
    """How far Argo Rollouts' controller has taken a release, from the Rollout's status.

    Canary: the share of steps done. Blue-green: the preview coming up (updated and ready pods
    of the new version) is the first half, the pause for promotion 50, the active Service on the
    new version 75, promoted 100.
    """
    if status.promoted:
        return 100.0
    if status.steps:
        return canary_percent(min(status.step or 0, status.steps), status.steps)
    if status.active is not None and status.current and status.active == status.current:
        return 75.0
    if status.pauses:
        return 50.0
    counted = share(min(status.updated, status.ready), spec.replicas)
    return round(50 * counted, 1)

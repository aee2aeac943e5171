"""Blue-green planner: bring the new color up behind previewService, then switch activeService."""

from __future__ import annotations

from core.release.actions import (
    Abort,
    AnalysisPhase,
    ApplyWorkload,
    Done,
    Fail,
    Pause,
    PlannedStep,
    Promote,
    ReleaseAction,
    Scale,
    ScaleDownAfter,
    StartFirstDeploy,
    SwitchService,
    WaitReady,
    analysis_estimate,
    analysis_gate,
    first_deploy_failed,
    first_deploy_gate,
    human_pause,
)
from core.release.defaults import COLOR_LABEL, COLORS, HUMAN_PAUSE_TIMEOUT_SECONDS
from core.release.observed import ObservedState, Track
from core.release.spec import BlueGreenStrategy, ReleaseSpec

FIRST, SECOND = (Track(c) for c in COLORS)


def _strategy(spec: ReleaseSpec) -> BlueGreenStrategy:
    if spec.strategy.blue_green is None:
        raise ValueError(f"the blue-green planner got a {spec.kind} spec")
    return spec.strategy.blue_green


def _other(color: Track) -> Track:
    return SECOND if color is FIRST else FIRST


def selector(spec: ReleaseSpec, color: Track) -> dict[str, str]:
    """The Service selector that picks `color`'s pods."""
    return {**spec.labels, COLOR_LABEL: color.value}


def colors(spec: ReleaseSpec, seen: ObservedState) -> tuple[Track | None, Track]:
    """(active, new): the color activeService selects now (None if none) and the one to release."""
    chosen = (seen.selector(_strategy(spec).active_service) or {}).get(COLOR_LABEL)
    active = Track(chosen) if chosen in COLORS else None
    candidates = [active] if active else []
    candidates += [c for c in (FIRST, SECOND) if c is not active]
    for color in candidates:
        view = seen.workload(color)
        if view and view.image == spec.image:
            return active, color
    return active, _other(active) if active else FIRST


def measures(color: Track) -> dict[str, str]:
    """The analysis arguments that select one color's pods.

    Its pods carry the `color` label, never a track: which color is preview and which is active
    changes with each switch, so every blue-green analysis measures the new color by name.
    """
    return {"color": color.value}


def _first_release(spec: ReleaseSpec, seen: ObservedState, new: Track) -> ReleaseAction:
    bg, view, n = _strategy(spec), seen.workload(new), spec.replicas
    if view is None or view.image != spec.image or view.replicas != n:
        return ApplyWorkload(new, spec.image, n)
    if view.deadline_exceeded:
        return Fail(f"{view.name} made no progress within {spec.progress_deadline_seconds}s")
    if not view.settled:
        return WaitReady(new, spec.progress_deadline_seconds)
    if bg.preview_service and seen.selector(bg.preview_service) != selector(spec, new):
        return SwitchService(bg.preview_service, selector(spec, new))
    # behind preview, before the active Service
    gate = first_deploy_gate(spec, seen.record, measures(new))
    if gate is not None:
        return gate
    if seen.selector(bg.active_service) != selector(spec, new):
        return SwitchService(bg.active_service, selector(spec, new))
    return Done(f"first release: {spec.app} runs {spec.image} at {n} replicas ({new})")


def _rollback(
    spec: ReleaseSpec, seen: ObservedState, active: Track | None, new: Track
) -> ReleaseAction:
    """Active Service back to the old color first, then the new color down, then Fail."""
    bg, old, n = _strategy(spec), _other(new), spec.replicas
    reason = seen.record.aborted or "aborted"
    old_view, new_view = seen.workload(old), seen.workload(new)
    if seen.record.first_deploy or (active is new and old_view is None):
        return first_deploy_failed(spec, new_view.replicas if new_view else 0, new, reason)
    if active is new:
        if old_view.replicas != n:
            return Scale(old, n)
        if not old_view.settled and not old_view.deadline_exceeded:
            return WaitReady(old, spec.progress_deadline_seconds)
        return SwitchService(bg.active_service, selector(spec, old))
    if new_view is not None and new_view.replicas:
        return ScaleDownAfter(new, bg.abort_scale_down_delay_seconds)
    return Fail(f"{reason}; rolled back, {active or 'nothing'} serves {bg.active_service}")


def next_action(spec: ReleaseSpec, observed: ObservedState) -> ReleaseAction:
    """Decide the next action of a blue-green release from the spec and what the cluster shows.

    Order (Argo Rollouts' blueGreen): apply the new color at previewReplicaCount (or all replicas),
    point previewService at it, wait until ready, run prePromotionAnalysis, pause for promotion
    (a human when autoPromotionEnabled is false; autoPromotionSeconds of waiting when it is true;
    Argo ignores autoPromotionSeconds without autoPromotionEnabled), Promote, scale the new color
    to all replicas, switch activeService, run postPromotionAnalysis, then scale the old color
    down after scaleDownDelaySeconds. The first release of an app has nothing to compare with:
    its color goes straight to full size and both Services, without analysis or pause (as in Argo).

    Abort (failed analysis, no approval, progress deadline): activeService back to the old color
    (scaled back up first if needed), then the new color down after abortScaleDownDelaySeconds,
    then Fail. Colors are told apart by the `color` pod label the Services select on.
    """
    bg, run, n = _strategy(spec), observed.record, spec.replicas
    deadline = spec.progress_deadline_seconds
    active, new = colors(spec, observed)
    old = _other(new)
    view, old_view = observed.workload(new), observed.workload(old)
    first = active is None or observed.workload(active) is None
    if first and not (run.first_deploy or run.promoted or run.aborted):
        return StartFirstDeploy(f"nothing of {spec.app} serves {bg.active_service} yet")
    if run.aborted:
        return _rollback(spec, observed, active, new)
    if first or run.first_deploy:
        return _first_release(spec, observed, new)
    if active is new and view is not None and view.runs(spec.image, n):
        if bg.post_promotion_analysis and (old_view and old_view.replicas):
            phase = AnalysisPhase.POST_PROMOTION
            ref = bg.post_promotion_analysis
            gate = analysis_gate("post-promotion", ref, phase, run, measures(new))
            if gate:
                return gate
        if old_view and old_view.replicas:
            return ScaleDownAfter(old, bg.scale_down_delay_seconds)
        return Done(f"{spec.app} runs {spec.image} at {n} replicas ({new} is active)")
    promoted = run.promoted or active is new
    size = n if promoted else (bg.preview_replica_count or n)
    if view is None or view.image != spec.image:
        return ApplyWorkload(new, spec.image, size)
    if view.replicas != size:
        return Scale(new, size)
    if bg.preview_service and observed.selector(bg.preview_service) != selector(spec, new):
        return SwitchService(bg.preview_service, selector(spec, new))
    if view.deadline_exceeded:
        return Abort(f"{view.name} made no progress within {deadline}s")
    if not view.settled:
        return WaitReady(new, deadline)
    if not promoted:
        if bg.pre_promotion_analysis:
            phase = AnalysisPhase.PRE_PROMOTION
            ref = bg.pre_promotion_analysis
            gate = analysis_gate("pre-promotion", ref, phase, run, measures(new))
            if gate:
                return gate
        if "promotion" not in run.pauses_done:
            if not bg.auto_promotion_enabled:
                return human_pause("promotion", f"switch {bg.active_service} to {spec.image}?")
            if bg.auto_promotion_seconds:
                return Pause(
                    "promotion",
                    f"auto-promotion of {spec.image}",
                    duration_seconds=bg.auto_promotion_seconds,
                )
        return Promote(f"{new} ({spec.image}) takes {bg.active_service}")
    return SwitchService(bg.active_service, selector(spec, new))


def plan(spec: ReleaseSpec, analysis_seconds: dict[str, int]) -> list[PlannedStep]:
    """The release plan: preview, checks, promotion, switch, scale-down."""
    bg, n, deadline = _strategy(spec), spec.replicas, spec.progress_deadline_seconds
    preview = bg.preview_replica_count or n
    where = f" behind {bg.preview_service}" if bg.preview_service else ""
    out = [PlannedStep("apply", f"new color runs {spec.image} x{preview}{where}", deadline)]
    if bg.pre_promotion_analysis:
        names = ", ".join(bg.pre_promotion_analysis.names)
        seconds = analysis_estimate(bg.pre_promotion_analysis, analysis_seconds)
        out.append(PlannedStep("analysis", f"pre-promotion analysis {names}", seconds))
    if not bg.auto_promotion_enabled:
        text = f"pause for approval (aborts after {HUMAN_PAUSE_TIMEOUT_SECONDS}s)"
        out.append(PlannedStep("pause", text, HUMAN_PAUSE_TIMEOUT_SECONDS, needs_human=True))
    elif bg.auto_promotion_seconds:
        text = f"pause {bg.auto_promotion_seconds}s before auto-promotion"
        out.append(PlannedStep("pause", text, bg.auto_promotion_seconds))
    grow = deadline if preview < n else 0
    text = f"promote: new color to {n} replicas, {bg.active_service} switches to it"
    out.append(PlannedStep("switch", text, grow))
    if bg.post_promotion_analysis:
        names = ", ".join(bg.post_promotion_analysis.names)
        seconds = analysis_estimate(bg.post_promotion_analysis, analysis_seconds)
        out.append(PlannedStep("analysis", f"post-promotion analysis {names}", seconds))
    text = f"old color to 0 after {bg.scale_down_delay_seconds}s"
    out.append(PlannedStep("scaleDown", text, bg.scale_down_delay_seconds))
    return out

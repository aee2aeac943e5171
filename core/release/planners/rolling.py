"""Rolling planner: one Deployment takes the new image under its own maxSurge/maxUnavailable."""

from __future__ import annotations

from core.release.actions import (
    Abort,
    AnalysisPhase,
    ApplyWorkload,
    Done,
    Fail,
    PlannedStep,
    Promote,
    ReleaseAction,
    WaitReady,
    analysis_estimate,
    analysis_gate,
)
from core.release.observed import ObservedState, RunRecord, Track
from core.release.spec import ReleaseSpec, RollingStrategy

KEY = "post-deploy"  # the analysis's key in the run record
UNDO = "roll back to the previous revision"


def _strategy(spec: ReleaseSpec) -> RollingStrategy:
    if spec.strategy.rolling is None:
        raise ValueError(f"the rolling planner got a {spec.kind} spec")
    return spec.strategy.rolling


def _analysis(rolling: RollingStrategy, run: RunRecord) -> ReleaseAction | None:
    """What the post-deploy analysis still demands of a run that rolled out (None: nothing)."""
    if run.aborted:
        return Fail(f"{run.aborted}: {UNDO}")
    if rolling.analysis is None or not run.promoted:
        return None
    gate = analysis_gate(KEY, rolling.analysis, AnalysisPhase.POST_DEPLOY, run)
    return Fail(f"{gate.reason}: {UNDO}") if isinstance(gate, Abort) else gate


def next_action(spec: ReleaseSpec, observed: ObservedState) -> ReleaseAction:
    """Decide the next action of a rolling release from the spec and what the cluster shows.

    Kubernetes does the rolling itself; the planner applies the image, waits (watch) until the
    Deployment settles, and fails if the progress deadline passes (the executor then rolls the
    Deployment back to its previous revision). A Deployment already on the image at full size and
    settled is Done without a write.

    With `analysis` (ours: Argo's rolling update has none), the settled revision is analysed
    (postDeploy) before Done; Failed or Error fails the release (and the executor rolls it back),
    Inconclusive asks a human. So that a release which rolled the Deployment out is always analysed,
    even when its run crashed after the apply, the planner first records a Promote (the executor
    saves the record, which outlives a crash) and only then applies. A release that finds the
    Deployment already settled on its image at full size, with no record of its own, writes nothing
    and is Done without analysis: every run that applies leaves its record until it ends, so no
    record means no run of this release rolled it out and is still owed a verdict. Anything short of
    that (a new image, a new size, a rollout still settling) is promoted and analysed.
    """
    rolling, run = _strategy(spec), observed.record
    view, n, deadline = observed.workload(Track.STABLE), spec.replicas, spec.deadline_seconds
    there = view is not None and view.runs(spec.image, n)
    if rolling.analysis and not run.promoted and not there:
        return Promote(
            f"roll {spec.app} out to {spec.image}, then analyse it ({AnalysisPhase.POST_DEPLOY})"
        )
    gate = _analysis(rolling, run)
    if isinstance(gate, Fail):  # before any apply: a rerun never redeploys a failed image (the
        return gate  # executor's undo sees a crashed run already undid it and leaves it)
    if view is None or view.image != spec.image or view.replicas != n:
        return ApplyWorkload(Track.STABLE, spec.image, n)
    if there:
        return gate or Done(f"{spec.app} runs {spec.image} at {n} replicas")
    if view.deadline_exceeded:
        return Fail(f"{view.name} made no progress within {deadline}s: {UNDO}")
    return WaitReady(Track.STABLE, deadline)


def plan(spec: ReleaseSpec, analysis_seconds: dict[str, int]) -> list[PlannedStep]:
    """The release plan: apply, wait up to the progress deadline, then the post-deploy analysis."""
    rolling, n = _strategy(spec), spec.replicas
    text = (
        f"rolling update to {spec.image} x{n} (maxSurge {rolling.max_surge}, "
        f"maxUnavailable {rolling.max_unavailable})"
    )
    out = [
        PlannedStep("apply", text, 0, stable_replicas=n),
        PlannedStep("wait", f"wait until all {n} replicas are ready", spec.deadline_seconds),
    ]
    if rolling.analysis:
        seconds = analysis_estimate(rolling.analysis, analysis_seconds)
        names = ", ".join(rolling.analysis.names)
        out.append(PlannedStep("analysis", f"post-deploy analysis {names}", seconds))
    return out

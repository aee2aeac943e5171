"""Rolling planner: one Deployment takes the new image under its own maxSurge/maxUnavailable.

Kubernetes does the rolling itself; the planner applies the image, waits (watch) until the
Deployment settles, and fails if the progress deadline passes (the executor then rolls the
Deployment back to its previous revision). A Deployment already on the image at full size and
settled is Done without a write.
"""

from __future__ import annotations

from core.actions import Action, ApplyWorkload, Done, Fail, PlannedStep, WaitReady
from core.observed import ObservedState, Track
from core.spec import ReleaseSpec, RollingStrategy


def _strategy(spec: ReleaseSpec) -> RollingStrategy:
    if spec.strategy.rolling is None:
        raise ValueError(f"the rolling planner got a {spec.kind} spec")
    return spec.strategy.rolling


def next_action(spec: ReleaseSpec, observed: ObservedState) -> Action:
    """Decide the next action of a rolling release from the spec and what the cluster shows."""
    _strategy(spec)
    view, n, deadline = observed.workload(Track.STABLE), spec.replicas, spec.deadline_seconds
    if view is not None and view.runs(spec.image, n):
        return Done(f"{spec.app} runs {spec.image} at {n} replicas")
    if view is None or view.image != spec.image or view.replicas != n:
        return ApplyWorkload(Track.STABLE, spec.image, n)
    if view.deadline_exceeded:
        return Fail(f"{view.name} made no progress within {deadline}s: roll back to the "
                    "previous revision")  # fmt: skip
    return WaitReady(Track.STABLE, deadline)


def plan(spec: ReleaseSpec, analysis_seconds: dict[str, int]) -> list[PlannedStep]:
    """The release plan: apply, then wait up to the progress deadline."""
    rolling, n = _strategy(spec), spec.replicas
    text = (f"rolling update to {spec.image} x{n} (maxSurge {rolling.max_surge}, "
            f"maxUnavailable {rolling.max_unavailable})")  # fmt: skip
    return [
        PlannedStep("apply", text, 0, stable_replicas=n),
        PlannedStep("wait", f"wait until all {n} replicas are ready", spec.deadline_seconds),
    ]

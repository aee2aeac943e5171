"""One planner per strategy, picked by a one-line lookup (DESIGN.md principle 2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from core.release.actions import PlannedStep, ReleaseAction
from core.release.errors import SpecError
from core.release.observed import ObservedState
from core.release.planners import blue_green, canary, rolling
from core.release.spec import ReleaseSpec, StrategyKind

Planner = Callable[[ReleaseSpec, ObservedState], ReleaseAction]

PLANNERS: dict[str, Planner] = {
    StrategyKind.ROLLING: rolling.next_action,
    StrategyKind.BLUE_GREEN: blue_green.next_action,
    StrategyKind.CANARY: canary.next_action,
}
PLANS = {
    StrategyKind.ROLLING: rolling.plan,
    StrategyKind.BLUE_GREEN: blue_green.plan,
    StrategyKind.CANARY: canary.plan,
}


def planner_for(spec: ReleaseSpec | str) -> Planner:
    """The planner for a spec (or a strategy kind such as "canary"); an unknown kind raises."""
    kind = spec if isinstance(spec, str) else spec.kind
    if kind not in PLANNERS:
        raise SpecError(f"no planner for strategy {kind!r}: use one of {', '.join(StrategyKind)}")
    return PLANNERS[kind]


def next_action(spec: ReleaseSpec, observed: ObservedState) -> ReleaseAction:
    """The next action for `spec` given `observed`, from the strategy's own planner.

    A planner is a pure `next_action(spec, observed) -> ReleaseAction`; the executor performs the
    action, records it (`core.release.actions.record`) and asks again until Done or Fail. Rollback
    order is always the same (principle 8): traffic back to the stable version, then the new
    version scaled down (Argo's abortScaleDownDelaySeconds: 0 means "never scale down"; here it
    means "at once"), then Fail.
    """
    return planner_for(spec)(spec, observed)


def plan_release(
    spec: ReleaseSpec, analysis_seconds: Mapping[str, int] | None = None
) -> list[PlannedStep]:
    """List the release's steps with weights, pauses and worst-case seconds (pure).

    Args:
        spec: the release.
        analysis_seconds: worst-case seconds per AnalysisTemplate name, where known; an analysis
            of unknown length has `seconds=None` and adds 0 to `worst_case_seconds`.
    """
    planner_for(spec)
    return PLANS[spec.kind](spec, dict(analysis_seconds or {}))

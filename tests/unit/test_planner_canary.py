"""Table tests for the canary planner: replica rounding, surge limits, and each decision."""

from __future__ import annotations

from typing import Any

import pytest

from core.release.actions import (
    Abort,
    AnalysisPhase,
    ApplyWorkload,
    CompleteStep,
    Done,
    Fail,
    Pause,
    Promote,
    RunAnalysis,
    Scale,
    ScaleDownAfter,
    SetCanaryWeight,
    StartFirstDeploy,
    WaitReady,
)
from core.release.observed import ObservedState, Outcome, RunRecord, Track, WorkloadView
from core.release.planners.canary import (
    next_action,
)
from core.release.spec import ReleaseSpec

NEW = "ghcr.io/kyb/kyb-platform@sha256:" + "a" * 64
OLD = "ghcr.io/kyb/kyb-platform@sha256:" + "b" * 64
S, C = Track.STABLE, Track.CANARY
SEED_STEPS = [
    {"setWeight": 10},
    {"pause": {"duration": "5m"}},
    {"setWeight": 20},
    {"pause": {"duration": "10m"}},
    {"setWeight": 50},
    {"pause": {"duration": "15m"}},
    {"setWeight": 100},
]
ERROR_RATE = {"templates": [{"templateName": "error-rate"}]}


def make_spec(replicas: int = 10, **canary: Any) -> ReleaseSpec:
    canary = {"steps": SEED_STEPS, "analysis": ERROR_RATE, **canary}
    data = {"app": "kyb-platform", "namespace": "kyb", "image": NEW, "replicas": replicas}
    return ReleaseSpec.model_validate({**data, "strategy": {"canary": canary}})


def view(image: str, replicas: int, available: int | None = None, **kw: Any) -> WorkloadView:
    ready = replicas if available is None else available
    return WorkloadView(f"kyb-{image[-1]}", image, replicas, ready, ready, ready, **kw)


def old(replicas: int, available: int | None = None, **kw: Any) -> WorkloadView:
    return view(OLD, replicas, available, **kw)


def new(replicas: int, available: int | None = None, **kw: Any) -> WorkloadView:
    return view(NEW, replicas, available, **kw)


def seen(stable=None, canary=None, weight=None, **record: Any) -> ObservedState:
    record.setdefault("running", frozenset({"background"}))
    workloads = {t: v for t, v in ((S, stable), (C, canary)) if v is not None}
    return ObservedState(workloads=workloads, canary_weight=weight, record=RunRecord(**record))


# --- decisions -----------------------------------------------------------------------------------

HUMAN = [{"setWeight": 50}, {"pause": {}}]
CHECK = [{"setWeight": 50}, {"analysis": ERROR_RATE}]
SPEC, HUMAN_SPEC, CHECK_SPEC = make_spec(), make_spec(steps=HUMAN), make_spec(steps=CHECK)
DONE = Done(f"kyb-platform runs {NEW} at 10 replicas")
STEP_CHECK = RunAnalysis("step-1", CHECK_SPEC.strategy.canary.steps[1].analysis, AnalysisPhase.STEP)
BACKGROUND = RunAnalysis("background", SPEC.strategy.canary.analysis, AnalysisPhase.BACKGROUND)
FIRST_GATE = RunAnalysis(
    "first-deploy-0", SPEC.strategy.canary.analysis, AnalysisPhase.FIRST_DEPLOY
)


def make_spec_keep() -> ReleaseSpec:
    return SPEC.with_changes(first_deploy={"onFailure": "keep"})


@pytest.mark.parametrize(
    ("spec", "observed", "action"),
    [
        # first release: recorded as such, up as stable, then every analysis gates it
        (SPEC, seen(), StartFirstDeploy("nothing of kyb-platform runs in kyb yet")),
        (SPEC, seen(first_deploy=True), ApplyWorkload(S, NEW, 10)),
        (SPEC, seen(new(10, 4), first_deploy=True), WaitReady(S, 600)),
        (SPEC, seen(new(10), first_deploy=True), FIRST_GATE),
        (
            SPEC,
            seen(new(10), first_deploy=True, analyses={"first-deploy-0": Outcome.FAILED}),
            Abort("firstDeploy analysis error-rate ended Failed"),
        ),
        (
            SPEC,
            seen(new(10), first_deploy=True, analyses={"first-deploy-0": Outcome.SUCCESSFUL}),
            Done(f"first deploy: kyb-platform runs {NEW} at 10 replicas, its analyses passed"),
        ),
        # a first deploy that failed: nothing to return to, so it goes to 0, then the run fails
        (SPEC, seen(new(10), first_deploy=True, aborted="5xx"), Scale(S, 0)),
        (
            SPEC,
            seen(new(0), first_deploy=True, aborted="5xx"),
            Fail("5xx; nothing to return to, so the new version was scaled to 0"),
        ),
        (
            make_spec_keep(),
            seen(new(10), first_deploy=True, aborted="5xx"),
            Fail("5xx; nothing to return to: the new version was left running (keep)"),
        ),
        # idempotent re-runs
        (SPEC, seen(new(10)), DONE),
        (SPEC, seen(new(10), new(0)), DONE),
        # background analysis starts first, and stops the release when it fails
        (SPEC, seen(old(10), running=frozenset()), BACKGROUND),
        (
            SPEC,
            seen(old(10), analyses={"background": Outcome.FAILED}),
            Abort("background analysis error-rate ended Failed"),
        ),
        (
            SPEC,
            seen(old(10), analyses={"background": Outcome.ERROR}),
            Abort("background analysis error-rate ended Error"),
        ),
        # step 0, setWeight 10 of 10 replicas: canary 1 (surge), stable 9
        (SPEC, seen(old(10)), ApplyWorkload(C, NEW, 1)),
        (SPEC, seen(old(10), new(1, available=0)), Scale(S, 9)),
        (SPEC, seen(old(9), new(1, available=0)), WaitReady(C, 600)),
        (SPEC, seen(old(9), new(1)), CompleteStep(0, 7, "setWeight at canary weight 10%")),
        (
            SPEC,
            seen(old(9), new(1, deadline_exceeded=True)),
            Abort("kyb-a made no progress within 600s"),
        ),
        # step 1, timed pause
        (
            SPEC,
            seen(old(9), new(1), step_index=1),
            Pause("step-1", "canary at 10%", duration_seconds=300),
        ),
        (
            SPEC,
            seen(old(9), new(1), step_index=1, pauses_done=frozenset({"step-1"})),
            CompleteStep(1, 7, "pause at canary weight 10%"),
        ),
        # step 6, setWeight 100: canary 10, stable 0 before promotion (Argo's basic canary)
        (SPEC, seen(old(5), new(5), step_index=6), Scale(C, 8)),
        (
            SPEC,
            seen(old(0), new(10), step_index=6),
            CompleteStep(6, 7, "setWeight at canary weight 100%"),
        ),
        # promotion: stable takes the new image at full size, then the canary goes
        (
            SPEC,
            seen(old(0), new(10), step_index=7),
            Promote("all 7 steps passed: " + NEW + " becomes stable"),
        ),
        (SPEC, seen(old(0), new(10), step_index=7, promoted=True), ApplyWorkload(S, NEW, 10)),
        (SPEC, seen(new(10, available=4), new(10), step_index=7, promoted=True), WaitReady(S, 600)),
        (SPEC, seen(new(10), new(10), step_index=7, promoted=True), Scale(C, 0)),
        (
            SPEC,
            seen(new(10, available=4, deadline_exceeded=True), new(10), promoted=True),
            Fail("kyb-a made no progress within 600s while taking the new image: roll it back"),
        ),
        # abort: stable asked for full, the canary's pods (its traffic) gone at once, the
        # stable waited for, then Fail
        (SPEC, seen(old(5), new(5), aborted="error rate"), Scale(S, 10)),
        (SPEC, seen(old(10, available=6), new(5), aborted="error rate"), Scale(C, 0)),
        (SPEC, seen(old(10, available=6), new(0), aborted="error rate"), WaitReady(S, 600)),
        (
            SPEC,
            seen(old(10), new(0), aborted="error rate"),
            Fail("error rate; rolled back to the stable version"),
        ),
        # a human pause, and its approval
        (
            HUMAN_SPEC,
            seen(old(5), new(5), step_index=1),
            Pause(
                "step-1",
                "canary at 50%: go on with " + NEW + "?",
                needs_human=True,
                timeout_seconds=3600,
            ),
        ),
        (
            HUMAN_SPEC,
            seen(old(5), new(5), step_index=1, pauses_done=frozenset({"step-1"})),
            CompleteStep(1, 2, "pause at canary weight 50%"),
        ),
        # an analysis step and its four outcomes
        (CHECK_SPEC, seen(old(5), new(5), step_index=1), STEP_CHECK),
        (
            CHECK_SPEC,
            seen(old(5), new(5), step_index=1, analyses={"step-1": Outcome.SUCCESSFUL}),
            CompleteStep(1, 2, "analysis at canary weight 50%"),
        ),
        (
            CHECK_SPEC,
            seen(old(5), new(5), step_index=1, analyses={"step-1": Outcome.FAILED}),
            Abort("step analysis error-rate ended Failed"),
        ),
        (
            CHECK_SPEC,
            seen(old(5), new(5), step_index=1, analyses={"step-1": Outcome.INCONCLUSIVE}),
            Pause(
                "step-1:inconclusive",
                "step analysis error-rate was inconclusive",
                needs_human=True,
                timeout_seconds=3600,
            ),
        ),
        (
            CHECK_SPEC,
            seen(
                old(5),
                new(5),
                step_index=1,
                analyses={"step-1": Outcome.INCONCLUSIVE},
                pauses_done=frozenset({"step-1:inconclusive"}),
            ),
            CompleteStep(1, 2, "analysis at canary weight 50%"),
        ),
    ],
)
def test_canary_decisions(spec: ReleaseSpec, observed: ObservedState, action: object) -> None:
    assert next_action(spec, observed) == action


ROUTED = make_spec(
    trafficRouting={"nginx": {"stableIngress": "kyb"}},
    stableService="kyb-stable",
    canaryService="kyb-canary",
    abortScaleDownDelaySeconds=45,
)


@pytest.mark.parametrize(
    ("observed", "action"),
    [
        (seen(old(10)), ApplyWorkload(C, NEW, 1)),
        (seen(old(10), new(1, available=0)), WaitReady(C, 600)),
        (seen(old(10), new(1), weight=0), SetCanaryWeight(10)),
        (seen(old(10), new(1), weight=10), CompleteStep(0, 7, "setWeight at canary weight 10%")),
        (
            seen(old(10), new(10), weight=100, step_index=7, promoted=True),
            ApplyWorkload(S, NEW, 10),
        ),
        (seen(new(10), new(10), weight=100, promoted=True), SetCanaryWeight(0)),
        (seen(new(10), new(10), weight=0, promoted=True), ScaleDownAfter(C, 30)),
        (seen(old(10), new(5), weight=50, aborted="x"), SetCanaryWeight(0)),
        (seen(old(10), new(5), weight=0, aborted="x"), ScaleDownAfter(C, 45)),
        (
            seen(old(10), new(0), weight=0, aborted="x"),
            Fail("x; rolled back to the stable version"),
        ),
    ],
)
def test_traffic_routed_canary_moves_pods_before_traffic(
    observed: ObservedState, action: object
) -> None:
    assert next_action(ROUTED, observed) == action


def test_wrong_planner_for_the_spec_raises() -> None:
    bg = {"blueGreen": {"activeService": "kyb-active"}}
    spec = ReleaseSpec.model_validate(
        {"app": "kyb", "namespace": "kyb", "image": NEW, "strategy": bg}
    )
    with pytest.raises(ValueError, match="canary planner got a blueGreen spec"):
        next_action(spec, seen())

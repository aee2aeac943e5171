"""Rolling planner decisions, the planner lookup, and the release plan artifact's steps."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from core.release.actions import (
    AnalysisPhase,
    ApplyWorkload,
    Done,
    Fail,
    PlannedStep,
    Promote,
    RunAnalysis,
    WaitReady,
    human_pause,
    worst_case_seconds,
)
from core.release.errors import SpecError
from core.release.observed import ObservedState, Outcome, RunRecord, Track, WorkloadView
from core.release.planners import (
    PLANNERS,
    blue_green,
    canary,
    next_action,
    plan_release,
    planner_for,
    rolling,
)
from core.release.spec import ReleaseSpec, StrategyKind

NEW = "ghcr.io/kyb/kyb-platform@sha256:" + "a" * 64
OLD = "ghcr.io/kyb/kyb-platform@sha256:" + "b" * 64
S = Track.STABLE


def make_spec(strategy: dict[str, Any], replicas: int = 5) -> ReleaseSpec:
    data = {"app": "kyb-platform", "namespace": "kyb", "image": NEW, "replicas": replicas}
    return ReleaseSpec.model_validate({**data, "strategy": strategy})


ROLLING = make_spec({"rolling": {"maxSurge": 2, "maxUnavailable": 1}})


def deployment(image: str, replicas: int = 5, ready: int = 5, **kw: Any) -> ObservedState:
    view = WorkloadView("kyb-platform", image, replicas, ready, ready, ready, **kw)
    return ObservedState(workloads={S: view})


@pytest.mark.parametrize(
    ("observed", "action"),
    [
        (ObservedState(), ApplyWorkload(S, NEW, 5)),
        (deployment(OLD), ApplyWorkload(S, NEW, 5)),
        (deployment(OLD, deadline_exceeded=True), ApplyWorkload(S, NEW, 5)),  # a new release
        (deployment(NEW, replicas=3, ready=3), ApplyWorkload(S, NEW, 5)),
        (deployment(NEW, ready=2), WaitReady(S, 600)),
        (deployment(NEW, total=7), WaitReady(S, 600)),  # old pods still terminating
        (deployment(NEW, observed=False), WaitReady(S, 600)),
        (
            deployment(NEW, ready=2, deadline_exceeded=True),
            Fail("kyb-platform made no progress within 600s: roll back to the previous revision"),
        ),
        (deployment(NEW), Done(f"kyb-platform runs {NEW} at 5 replicas")),  # idempotent re-run
    ],
)
def test_rolling_decisions(observed: ObservedState, action: object) -> None:
    assert rolling.next_action(ROLLING, observed) == action


ERROR_RATE = {"templates": [{"templateName": "error-rate"}]}
ANALYSED = make_spec({"rolling": {"maxSurge": 2, "maxUnavailable": 1, "analysis": ERROR_RATE}})
REF = ANALYSED.strategy.rolling.analysis
STARTED = RunRecord(promoted=True)  # the executor saved this before it applied
UNDO = "roll back to the previous revision"
PROMOTE = Promote(f"roll kyb-platform out to {NEW}, then analyse it (postDeploy)")
DONE = Done(f"kyb-platform runs {NEW} at 5 replicas")


def verdict(outcome: Outcome, **kw: Any) -> RunRecord:
    return replace(STARTED, analyses={"post-deploy": outcome}, **kw)


def seen(run: RunRecord, image: str | None = NEW, **kw: Any) -> ObservedState:
    return replace(deployment(image, **kw) if image else ObservedState(), record=run)


@pytest.mark.parametrize(
    ("observed", "action"),
    [
        # no record: a release that writes or watches a rollout promotes (the marker) first
        (seen(RunRecord(), None), PROMOTE),  # first release: analysed too
        (seen(RunRecord(), OLD), PROMOTE),
        (seen(RunRecord(), replicas=3, ready=3), PROMOTE),
        (seen(RunRecord(), ready=2), PROMOTE),  # settling, and we cannot tell who started it
        (seen(RunRecord()), DONE),  # already settled on the image, no record: a no-op
        # promoted: apply, wait, analyse
        (seen(STARTED, OLD), ApplyWorkload(S, NEW, 5)),
        (seen(STARTED, ready=2), WaitReady(S, 600)),
        (
            seen(STARTED, ready=2, deadline_exceeded=True),
            Fail(f"kyb-platform made no progress within 600s: {UNDO}"),
        ),  # before any analysis
        (seen(STARTED), RunAnalysis("post-deploy", REF, AnalysisPhase.POST_DEPLOY)),
        # the verdict
        (seen(verdict(Outcome.SUCCESSFUL)), DONE),
        (
            seen(verdict(Outcome.FAILED)),
            Fail(f"postDeploy analysis error-rate ended Failed: {UNDO}"),
        ),
        (seen(verdict(Outcome.ERROR)), Fail(f"postDeploy analysis error-rate ended Error: {UNDO}")),
        (
            seen(verdict(Outcome.INCONCLUSIVE)),
            human_pause(
                "post-deploy:inconclusive", "postDeploy analysis error-rate was inconclusive"
            ),
        ),
        (
            seen(
                verdict(Outcome.INCONCLUSIVE, pauses_done=frozenset({"post-deploy:inconclusive"}))
            ),
            DONE,
        ),
        (
            seen(verdict(Outcome.INCONCLUSIVE, aborted="not approved: inconclusive")),
            Fail(f"not approved: inconclusive: {UNDO}"),
        ),
        # a crash mid-undo left the failed verdict: fail at once, never redeploy the failed image
        (
            seen(verdict(Outcome.FAILED), OLD),
            Fail(f"postDeploy analysis error-rate ended Failed: {UNDO}"),
        ),
        (
            seen(verdict(Outcome.FAILED), ready=0),
            Fail(f"postDeploy analysis error-rate ended Failed: {UNDO}"),
        ),
    ],
)
def test_rolling_post_deploy_analysis_decisions(observed: ObservedState, action: object) -> None:
    assert rolling.next_action(ANALYSED, observed) == action


def test_rolling_without_analysis_never_promotes_or_reads_the_record() -> None:
    assert rolling.next_action(ROLLING, seen(RunRecord(), OLD)) == ApplyWorkload(S, NEW, 5)
    assert rolling.next_action(ROLLING, seen(STARTED)) == DONE


def test_rolling_uses_its_own_deadline() -> None:
    spec = make_spec({"rolling": {"progressDeadlineSeconds": "2m"}})
    assert rolling.next_action(spec, deployment(NEW, ready=1)) == WaitReady(S, 120)


BG = make_spec({"blueGreen": {"activeService": "kyb-active", "autoPromotionEnabled": False}})
CANARY = make_spec({"canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": "1m"}}]}})


@pytest.mark.parametrize(
    ("spec", "planner"),
    [(ROLLING, rolling.next_action), (BG, blue_green.next_action), (CANARY, canary.next_action)],
)
def test_one_planner_per_strategy(spec: ReleaseSpec, planner: object) -> None:
    assert planner_for(spec) is planner
    assert planner_for(str(spec.kind)) is planner


def test_lookup_covers_every_strategy_and_rejects_unknown_kinds() -> None:
    assert set(PLANNERS) == set(StrategyKind)
    with pytest.raises(SpecError, match="no planner for strategy 'recreate'"):
        planner_for("recreate")


def test_next_action_dispatches_by_kind() -> None:
    assert next_action(ROLLING, ObservedState()) == ApplyWorkload(S, NEW, 5)
    assert next_action(BG, ObservedState(record=RunRecord(first_deploy=True))) == ApplyWorkload(
        Track.BLUE, NEW, 5
    )


SEED_CANARY = make_spec(
    {
        "canary": {
            "steps": [
                {"setWeight": 10},
                {"pause": {"duration": "5m"}},
                {"setWeight": 20},
                {"pause": {"duration": "10m"}},
                {"setWeight": 50},
                {"pause": {"duration": "15m"}},
                {"setWeight": 100},
            ],
            "analysis": {"templates": [{"templateName": "error-rate"}]},
        }
    },
    replicas=10,
)
SEED_BG = make_spec(
    {
        "blueGreen": {
            "activeService": "kyb-active",
            "previewService": "kyb-preview",
            "autoPromotionEnabled": False,
            "prePromotionAnalysis": {"templates": [{"templateName": "success-rate"}]},
            "postPromotionAnalysis": {"templates": [{"templateName": "success-rate"}]},
        }
    }
)


def test_canary_plan_lists_weights_counts_and_worst_case() -> None:
    plan = plan_release(SEED_CANARY)
    assert [s.kind for s in plan] == ["analysis"] + ["setWeight", "pause"] * 3 + [
        "setWeight",
        "promote",
    ]
    assert [s.weight for s in plan[1:-1]] == [10, 10, 20, 20, 50, 50, 100]
    assert [(s.canary_replicas, s.stable_replicas) for s in plan[1:-1:2]] == [
        (1, 9),
        (2, 8),
        (5, 5),
        (10, 0),
    ]
    # 4 setWeight waits + promotion at 600 s each, plus 5 + 10 + 15 minutes of pauses
    assert worst_case_seconds(plan) == 5 * 600 + 300 + 600 + 900


def test_blue_green_plan_counts_human_timeout_and_known_analyses() -> None:
    plan = plan_release(SEED_BG)
    assert [s.kind for s in plan] == [
        "apply",
        "analysis",
        "pause",
        "switch",
        "analysis",
        "scaleDown",
    ]
    assert [s.needs_human for s in plan] == [False, False, True, False, False, False]
    assert plan[1].seconds is None, "an analysis of unknown length must not look free"
    assert worst_case_seconds(plan) == 600 + 3600 + 0 + 30
    known = plan_release(SEED_BG, {"success-rate": 120})
    assert worst_case_seconds(known) == 600 + 120 + 3600 + 120 + 30


def test_rolling_plan() -> None:
    plan = plan_release(ROLLING)
    assert plan[0] == PlannedStep(
        "apply", f"rolling update to {NEW} x5 (maxSurge 2, maxUnavailable 1)", 0, stable_replicas=5
    )
    assert worst_case_seconds(plan) == 600


def test_rolling_plan_lists_the_post_deploy_analysis() -> None:
    plan = plan_release(ANALYSED)
    assert [s.kind for s in plan] == ["apply", "wait", "analysis"]
    assert plan[-1] == PlannedStep("analysis", "post-deploy analysis error-rate", None)
    assert worst_case_seconds(plan) == 600, "an analysis of unknown length counts as 0"
    known = plan_release(ANALYSED, {"error-rate": 300})
    assert known[-1].seconds == 300 and worst_case_seconds(known) == 900

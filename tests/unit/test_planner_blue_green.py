"""Table tests for the blue-green planner: preview, checks, promotion, switch, abort, re-runs."""

from __future__ import annotations

from typing import Any

import pytest

from core.release.actions import (
    Abort,
    AnalysisPhase,
    ApplyWorkload,
    Done,
    Fail,
    Pause,
    Promote,
    RunAnalysis,
    Scale,
    ScaleDownAfter,
    StartFirstDeploy,
    SwitchService,
    WaitReady,
)
from core.release.observed import ObservedState, Outcome, RunRecord, Track, WorkloadView
from core.release.planners.blue_green import colors, next_action
from core.release.spec import ReleaseSpec

NEW = "ghcr.io/kyb/kyb-platform@sha256:" + "a" * 64
OLD = "ghcr.io/kyb/kyb-platform@sha256:" + "b" * 64
BLUE, GREEN = Track.BLUE, Track.GREEN
ACTIVE, PREVIEW = "kyb-platform-active", "kyb-platform-preview"
SUCCESS_RATE = {"templates": [{"templateName": "success-rate"}]}
SEED = {
    "activeService": ACTIVE,
    "previewService": PREVIEW,
    "autoPromotionEnabled": False,
    "scaleDownDelaySeconds": 30,
    "prePromotionAnalysis": SUCCESS_RATE,
    "postPromotionAnalysis": SUCCESS_RATE,
}


def make_spec(**blue_green: Any) -> ReleaseSpec:
    data = {"app": "kyb-platform", "namespace": "kyb", "image": NEW, "replicas": 5}
    return ReleaseSpec.model_validate({**data, "strategy": {"blueGreen": {**SEED, **blue_green}}})


def on(color: Track) -> dict[str, str]:
    return {"app": "kyb-platform", "color": color.value}


def old(replicas: int = 5, available: int | None = None, **kw: Any) -> WorkloadView:
    ready = replicas if available is None else available
    return WorkloadView("kyb-platform-blue", OLD, replicas, ready, ready, ready, color="blue", **kw)


def new(replicas: int = 5, available: int | None = None, **kw: Any) -> WorkloadView:
    ready = replicas if available is None else available
    return WorkloadView("kyb-platform-green", NEW, replicas, ready, ready, ready, **kw)


def seen(blue=None, green=None, active=BLUE, preview=BLUE, **record: Any) -> ObservedState:
    workloads = {c: v for c, v in ((BLUE, blue), (GREEN, green)) if v is not None}
    services = {name: on(c) for name, c in ((ACTIVE, active), (PREVIEW, preview)) if c}
    return ObservedState(workloads=workloads, services=services, record=RunRecord(**record))


SPEC = make_spec()
BLUE_UP = WorkloadView("kyb-platform-blue", NEW, 5, 5, 5, 5)
BG = SPEC.strategy.blue_green
# every blue-green analysis measures the new color's pods by name (they carry no track)
FIRST_PRE = RunAnalysis(
    "first-deploy-0",
    BG.pre_promotion_analysis.with_defaults({"color": "blue"}),
    AnalysisPhase.FIRST_DEPLOY,
)
FIRST_PASSED = {"first-deploy-0": Outcome.SUCCESSFUL, "first-deploy-1": Outcome.SUCCESSFUL}
FIRST_FAILED = {"first-deploy-0": Outcome.FAILED}
PRE = RunAnalysis(
    "pre-promotion",
    BG.pre_promotion_analysis.with_defaults({"color": "green"}),
    AnalysisPhase.PRE_PROMOTION,
)
POST = RunAnalysis(
    "post-promotion",
    BG.post_promotion_analysis.with_defaults({"color": "green"}),
    AnalysisPhase.POST_PROMOTION,
)
PASSED = {"pre-promotion": Outcome.SUCCESSFUL}
APPROVAL = Pause("promotion", f"switch {ACTIVE} to {NEW}?", needs_human=True, timeout_seconds=3600)
DONE = Done(f"kyb-platform runs {NEW} at 5 replicas (green is active)")
APPROVED = frozenset({"promotion"})


@pytest.mark.parametrize(
    ("observed", "action"),
    [
        # preview: new color up behind the preview Service, ready, then checked
        (seen(old()), ApplyWorkload(GREEN, NEW, 5)),
        (seen(old(), new()), SwitchService(PREVIEW, on(GREEN))),
        (seen(old(), new(available=2), preview=GREEN), WaitReady(GREEN, 600)),
        (
            seen(old(), new(available=2, deadline_exceeded=True), preview=GREEN),
            Abort("kyb-platform-green made no progress within 600s"),
        ),
        (seen(old(), new(), preview=GREEN), PRE),
        (
            seen(old(), new(), preview=GREEN, analyses={"pre-promotion": Outcome.FAILED}),
            Abort("prePromotion analysis success-rate ended Failed"),
        ),
        (
            seen(old(), new(), preview=GREEN, analyses={"pre-promotion": Outcome.INCONCLUSIVE}),
            Pause(
                "pre-promotion:inconclusive",
                "prePromotion analysis success-rate was inconclusive",
                needs_human=True,
                timeout_seconds=3600,
            ),
        ),
        # promotion: a human (autoPromotionEnabled false), then the switch
        (seen(old(), new(), preview=GREEN, analyses=PASSED), APPROVAL),
        (
            seen(old(), new(), preview=GREEN, analyses=PASSED, pauses_done=APPROVED),
            Promote(f"green ({NEW}) takes {ACTIVE}"),
        ),
        (
            seen(old(), new(), preview=GREEN, analyses=PASSED, promoted=True),
            SwitchService(ACTIVE, on(GREEN)),
        ),
        # after the switch: post-promotion analysis, then the old color goes after the delay
        (seen(old(), new(), active=GREEN, preview=GREEN, promoted=True), POST),
        (
            seen(
                old(),
                new(),
                active=GREEN,
                preview=GREEN,
                analyses={"post-promotion": Outcome.SUCCESSFUL},
            ),
            ScaleDownAfter(BLUE, 30),
        ),
        (
            seen(
                old(),
                new(),
                active=GREEN,
                preview=GREEN,
                analyses={"post-promotion": Outcome.ERROR},
            ),
            Abort("postPromotion analysis success-rate ended Error"),
        ),
        # idempotent: already released (old color gone, or never there)
        (seen(old(0), new(), active=GREEN, preview=GREEN), DONE),
        (seen(None, new(), active=GREEN, preview=GREEN), DONE),
        # abort: active back to the old color first, then the new color down, then Fail
        (
            seen(old(), new(), active=GREEN, preview=GREEN, aborted="5xx"),
            SwitchService(ACTIVE, on(BLUE)),
        ),
        (seen(old(0), new(), active=GREEN, preview=GREEN, aborted="5xx"), Scale(BLUE, 5)),
        (seen(old(5, 1), new(), active=GREEN, preview=GREEN, aborted="5xx"), WaitReady(BLUE, 600)),
        (seen(old(), new(), preview=GREEN, aborted="5xx"), ScaleDownAfter(GREEN, 30)),
        (
            seen(old(), new(0), preview=GREEN, aborted="5xx"),
            Fail(f"5xx; rolled back, blue serves {ACTIVE}"),
        ),
        # nothing to return to: the failed version goes to 0 rather than keep serving
        (seen(None, new(), active=GREEN, preview=GREEN, aborted="5xx"), Scale(GREEN, 0)),
        # first release: recorded, up behind preview, analysed, only then the active Service
        (
            seen(active=None, preview=None),
            StartFirstDeploy(f"nothing of kyb-platform serves {ACTIVE} yet"),
        ),
        (seen(active=None, preview=None, first_deploy=True), ApplyWorkload(BLUE, NEW, 5)),
        (
            seen(BLUE_UP, active=None, preview=None, first_deploy=True),
            SwitchService(PREVIEW, on(BLUE)),
        ),
        (seen(BLUE_UP, active=None, preview=BLUE, first_deploy=True), FIRST_PRE),
        (
            seen(BLUE_UP, active=None, preview=BLUE, first_deploy=True, analyses=FIRST_PASSED),
            SwitchService(ACTIVE, on(BLUE)),
        ),
        (
            seen(BLUE_UP, active=None, preview=BLUE, first_deploy=True, analyses=FIRST_FAILED),
            Abort("firstDeploy analysis success-rate ended Failed"),
        ),
        (
            seen(BLUE_UP, active=None, preview=BLUE, first_deploy=True, aborted="5xx"),
            Scale(BLUE, 0),
        ),
    ],
)
def test_blue_green_decisions(observed: ObservedState, action: object) -> None:
    assert next_action(SPEC, observed) == action


def test_preview_replica_count_then_full_size_before_the_switch() -> None:
    spec = make_spec(previewReplicaCount=2)
    assert next_action(spec, seen(old())) == ApplyWorkload(GREEN, NEW, 2)
    at_two = seen(old(), new(2), preview=GREEN, analyses=PASSED, pauses_done=APPROVED)
    assert isinstance(next_action(spec, at_two), Promote)
    promoted = seen(old(), new(2), preview=GREEN, analyses=PASSED, promoted=True)
    assert next_action(spec, promoted) == Scale(GREEN, 5)


@pytest.mark.parametrize(
    ("fields", "action"),
    [
        ({"autoPromotionEnabled": True}, Promote(f"green ({NEW}) takes {ACTIVE}")),
        (
            {"autoPromotionEnabled": True, "autoPromotionSeconds": "2m"},
            Pause("promotion", f"auto-promotion of {NEW}", duration_seconds=120),
        ),
        ({"autoPromotionEnabled": False, "autoPromotionSeconds": 120}, APPROVAL),  # Argo ignores it
    ],
)
def test_auto_promotion(fields: dict[str, Any], action: object) -> None:
    observed = seen(old(), new(), preview=GREEN, analyses=PASSED)
    assert next_action(make_spec(**fields), observed) == action


@pytest.mark.parametrize(
    ("observed", "active", "new_color"),
    [
        (seen(old()), BLUE, GREEN),
        (seen(old(), new(), active=GREEN), GREEN, GREEN),
        (seen(None, WorkloadView("g", OLD, 5), active=GREEN), GREEN, BLUE),
        (seen(active=None), None, BLUE),
    ],
)
def test_colors(observed: ObservedState, active: Track | None, new_color: Track) -> None:
    assert colors(SPEC, observed) == (active, new_color)


def test_the_analysed_color_is_the_new_one_unless_the_ref_names_a_color_itself() -> None:
    action = next_action(SPEC, seen(old(), new(), preview=GREEN))
    assert isinstance(action, RunAnalysis)
    assert {a.name: a.value for a in action.ref.args}["color"] == "green"
    pinned = BG.pre_promotion_analysis.with_defaults({"color": "blue"})
    assert pinned.with_defaults({"color": "green"}) == pinned  # the user's own value wins

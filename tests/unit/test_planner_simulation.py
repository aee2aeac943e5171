"""Whole releases, planner by planner, against a simulated cluster (pure: no I/O, no Prefect).

`Sim` stands in for the executor and the cluster only to drive the pure planners through every
state of a release; it is not a fake of a boundary (the real executor is tested on the platform).
New pods start unavailable and become available when the planner waits for them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from core.release.actions import (
    AnalysisPhase,
    ApplyWorkload,
    CompleteStep,
    Done,
    Fail,
    Pause,
    Promote,
    ReleaseAction,
    RunAnalysis,
    Scale,
    ScaleDownAfter,
    SetCanaryWeight,
    SwitchService,
    WaitReady,
    updated_record,
)
from core.release.observed import ObservedState, Outcome, RunRecord, Track, WorkloadView
from core.release.planners import next_action
from core.release.planners.canary import fenceposts
from core.release.spec import ReleaseSpec

NEW = "ghcr.io/kyb/kyb-platform@sha256:" + "a" * 64
OLD = "ghcr.io/kyb/kyb-platform@sha256:" + "b" * 64
S, C, BLUE, GREEN = Track.STABLE, Track.CANARY, Track.BLUE, Track.GREEN
STEPS = [
    {"setWeight": 10},
    {"pause": {"duration": "5m"}},
    {"setWeight": 20},
    {"pause": {"duration": "10m"}},
    {"setWeight": 50},
    {"pause": {"duration": "15m"}},
    {"setWeight": 100},
]
ANALYSIS = {"templates": [{"templateName": "error-rate"}]}


def make_spec(strategy: dict[str, Any], replicas: int = 10) -> ReleaseSpec:
    data = {"app": "kyb-platform", "namespace": "kyb", "image": NEW, "replicas": replicas}
    return ReleaseSpec.model_validate({**data, "strategy": strategy})


def ready(image: str, replicas: int) -> WorkloadView:
    return WorkloadView(f"kyb-{image[-1]}", image, replicas, replicas, replicas, replicas)


class Sim:
    """A cluster and an executor loop in one: performs each action and records it."""

    def __init__(self, spec: ReleaseSpec, workloads: dict, services: dict | None = None) -> None:
        self.spec, self.workloads, self.services = spec, dict(workloads), dict(services or {})
        self.weight: int | None = (
            0 if spec.strategy.canary and spec.strategy.canary.traffic_routing else None
        )
        self.run, self.log = RunRecord(), []
        self.outcomes: dict[str, Outcome] = {}
        self.declined: set[str] = set()
        self.stuck: set[Track] = set()
        self.snapshots: list[tuple[RunRecord, dict]] = []

    def observe(self) -> ObservedState:
        return ObservedState(dict(self.workloads), dict(self.services), self.weight, self.run)

    def _resize(self, track: Track, image: str, replicas: int) -> None:
        view = self.workloads.get(track) or WorkloadView(f"kyb-{track}", image, 0)
        keep = min(view.available, replicas) if view.image == image else 0
        self.workloads[track] = replace(
            view, image=image, replicas=replicas, updated=keep, ready=keep, available=keep
        )

    def perform(self, action: ReleaseAction) -> None:
        match action:
            case ApplyWorkload(track=t, image=image, replicas=n):
                self._resize(t, image, n)
            case Scale(track=t, replicas=n):
                self._resize(t, self.workloads[t].image, n)
            case ScaleDownAfter(track=t):
                self._resize(t, self.workloads[t].image, 0)
            case WaitReady(track=t):
                view = self.workloads[t]
                if t in self.stuck:
                    self.workloads[t] = replace(view, deadline_exceeded=True)
                else:
                    n = view.replicas
                    self.workloads[t] = replace(view, updated=n, ready=n, available=n)
            case SwitchService(service=name, selector=selector):
                self.services[name] = dict(selector)
            case SetCanaryWeight(weight=w):
                self.weight = w
        outcome = None
        if isinstance(action, RunAnalysis) and action.phase is not AnalysisPhase.BACKGROUND:
            outcome = self.outcomes.get(action.key, Outcome.SUCCESSFUL)
        approved = not (isinstance(action, Pause) and action.key in self.declined)
        self.run = updated_record(self.run, action, outcome=outcome, approved=approved)

    def release(self, inject=None, limit: int = 400) -> ReleaseAction:
        for _ in range(limit):
            action = next_action(self.spec, self.observe())
            self.log.append(action)
            if action.terminal:
                return action
            self.perform(action)
            if inject:
                self.run = inject(self.run)
            self.snapshots.append((self.run, dict(self.workloads)))
        raise AssertionError(f"no Done/Fail after {limit} actions: {self.log[-5:]}")

    def first(self, kind: type, **match: Any) -> int:
        hits = (i for i, a in enumerate(self.log) if isinstance(a, kind))
        return next(i for i in hits if all(getattr(self.log[i], k) == v for k, v in match.items()))


CANARY = make_spec({"canary": {"steps": STEPS, "analysis": ANALYSIS}})


def test_canary_release_walks_the_steps_within_surge_and_unavailable() -> None:
    sim = Sim(CANARY, {S: ready(OLD, 10)})
    assert isinstance(sim.release(), Done)
    surge, unavailable = fenceposts("25%", "25%", 10)
    for run, workloads in sim.snapshots:
        if run.promoted:
            break
        stable, canary = workloads[S], workloads.get(C)
        spec_total = stable.replicas + (canary.replicas if canary else 0)
        available = stable.available + (canary.available if canary else 0)
        assert spec_total <= 10 + surge
        assert available >= 10 - unavailable
    at_steps = [
        sim.snapshots[i][1][C].replicas
        for i, a in enumerate(sim.log)
        if isinstance(a, CompleteStep)
    ]
    assert at_steps == [1, 1, 2, 2, 5, 5, 10]
    assert sum(isinstance(a, Promote) for a in sim.log) == 1
    assert sim.workloads[S].runs(NEW, 10) and sim.workloads[C].replicas == 0
    rerun = Sim(CANARY, sim.workloads)
    assert isinstance(rerun.release(), Done) and len(rerun.log) == 1, "a re-run writes nothing"


def test_canary_abort_puts_stable_back_before_removing_the_canary() -> None:
    sim = Sim(CANARY, {S: ready(OLD, 10)})

    def fail_background(run: RunRecord) -> RunRecord:
        if run.step_index >= 3 and "background" in run.running:
            return replace(run, running=frozenset(), analyses={"background": Outcome.FAILED})
        return run

    result = sim.release(inject=fail_background)
    assert (
        isinstance(result, Fail) and "background analysis error-rate ended Failed" in result.reason
    )
    assert not any(isinstance(a, Promote) for a in sim.log)
    assert sim.first(Scale, track=S, replicas=10) < sim.first(Scale, track=C, replicas=0)
    assert sim.workloads[S].runs(OLD, 10) and sim.workloads[C].replicas == 0


def test_canary_declined_by_a_human_rolls_back() -> None:
    spec = make_spec({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}})
    sim = Sim(spec, {S: ready(OLD, 10)})
    sim.declined = {"step-1"}
    result = sim.release()
    assert isinstance(result, Fail) and "not approved" in result.reason
    assert sim.workloads[S].runs(OLD, 10) and sim.workloads[C].replicas == 0


def test_traffic_routed_canary_shifts_traffic_after_pods_are_ready() -> None:
    routed = {
        "steps": STEPS,
        "trafficRouting": {"nginx": {"stableIngress": "kyb"}},
        "stableService": "kyb-stable",
        "canaryService": "kyb-canary",
    }
    sim = Sim(make_spec({"canary": routed}), {S: ready(OLD, 10)})
    assert isinstance(sim.release(), Done)
    weights = [a.weight for a in sim.log if isinstance(a, SetCanaryWeight)]
    assert weights == [10, 20, 50, 100, 0]
    for i, action in enumerate(sim.log):
        if isinstance(action, SetCanaryWeight) and action.weight:
            canary = sim.snapshots[i - 1][1][C]
            assert canary.available >= -(-10 * action.weight // 100), "traffic before pods"
    pre = [w[S].replicas for run, w in sim.snapshots if not run.promoted]
    assert set(pre) == {10}, "a routed canary keeps the stable at full size until promotion"


SUCCESS_RATE = {"templates": [{"templateName": "success-rate"}]}
BG_FIELDS = {
    "activeService": "kyb-active",
    "previewService": "kyb-preview",
    "autoPromotionEnabled": False,
    "prePromotionAnalysis": SUCCESS_RATE,
    "postPromotionAnalysis": SUCCESS_RATE,
}
BG = make_spec({"blueGreen": BG_FIELDS}, replicas=5)
ON_BLUE = {
    "kyb-active": {"app": "kyb-platform", "color": "blue"},
    "kyb-preview": {"app": "kyb-platform", "color": "blue"},
}


def test_blue_green_release_in_argo_order() -> None:
    sim = Sim(BG, {BLUE: ready(OLD, 5)}, ON_BLUE)
    assert isinstance(sim.release(), Done)
    order = [
        sim.first(SwitchService, service="kyb-preview"),
        sim.first(RunAnalysis, key="pre-promotion"),
        sim.first(Pause, key="promotion"),
        sim.first(Promote),
        sim.first(SwitchService, service="kyb-active"),
        sim.first(RunAnalysis, key="post-promotion"),
        sim.first(ScaleDownAfter, track=BLUE),
    ]
    assert order == sorted(order)
    assert sim.services["kyb-active"]["color"] == "green" and sim.workloads[BLUE].replicas == 0
    rerun = Sim(BG, sim.workloads, sim.services)
    assert isinstance(rerun.release(), Done) and len(rerun.log) == 1


def test_blue_green_failed_post_promotion_switches_back_first() -> None:
    sim = Sim(BG, {BLUE: ready(OLD, 5)}, ON_BLUE)
    sim.outcomes = {"post-promotion": Outcome.FAILED}
    assert isinstance(sim.release(), Fail)
    back = sim.first(
        SwitchService, service="kyb-active", selector={"app": "kyb-platform", "color": "blue"}
    )
    assert back < sim.first(ScaleDownAfter, track=GREEN)
    assert sim.services["kyb-active"]["color"] == "blue"
    assert sim.workloads[BLUE].runs(OLD, 5) and sim.workloads[GREEN].replicas == 0


def test_rolling_release_and_a_stuck_one() -> None:
    spec = make_spec({"rolling": {}}, replicas=3)
    sim = Sim(spec, {S: ready(OLD, 3)})
    assert isinstance(sim.release(), Done)
    assert [type(a) for a in sim.log] == [ApplyWorkload, WaitReady, Done]
    stuck = Sim(spec, {S: ready(OLD, 3)})
    stuck.stuck = {S}
    assert isinstance(stuck.release(), Fail)


ROLLING_ANALYSED = make_spec({"rolling": {"analysis": ANALYSIS}}, replicas=3)
POST_DEPLOY = "post-deploy"


def test_rolling_release_analyses_the_settled_revision_then_a_rerun_writes_nothing() -> None:
    sim = Sim(ROLLING_ANALYSED, {S: ready(OLD, 3)})
    assert isinstance(sim.release(), Done)
    assert [type(a) for a in sim.log] == [Promote, ApplyWorkload, WaitReady, RunAnalysis, Done]
    assert sim.log[3].phase is AnalysisPhase.POST_DEPLOY
    settled = sim.snapshots[2][1][S]  # what the analysis saw
    assert settled.runs(NEW, 3)
    rerun = Sim(ROLLING_ANALYSED, sim.workloads)  # the record is gone once a release ends
    assert isinstance(rerun.release(), Done) and len(rerun.log) == 1


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.ERROR])
def test_rolling_failed_or_errored_analysis_fails_the_release(outcome: Outcome) -> None:
    sim = Sim(ROLLING_ANALYSED, {S: ready(OLD, 3)})
    sim.outcomes = {POST_DEPLOY: outcome}
    result = sim.release()
    assert isinstance(result, Fail)
    assert result.reason == (
        f"postDeploy analysis error-rate ended {outcome}: roll back to the previous revision"
    )  # the executor then undoes the rollout


@pytest.mark.parametrize(("declined", "end"), [(set(), Done), ({"post-deploy:inconclusive"}, Fail)])
def test_rolling_inconclusive_analysis_asks_a_human(declined: set, end: type) -> None:
    sim = Sim(ROLLING_ANALYSED, {S: ready(OLD, 3)})
    sim.outcomes, sim.declined = {POST_DEPLOY: Outcome.INCONCLUSIVE}, declined
    result = sim.release()
    assert isinstance(result, end)
    pause = sim.log[sim.first(Pause)]
    assert pause.needs_human and pause.key == "post-deploy:inconclusive"
    assert sim.first(RunAnalysis) < sim.first(Pause)
    if end is Fail:
        assert "not approved" in result.reason


def test_rolling_deadline_fails_before_any_analysis() -> None:
    sim = Sim(ROLLING_ANALYSED, {S: ready(OLD, 3)})
    sim.stuck = {S}
    result = sim.release()
    assert isinstance(result, Fail) and "made no progress within 600s" in result.reason
    assert not any(isinstance(a, RunAnalysis) for a in sim.log)


class Crash(Exception):
    """The executor's process died."""


def test_rolling_crash_after_the_apply_still_analyses_on_the_rerun() -> None:
    sim = Sim(ROLLING_ANALYSED, {S: ready(OLD, 3)})

    def crash_after_apply(run: RunRecord) -> RunRecord:
        if isinstance(sim.log[-1], ApplyWorkload):
            raise Crash
        return run

    with pytest.raises(Crash):
        sim.release(inject=crash_after_apply)
    saved = sim.run  # the executor saved the record when Promote changed it, before the apply
    assert saved.promoted
    settled = {S: ready(NEW, 3)}  # Kubernetes finished the rollout while nobody watched
    rerun = Sim(ROLLING_ANALYSED, settled)
    rerun.run = saved
    assert isinstance(rerun.release(), Done)
    assert [type(a) for a in rerun.log] == [RunAnalysis, Done]
    forgotten = Sim(ROLLING_ANALYSED, settled)  # without the record it would look like a no-op
    assert isinstance(forgotten.release(), Done) and len(forgotten.log) == 1

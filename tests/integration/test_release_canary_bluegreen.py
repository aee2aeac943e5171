"""Canary and blue-green releases on the real cluster, with analysis verdicts and human pauses."""

from __future__ import annotations

import pytest
from prefect.artifacts import Artifact

from blocks import KubernetesCluster
from core.release.actions import AnalysisPhase
from core.release.observed import Outcome
from tests.integration.progress_helpers import assert_progressed
from tests.integration.release_helpers import (
    V1,
    V2,
    Scripted,
    deployments,
    release_flow,
    resume_when_paused,
    selector,
    settle,
    spec,
)

SUCCESS_RATE = {"templates": [{"templateName": "success-rate"}]}
CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 20},
            {"pause": {"duration": 1}},
            {"analysis": SUCCESS_RATE},
            {"setWeight": 60},
            {"pause": {}},
        ]
    }
}
BLUE_GREEN = {
    "blueGreen": {
        "activeService": "web-active",
        "previewService": "web-preview",
        "autoPromotionEnabled": False,
        "scaleDownDelaySeconds": 1,
        "abortScaleDownDelaySeconds": 1,
        "prePromotionAnalysis": SUCCESS_RATE,
        "postPromotionAnalysis": {"templates": [{"templateName": "error-rate"}]},
    }
}


@pytest.fixture
def cluster(platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


def _first(namespace: str, strategy: dict) -> None:
    assert release_flow(spec(namespace, V1, strategy, replicas=5), Scripted()).ok


def test_canary_walks_its_steps_and_promotes(cluster, namespace) -> None:
    _first(namespace, CANARY)
    resumer = resume_when_paused([{"choice": "promote", "decided_by": "ana", "reason": "green"}])
    runner = Scripted()
    state = release_flow(spec(namespace, V2, CANARY, replicas=5), runner, return_state=True)
    result = state.result()
    resumer.join(5)
    assert result.ok, result.summary
    want = {"web": (V2, 5, 5), "web-canary": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want  # the scaled-down canary's pods may linger
    assert selector(cluster, namespace, "web") == {"app": "web"}
    assert runner.calls == [("success-rate", AnalysisPhase.STEP)]
    assert [(d.choice, d.decided_by) for d in result.decisions] == [("promote", "ana")]
    actions = [e.action for e in result.journal]
    assert "apply canary: " + V2 + " x1" in actions  # 20% of 5
    assert any(a.startswith("scale stable to 2") for a in actions)  # 60%: canary 3, stable 2
    progress = Artifact.get(f"release-progress-{namespace}-web")
    assert progress is not None and float(progress.data) == 100.0
    assert "step 5/5 done" in (progress.description or "")
    steps = ["apply canary", "step 1/5 complete", "wait for approval", "step 5/5 complete", "done"]
    run = state.state_details.flow_run_id
    assert_progressed("release", run, steps, name=f"{namespace}-web")


def test_failed_analysis_aborts_canary_back_to_stable(cluster, namespace) -> None:
    _first(namespace, CANARY)
    result = release_flow(
        spec(namespace, V2, CANARY, replicas=5), Scripted({"success-rate": Outcome.FAILED})
    )
    assert not result.ok
    assert "rolled back to the stable version" in result.summary
    want = {"web": (V1, 5, 5), "web-canary": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want  # a scaled-down canary's pods may linger
    actions = [e.action for e in result.journal]
    back, down = (
        actions.index("scale stable to 5 replicas"),
        actions.index("scale canary to 0 replicas"),
    )
    assert back < down  # traffic back to stable first, then the new version scaled down


def test_human_abort_at_a_pause_rolls_back_and_records_who(cluster, namespace) -> None:
    _first(namespace, CANARY)
    resume_when_paused([{"choice": "abort", "decided_by": "bo", "reason": "latency up"}])
    result = release_flow(spec(namespace, V2, CANARY, replicas=5), Scripted())
    assert not result.ok and "not approved" in result.summary
    assert [(d.choice, d.decided_by, d.reason) for d in result.decisions] == [
        ("abort", "bo", "latency up")
    ]
    assert deployments(cluster, namespace)["web"] == (V1, 5, 5)


def test_unanswered_pause_times_out_to_abort(cluster, namespace, monkeypatch) -> None:
    import core.release.actions

    monkeypatch.setattr(core.release.actions, "HUMAN_PAUSE_TIMEOUT_SECONDS", 3)
    _first(namespace, CANARY)
    result = release_flow(spec(namespace, V2, CANARY, replicas=5), Scripted())
    assert not result.ok
    assert [(d.choice, d.decided_by) for d in result.decisions] == [("abort", "timeout")]
    assert deployments(cluster, namespace)["web"] == (V1, 5, 5)
    assert deployments(cluster, namespace)["web-canary"][1] == 0


def test_blue_green_previews_promotes_and_scales_old_color_down(cluster, namespace) -> None:
    _first(namespace, BLUE_GREEN)
    first_color = selector(cluster, namespace, "web-active")["color"]
    resume_when_paused([{"choice": "promote", "decided_by": "ana"}])
    runner = Scripted()
    state = release_flow(spec(namespace, V2, BLUE_GREEN, replicas=5), runner, return_state=True)
    result = state.result()
    assert result.ok, result.summary
    new = "green" if first_color == "blue" else "blue"
    assert selector(cluster, namespace, "web-active") == {"app": "web", "color": new}
    assert selector(cluster, namespace, "web-preview") == {"app": "web", "color": new}
    assert deployments(cluster, namespace) == {
        f"web-{new}": (V2, 5, 5),
        f"web-{first_color}": (V1, 0, 0),
    }
    assert [c[1] for c in runner.calls] == [
        AnalysisPhase.PRE_PROMOTION,
        AnalysisPhase.POST_PROMOTION,
    ]
    phases = [
        f"apply {new}",  # the preview scaled up
        "point Service web-preview",  # ready: the preview serves it (a wait only if slow)
        "run prePromotion analysis",
        "wait for approval",
        "point Service web-active",
        "run postPromotion analysis",
        f"scale {first_color} down",
        "done",
    ]
    run = state.state_details.flow_run_id
    versions = assert_progressed("release", run, phases, name=f"{namespace}-web")
    by_step = {r["step"]: r["progress"] for r in versions[-1]}
    pre = next(p for s, p in by_step.items() if s.startswith("run prePromotion"))
    post = next(p for s, p in by_step.items() if s.startswith("run postPromotion"))
    assert 0 < pre < post < 100  # percent by phase


def test_blue_green_failed_post_promotion_switches_back(cluster, namespace) -> None:
    _first(namespace, BLUE_GREEN)
    old = selector(cluster, namespace, "web-active")["color"]
    resume_when_paused([{"choice": "promote", "decided_by": "ana"}])
    result = release_flow(
        spec(namespace, V2, BLUE_GREEN, replicas=5), Scripted({"error-rate": Outcome.FAILED})
    )
    assert not result.ok
    assert selector(cluster, namespace, "web-active") == {"app": "web", "color": old}
    new = "green" if old == "blue" else "blue"
    want = {f"web-{old}": (V1, 5, 5), f"web-{new}": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want


def test_a_first_blue_green_deploy_that_fails_its_analysis_never_serves(cluster, namespace) -> None:
    """A first deploy is analysed behind preview; failing, it never serves and goes to zero."""
    first = spec(namespace, V1, BLUE_GREEN, replicas=3, firstDeploy={"analysis": True})
    runner = Scripted({"success-rate": Outcome.FAILED})
    result = release_flow(first, runner)
    assert not result.ok and result.first_deploy
    assert "firstDeploy analysis success-rate ended Failed" in result.summary
    assert "scaled to 0" in result.summary
    assert runner.calls == [("success-rate", AnalysisPhase.FIRST_DEPLOY)]
    assert settle(cluster, namespace, {"web-blue": (V1, 0, 0)}) == {"web-blue": (V1, 0, 0)}
    assert selector(cluster, namespace, "web-active") == {"app": "web", "color": "none"}


def test_a_first_canary_deploy_that_passes_its_analysis_is_done(cluster, namespace) -> None:
    first = spec(namespace, V1, CANARY, replicas=3, firstDeploy={"analysis": True})
    runner = Scripted()
    result = release_flow(first, runner)
    assert result.ok and result.first_deploy, result.summary
    assert runner.calls == [("success-rate", AnalysisPhase.FIRST_DEPLOY)]
    assert deployments(cluster, namespace) == {"web": (V1, 3, 3)}

"""Which pods an analysis measures: the labels real pods carry, what selects them."""

from __future__ import annotations

from core.analysis.builtins import BUILTINS
from core.analysis.prepare import prepare
from core.release.actions import AnalysisPhase
from core.release.layout import pod_labels, selector, tracks, workload_manifest
from core.release.observed import Track
from core.release.spec import AnalysisRef, ReleaseSpec

ERRORS = {"templates": [{"templateName": "error-rate"}]}


def make(strategy: dict) -> ReleaseSpec:
    return ReleaseSpec.model_validate(
        {
            "app": "web",
            "namespace": "shop",
            "image": "r/web@sha256:" + "a" * 64,
            "strategy": strategy,
        }
    )


def query(spec: ReleaseSpec, phase: AnalysisPhase, ref: AnalysisRef) -> str:
    return prepare(ref, phase, spec, BUILTINS, 5).queries["error-rate"]


def test_a_blue_green_analysis_selects_the_color_it_is_given_not_a_track() -> None:
    spec = make({"blueGreen": {"activeService": "web", "prePromotionAnalysis": ERRORS}})
    ref = spec.strategy.blue_green.pre_promotion_analysis.with_defaults({"color": "green"})
    text = query(spec, AnalysisPhase.PRE_PROMOTION, ref)
    assert 'color=~"green"' in text and 'track=~".*"' in text
    green = workload_manifest(spec, Track.GREEN, spec.image, 2)
    assert green["spec"]["template"]["metadata"]["labels"]["color"] == "green"
    assert "track" not in green["spec"]["template"]["metadata"]["labels"]


def test_a_canary_analysis_selects_the_canary_track_its_pods_carry() -> None:
    spec = make({"canary": {"steps": [{"setWeight": 20}, {"analysis": ERRORS}]}})
    ref = AnalysisRef.model_validate(ERRORS)
    assert 'track=~"canary"' in query(spec, AnalysisPhase.STEP, ref)
    pods = workload_manifest(spec, Track.CANARY, spec.image, 1)["spec"]["template"]
    assert pods["metadata"]["labels"]["track"] == "canary"


def test_rolling_pods_say_they_are_stable_without_changing_the_selector() -> None:
    spec = make({"rolling": {"analysis": ERRORS}})
    (track,) = tracks(spec)
    deployment = workload_manifest(spec, track, spec.image, 3)
    assert deployment["spec"]["selector"]["matchLabels"] == selector(spec, track)
    assert "track" not in deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"]["track"] == "stable"
    assert pod_labels(spec, track)["track"] == "stable"
    ref = AnalysisRef.model_validate(ERRORS)
    assert 'track=~"stable"' in query(spec, AnalysisPhase.POST_DEPLOY, ref)

"""Table tests for the release spec: every invalid input fails saying what to fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from core.durations import whole_seconds
from core.release.spec import (
    GatewayApiRouting,
    NginxRouting,
    ReleaseSpec,
    StrategyKind,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"registry.local:5000/kyb/kyb-platform@{DIGEST}"


def spec_data(strategy: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """A valid spec as plain data (camelCase, as in YAML), with `top` overriding fields."""
    data = {
        "app": "kyb-platform",
        "namespace": "kyb-staging",
        "image": IMAGE,
        "replicas": 5,
        "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}
        if strategy is None
        else strategy,
    }
    return {**data, **top}


def canary(**fields: Any) -> dict[str, Any]:
    return {"canary": {"steps": [{"setWeight": 50}], **fields}}


def blue_green(**fields: Any) -> dict[str, Any]:
    return {"blueGreen": {"activeService": "kyb-active", "previewService": "kyb-preview", **fields}}


ROUTED = {"stableService": "kyb-stable", "canaryService": "kyb-canary"}


@pytest.mark.parametrize(
    ("data", "fix"),
    [
        # canary steps
        (spec_data(canary(steps=[{"setWeight": 10, "pause": {}}])), "exactly one of setWeight"),
        (
            spec_data(canary(steps=[{}])),
            "exactly one of setWeight, pause, analysis, setCanaryScale; got none",
        ),
        (spec_data(canary(steps=[{"setWeight": 150}])), "setWeight 150 is out of range"),
        (spec_data(canary(steps=[{"setWeight": -1}])), "setWeight -1 is out of range"),
        (spec_data(canary(steps=[{"setWeight": "50"}])), "valid integer"),
        (spec_data(canary(steps=[{"setWeight": True}])), "valid integer"),
        (spec_data(replicas=True), "valid integer"),
        (
            spec_data(canary(steps=[{"setCanaryScale": {"replicas": 1}}])),
            "steps[0].setCanaryScale requires trafficRouting",
        ),
        (spec_data(canary(steps=[{"pause": {"duration": -5}}])), "is negative"),
        (spec_data(canary(steps=[{"pause": {"duration": "-5m"}}])), "is negative"),
        (spec_data(canary(steps=[{"pause": {"duration": "5d"}}])), "use seconds (30) or 30s"),
        (spec_data(canary(steps=[{"analysis": {"templates": []}}])), "at least 1 item"),
        (
            spec_data(canary(analysis={"templates": [{"templateName": "e"}], "startingStep": 3})),
            "startingStep 3 is past the last step",
        ),
        # surge
        (spec_data(canary(maxSurge=0, maxUnavailable="0%")), "both 0"),
        (spec_data({"rolling": {"maxSurge": 0, "maxUnavailable": 0}}), "both 0"),
        (spec_data({"rolling": {"maxSurge": "150%"}}), "percentage 0%..100%"),
        (spec_data({"rolling": {"maxUnavailable": -1}}), "whole number >= 0"),
        # rolling post-deploy analysis
        (spec_data({"rolling": {"analysis": {"templates": []}}}), "at least 1 item"),
        (
            spec_data(
                {"rolling": {"analysis": {"templates": [{"templateName": "e"}], "startingStep": 0}}}
            ),
            "remove startingStep",
        ),
        (
            spec_data({"rolling": {"analysis": {"templates": [{"templateName": "Error_Rate"}]}}}),
            "not a DNS-1123 label",
        ),
        (spec_data({"rolling": {"postDeployAnalysis": {}}}), "postDeployAnalysis"),
        # traffic routing
        (
            spec_data(canary(trafficRouting={"istio": {}}, **ROUTED)),
            "trafficRouting.istio is not supported: istio is not driven here",
        ),
        (
            spec_data(canary(trafficRouting={"plugins": {"acme/mesh": {}}}, **ROUTED)),
            "trafficRouting plugin 'acme/mesh' is not driven here",
        ),
        (
            spec_data(canary(trafficRouting={"nginx": {"stableIngress": "kyb"}})),
            "needs stableService and canaryService",
        ),
        (spec_data(canary(stableService="kyb", canaryService="kyb")), "give the canary its own"),
        # strategy
        (spec_data({"recreate": {}}), "unknown strategy 'recreate'"),
        (spec_data({}), "exactly one of rolling, blueGreen, canary; got 0"),
        (spec_data({"rolling": {}, "canary": {}}), "exactly one of rolling, blueGreen, canary"),
        # blue-green
        (spec_data(blue_green(previewService="kyb-active")), "give the preview its own Service"),
        (spec_data(blue_green(activeService="1-active")), "DNS-1035 label"),
        (spec_data(blue_green(previewReplicaCount=6)), "previewReplicaCount 6 exceeds replicas 5"),
        (spec_data(blue_green(scaleDownDelaySeconds="-30s")), "is negative"),
        (spec_data(blue_green(antiAffinity={})), "antiAffinity"),
        # top level
        (spec_data(image="ghcr.io/kyb/kyb-platform:latest"), "deploy by digest"),
        (spec_data(image="kyb-platform"), "not pinned by digest"),
        (spec_data(image="ghcr.io/kyb/kyb-platform@sha256:abc"), "not a valid reference"),
        (spec_data(image=f"ghcr.io/kyb/kyb-platform@{DIGEST.upper()}"), "not a valid reference"),
        (spec_data(image=f"ghcr.io/KYB/platform@{DIGEST}"), "not a valid reference"),
        (spec_data(app="KYB_Platform"), "not a DNS-1123 label"),
        (spec_data(app="a" * 64), "not a DNS-1123 label"),
        (spec_data(namespace="-staging"), "not a DNS-1123 label"),
        (spec_data(replicas=-1), "greater than or equal to 0"),
        (spec_data(progressDeadlineSeconds=0), "greater than 0"),
    ],
)
def test_invalid_spec_says_what_to_fix(data: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ReleaseSpec.model_validate(data)
    assert fix in str(caught.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0), (30, 30), ("30", 30), ("30s", 30), ("5m", 300), ("1h", 3600), (" 10m ", 600)],
)
def test_durations_normalise_to_seconds(value: int | str, seconds: int) -> None:
    assert whole_seconds(value) == seconds  # the one parser, rounded up to whole seconds
    step = {"pause": {"duration": value}}
    spec = ReleaseSpec.model_validate(spec_data(canary(steps=[step])))
    assert spec.strategy.canary.steps[0].pause.duration == seconds


@pytest.mark.parametrize(
    "image",
    [
        f"kyb-platform@{DIGEST}",
        f"localhost:5000/kyb-platform:v2.1.0@{DIGEST}",
        f"ghcr.io/kyb/platform/api:main-1a2b3c@{DIGEST}",
    ],
)
def test_digest_references_are_accepted(image: str) -> None:
    assert ReleaseSpec.model_validate(spec_data(image=image)).image == image


def test_defaults_fill_container_labels_and_argo_values() -> None:
    spec = ReleaseSpec.model_validate(spec_data(blue_green()))
    bg = spec.strategy.blue_green
    assert (spec.container, spec.labels) == ("kyb-platform", {"app": "kyb-platform"})
    assert (spec.progress_deadline_seconds, spec.kind) == (600, StrategyKind.BLUE_GREEN)
    assert (bg.scale_down_delay_seconds, bg.abort_scale_down_delay_seconds) == (30, 30)
    assert bg.auto_promotion_enabled is True
    c = ReleaseSpec.model_validate(spec_data()).strategy.canary
    assert (c.max_surge, c.max_unavailable, c.traffic_routing) == ("25%", "25%", None)


def test_snake_case_and_camel_case_both_load_and_dump_back_to_argo_names() -> None:
    camel = ReleaseSpec.model_validate(spec_data(blue_green(autoPromotionEnabled=False)))
    snake = ReleaseSpec.model_validate(
        spec_data(
            {
                "blue_green": {
                    "active_service": "kyb-active",
                    "preview_service": "kyb-preview",
                    "auto_promotion_enabled": False,
                }
            }
        )
    )
    assert camel == snake
    dumped = camel.model_dump(by_alias=True)["strategy"]["blueGreen"]
    assert dumped["activeService"] == "kyb-active"
    assert dumped["autoPromotionEnabled"] is False


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        ({"nginx": {"stableIngress": "kyb"}}, NginxRouting(stable_ingress="kyb")),
        (
            {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "kyb", "namespace": "gw"}}},
            GatewayApiRouting(http_route="kyb", namespace="gw"),
        ),
        ({"gatewayAPI": {"httpRoute": "kyb"}}, GatewayApiRouting(http_route="kyb")),
    ],
)
def test_traffic_routers(routing: dict[str, Any], expected: object) -> None:
    spec = ReleaseSpec.model_validate(spec_data(canary(trafficRouting=routing, **ROUTED)))
    assert spec.strategy.canary.traffic_routing == expected


def test_canary_step_kinds() -> None:
    steps = [
        {"setWeight": 0},
        {"pause": None},
        {"pause": {"duration": "1m"}},
        {"analysis": {"templates": [{"templateName": "error-rate"}]}},
    ]
    spec = ReleaseSpec.model_validate(spec_data(canary(steps=steps)))
    got = [(s.kind, s.set_weight) for s in spec.strategy.canary.steps]
    assert got == [("setWeight", 0), ("pause", None), ("pause", None), ("analysis", None)]
    assert spec.strategy.canary.steps[1].pause.duration is None


def test_spec_is_frozen_and_changes_return_validated_copies() -> None:
    data = spec_data()
    before = copy.deepcopy(data)
    spec = ReleaseSpec.model_validate(data)
    assert data == before, "validation must not mutate the caller's data"
    with pytest.raises(ValidationError):
        spec.replicas = 3  # type: ignore[misc]
    bigger = spec.with_changes(replicas=9)
    assert (bigger.replicas, spec.replicas) == (9, 5)
    assert bigger.strategy == spec.strategy
    with pytest.raises(ValidationError, match="deploy by digest"):
        spec.with_changes(image="kyb-platform:latest")


def test_rolling_deadline_overrides_the_spec_deadline() -> None:
    plain = ReleaseSpec.model_validate(spec_data({"rolling": {}}))
    own = ReleaseSpec.model_validate(spec_data({"rolling": {"progressDeadlineSeconds": "2m"}}))
    assert (plain.deadline_seconds, own.deadline_seconds) == (600, 120)


def test_rolling_analysis_reads_argo_analysis_refs_and_dumps_them_back() -> None:
    ref = {
        "templates": [{"templateName": "error-rate"}, {"templateName": "latency"}],
        "args": [{"name": "service-name", "value": "kyb-platform"}],
    }
    spec = ReleaseSpec.model_validate(spec_data({"rolling": {"maxSurge": 1, "analysis": ref}}))
    analysis = spec.strategy.rolling.analysis
    assert analysis.names == ("error-rate", "latency")
    assert [(a.name, a.value) for a in analysis.args] == [("service-name", "kyb-platform")]
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert dumped["strategy"]["rolling"]["analysis"] == ref
    assert spec.with_changes(replicas=2).strategy.rolling.analysis == analysis
    plain = ReleaseSpec.model_validate(spec_data({"rolling": {}}))
    assert plain.strategy.rolling.analysis is None

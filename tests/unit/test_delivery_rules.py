"""Delivery decisions from data: branch rules, a release from an overlay, the monitoring window."""

from __future__ import annotations

import pytest

from core.delivery.branches import environments_for
from core.delivery.overlay import (
    MONITOR,
    default_production_strategy,
    release_from_overlay,
    with_monitoring,
)
from core.errors import ConfigError

IMAGE = "127.0.0.1:5001/kyb-platform@sha256:" + "c" * 64
PROBE = {"httpGet": {"path": "/health", "port": 8080}}
POD = {
    "metadata": {"labels": {"app": "kyb-platform", "environment": "staging"}},
    "spec": {
        "containers": [
            {"name": "kyb-platform", "image": "kyb-platform:v2.1.0", "readinessProbe": PROBE}
        ]
    },
}
OVERLAY = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kyb-staging"}},
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kyb-config", "namespace": "kyb-staging"},
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kyb-platform", "namespace": "kyb-staging"},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "kyb-platform", "namespace": "kyb-staging"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "kyb-platform"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": POD,
        },
    },
]


@pytest.mark.parametrize(
    ("branch", "envs"),
    [("develop", ("staging",)), ("main", ("staging", "production"))],
)
def test_branch_rules_are_the_seeds(branch: str, envs: tuple[str, ...]) -> None:
    assert environments_for(branch) == envs


@pytest.mark.parametrize("branch", ["feature/login", "release/2.1", "", "Main"])
def test_other_branches_deploy_nowhere_and_say_where_to_merge(branch: str) -> None:
    with pytest.raises(ConfigError, match=r"deploys nowhere.*develop -> staging"):
        environments_for(branch)


def test_staging_release_is_the_overlays_rolling_update() -> None:
    spec, others = release_from_overlay(OVERLAY, "kyb-platform", IMAGE)
    template = spec.template
    assert (spec.namespace, spec.replicas, spec.image, spec.kind) == (
        "kyb-staging",
        3,
        IMAGE,
        "rolling",
    )
    assert (spec.strategy.rolling.max_surge, spec.strategy.rolling.max_unavailable) == (1, 0)
    assert template["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health"
    assert [o["kind"] for o in others] == ["Namespace", "ConfigMap"]  # the release owns the rest


def test_production_strategy_replaces_the_rolling_update() -> None:
    strategy = default_production_strategy("kyb-platform")
    spec, _ = release_from_overlay(OVERLAY, "kyb-platform", IMAGE, strategy)
    bg = spec.strategy.blue_green
    assert spec.kind == "blueGreen" and bg is not None and not bg.auto_promotion_enabled
    assert (bg.active_service, bg.preview_service) == ("kyb-platform", "kyb-platform-preview")


def test_an_overlay_without_the_apps_deployment_is_refused() -> None:
    with pytest.raises(ConfigError, match="no Deployment named 'web'"):
        release_from_overlay(OVERLAY, "web", IMAGE)


def test_monitoring_is_added_where_the_strategy_has_none() -> None:
    rolling, _ = release_from_overlay(OVERLAY, "kyb-platform", IMAGE)
    assert with_monitoring(rolling).strategy.rolling.analysis.names == ("error-rate",)
    bg, _ = release_from_overlay(
        OVERLAY, "kyb-platform", IMAGE, default_production_strategy("kyb-platform")
    )
    assert with_monitoring(bg).strategy.blue_green.post_promotion_analysis.names == ("error-rate",)
    canary = {"canary": {"steps": [{"setWeight": 50}]}}
    plain, _ = release_from_overlay(OVERLAY, "kyb-platform", IMAGE, canary)
    steps = with_monitoring(plain).strategy.canary.steps
    assert steps[-1].analysis is not None and steps[-1].analysis.names == ("error-rate",)


def test_an_analysis_the_user_set_is_kept() -> None:
    own = {"templates": [{"templateName": "latency-p95"}]}
    canary = {"canary": {"steps": [{"setWeight": 50}, {"analysis": own}]}}
    spec, _ = release_from_overlay(OVERLAY, "kyb-platform", IMAGE, canary)
    assert with_monitoring(spec) == spec
    assert MONITOR["templates"][0]["templateName"] == "error-rate"

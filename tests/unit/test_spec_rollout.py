"""The seed's Rollout and Deployment YAML load as they are (image supplied, since it has none)."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from pydantic import ValidationError

from core.release.errors import SpecError
from core.release.rollout import load_rollout
from core.release.spec import StrategyKind
from tests.seed import seed_text

IMAGE = "ghcr.io/kyb/kyb-platform@sha256:" + "ab" * 32

# Copied verbatim from the seed (sections 1-3); test_fixtures_match_the_seed guards the copy.
BLUE_GREEN = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: kyb-platform
spec:
  replicas: 5
  strategy:
    blueGreen:
      activeService: kyb-platform-active
      previewService: kyb-platform-preview
      autoPromotionEnabled: false
      scaleDownDelaySeconds: 30
      prePromotionAnalysis:
        templates:
        - templateName: success-rate
        args:
        - name: service-name
          value: kyb-platform-preview
      postPromotionAnalysis:
        templates:
        - templateName: success-rate
        args:
        - name: service-name
          value: kyb-platform-active
"""
CANARY = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: kyb-platform-canary
spec:
  replicas: 10
  strategy:
    canary:
      steps:
      - setWeight: 10
      - pause: {duration: 5m}
      - setWeight: 20
      - pause: {duration: 10m}
      - setWeight: 50
      - pause: {duration: 15m}
      - setWeight: 100
      analysis:
        templates:
        - templateName: error-rate
        args:
        - name: service-name
          value: kyb-platform
"""
ROLLING = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kyb-platform
spec:
  replicas: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
      maxSurge: 2
  template:
    spec:
      containers:
      - name: kyb-platform
        image: kyb-platform:latest
        readinessProbe:
          httpGet:
            path: /health
            port: 8080
          initialDelaySeconds: 10
          periodSeconds: 5
"""


def seed_documents() -> list[dict]:
    """Every YAML block of the seed that parses to a Rollout or a Deployment with a strategy."""
    blocks = re.findall(r"```yaml\n(.*?)```", seed_text(), flags=re.DOTALL)
    docs = [yaml.safe_load(block) for block in blocks]
    return [d for d in docs if isinstance(d, dict) and "strategy" in (d.get("spec") or {})]


def test_fixtures_match_the_seed() -> None:
    docs = seed_documents()
    for fixture in (BLUE_GREEN, CANARY):
        assert yaml.safe_load(fixture) in docs
    rolling = next(d for d in docs if d["kind"] == "Deployment")
    assert rolling["spec"]["strategy"] == yaml.safe_load(ROLLING)["spec"]["strategy"]


def test_every_seed_rollout_loads_as_it_is() -> None:
    docs = seed_documents()
    kinds = [load_rollout(d, image=IMAGE, namespace="kyb-production").kind for d in docs]
    assert kinds == ["blueGreen", "canary", "rolling", "canary"]


def test_seed_blue_green() -> None:
    spec = load_rollout(BLUE_GREEN, image=IMAGE, namespace="kyb-production")
    bg = spec.strategy.blue_green
    assert (spec.app, spec.namespace, spec.replicas, spec.kind) == (
        "kyb-platform",
        "kyb-production",
        5,
        StrategyKind.BLUE_GREEN,
    )
    assert (bg.active_service, bg.preview_service) == (
        "kyb-platform-active",
        "kyb-platform-preview",
    )
    assert (bg.auto_promotion_enabled, bg.scale_down_delay_seconds) == (False, 30)
    assert bg.pre_promotion_analysis.names == ("success-rate",)
    assert bg.pre_promotion_analysis.args[0].value == "kyb-platform-preview"
    assert bg.post_promotion_analysis.args[0].value == "kyb-platform-active"


def test_seed_canary() -> None:
    spec = load_rollout(CANARY, image=IMAGE, namespace="kyb-production", app="kyb-platform")
    c = spec.strategy.canary
    assert (spec.app, spec.replicas, spec.labels) == ("kyb-platform", 10, {"app": "kyb-platform"})
    assert [s.set_weight for s in c.steps if s.kind == "setWeight"] == [10, 20, 50, 100]
    assert [s.pause.duration for s in c.steps if s.kind == "pause"] == [300, 600, 900]
    assert (c.analysis.names, c.traffic_routing) == (("error-rate",), None)


def test_seed_rolling_deployment_needs_an_image_by_digest() -> None:
    with pytest.raises(ValidationError, match="deploy by digest"):
        load_rollout(ROLLING, namespace="kyb-production")  # the seed says kyb-platform:latest
    spec = load_rollout(ROLLING, namespace="kyb-production", image=IMAGE)
    rolling = spec.strategy.rolling
    assert (spec.container, spec.image, spec.replicas) == ("kyb-platform", IMAGE, 5)
    assert (rolling.max_surge, rolling.max_unavailable) == (2, 1)


def test_loading_does_not_touch_the_document() -> None:
    doc = yaml.safe_load(CANARY)
    before = copy.deepcopy(doc)
    load_rollout(doc, image=IMAGE, namespace="kyb-production")
    assert doc == before


def test_a_rollout_template_supplies_image_container_and_selector() -> None:
    doc = yaml.safe_load(CANARY)
    doc["metadata"]["namespace"] = "kyb-staging"
    doc["spec"]["selector"] = {"matchLabels": {"app": "kyb", "tier": "api"}}
    doc["spec"]["template"] = {
        "spec": {
            "containers": [
                {"name": "sidecar", "image": "envoy@sha256:" + "1" * 64},
                {"name": "kyb-platform-canary", "image": IMAGE},
            ]
        }
    }
    spec = load_rollout(doc)
    assert (spec.namespace, spec.container, spec.image) == (
        "kyb-staging",
        "kyb-platform-canary",
        IMAGE,
    )
    assert spec.labels == {"app": "kyb", "tier": "api"}
    assert load_rollout(doc, container="sidecar").image.startswith("envoy@")


@pytest.mark.parametrize(
    ("source", "kwargs", "fix"),
    [
        (CANARY, {"namespace": "kyb"}, "the Rollout has no image: pass it"),
        (CANARY, {"image": IMAGE}, "the Rollout has no namespace"),
        ("kind: Service\napiVersion: v1\n", {}, "got v1/Service"),
        ("- a\n- b\n", {}, "expected one YAML mapping"),
        (
            ROLLING.replace("type: RollingUpdate", "type: Recreate"),
            {"image": IMAGE},
            "strategy 'Recreate' is not supported",
        ),
        (
            CANARY.replace("strategy:", "strategyX:"),
            {"image": IMAGE, "namespace": "kyb"},
            "spec.strategyX is not a Rollout field this release reads",
        ),
        (
            CANARY.replace("  strategy:", "  replicas: 2\n  strategy: null\n  x:").replace(
                "  replicas: 10\n", ""
            ),
            {"image": IMAGE, "namespace": "kyb"},
            "spec.x is not a Rollout field",
        ),
    ],
)
def test_bad_documents_say_what_to_fix(source: str, kwargs: dict, fix: str) -> None:
    with pytest.raises(SpecError, match=re.escape(fix)):
        load_rollout(source, **kwargs)

"""A release from an environment's kustomize overlay: spec, pod template, supporting objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import ConfigError
from core.release.rollout import load_rollout
from core.release.spec import ReleaseSpec

OWNED_BY_RELEASE = {"Deployment", "Service"}  # the executor writes these itself
MONITOR_TEMPLATES = ("error-rate",)  # the post-deploy monitoring analysis, by default
MONITOR = {"templates": [{"templateName": name} for name in MONITOR_TEMPLATES]}


def default_production_strategy(app: str) -> dict[str, Any]:
    """The seed's production strategy: blue-green with a manual promotion gate."""
    return {
        "blueGreen": {
            "activeService": app,
            "previewService": f"{app}-preview",
            "autoPromotionEnabled": False,
        }
    }


def split_overlay(objects: Sequence[Mapping[str, Any]], app: str) -> tuple[dict, list[dict]]:
    """(the app's Deployment, the supporting objects to apply) from a rendered overlay.

    Raises:
        ConfigError: the overlay has no Deployment named `app`.
    """
    deployment = next(
        (
            dict(o)
            for o in objects
            if o.get("kind") == "Deployment" and (o.get("metadata") or {}).get("name") == app
        ),
        None,
    )
    if deployment is None:
        raise ConfigError(
            f"the overlay has no Deployment named {app!r}: check the app name and "
            "the overlay's resources"
        )
    others = [dict(o) for o in objects if o.get("kind") not in OWNED_BY_RELEASE]
    return deployment, others


def release_from_overlay(
    objects: Sequence[Mapping[str, Any]],
    app: str,
    image: str,
    strategy: Mapping[str, Any] | None = None,
) -> tuple[ReleaseSpec, list[dict]]:
    """(spec, supporting objects) releasing `image` as the overlay describes.

    The spec carries the Deployment's pod template (`spec.template`), checked as a Rollout's is.

    Args:
        objects: the rendered overlay (kustomize output).
        app: the Deployment's name, which is also the release's app.
        image: the image by digest.
        strategy: a ReleaseSpec strategy (`{"canary": ...}`, `{"blueGreen": ...}`); None keeps the
            Deployment's own rolling update.

    Raises:
        ConfigError or a ValueError from the spec: the overlay or strategy cannot be released.
    """
    deployment, others = split_overlay(objects, app)
    spec = load_rollout(deployment, image=image)
    if strategy is not None:
        fields = spec.model_dump(by_alias=True, exclude_none=True)
        spec = ReleaseSpec.model_validate({**fields, "strategy": dict(strategy)})
    return spec, others


def with_monitoring(spec: ReleaseSpec, templates: Sequence[str] = MONITOR_TEMPLATES) -> ReleaseSpec:
    """The spec with a post-deploy monitoring analysis wherever the strategy has none.

    The spec with a post-deploy monitoring analysis (the named analysis templates; an
    environment's `analysis_templates`) wherever the strategy has none, so a bad version is rolled
    back automatically after it took the traffic.
    """
    if not templates:
        return spec
    monitor = {"templates": [{"templateName": name} for name in templates]}
    data = spec.model_dump(by_alias=True, exclude_none=True)
    strategy = data["strategy"]
    if "blueGreen" in strategy:
        strategy["blueGreen"].setdefault("postPromotionAnalysis", monitor)
    elif "rolling" in strategy:
        strategy["rolling"].setdefault("analysis", monitor)
    elif not any("analysis" in step for step in strategy["canary"]["steps"]):
        strategy["canary"]["steps"] = [*strategy["canary"]["steps"], {"analysis": monitor}]
    return ReleaseSpec.model_validate(data)

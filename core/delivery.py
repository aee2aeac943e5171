"""What a delivery does, decided from data (pure): where a branch goes, a release from an overlay.

Branch rules are the seed's: `develop` deploys to staging; `main` goes through staging to
production. Any other branch deploys nowhere (its pull requests run CI only), so a delivery started
for one fails before anything is built.

An environment's kustomize overlay is the source of truth for its namespace, replica count, pod
template (probes, securityContext, resources, env) and supporting objects (Namespace, ConfigMap,
Secret, ServiceAccount, HPA, PDB, NetworkPolicy). The Deployment becomes a ReleaseSpec (its rolling
update, or the strategy given for the environment); the release itself owns the workloads and
Services, so the overlay's Service and Deployment are not applied as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import ConfigError
from core.spec import ReleaseSpec, load_rollout

BRANCH_ENVIRONMENTS: dict[str, tuple[str, ...]] = {
    "develop": ("staging",),
    "main": ("staging", "production"),
}
OWNED_BY_RELEASE = {"Deployment", "Service"}  # the executor writes these itself
MONITOR = {"templates": [{"templateName": "error-rate"}]}  # the post-deploy monitoring analysis


def environments_for(
    branch: str, rules: Mapping[str, Sequence[str]] | None = None
) -> tuple[str, ...]:
    """The environments a push to `branch` deploys to, in order.

    Raises:
        ConfigError: the branch deploys nowhere.
    """
    table = BRANCH_ENVIRONMENTS if rules is None else rules
    envs = tuple(table.get(branch, ()))
    if not envs:
        known = ", ".join(f"{b} -> {' -> '.join(e)}" for b, e in table.items())
        raise ConfigError(f"branch {branch!r} deploys nowhere ({known}): merge it into one of "
                          "those branches", branch=branch)  # fmt: skip
    return envs


def default_production_strategy(app: str) -> dict[str, Any]:
    """The seed's production strategy: blue-green with a manual promotion gate."""
    return {"blueGreen": {"activeService": app, "previewService": f"{app}-preview",
                          "autoPromotionEnabled": False}}  # fmt: skip


def split_overlay(objects: Sequence[Mapping[str, Any]], app: str) -> tuple[dict, list[dict]]:
    """(the app's Deployment, the supporting objects to apply) from a rendered overlay.

    Raises:
        ConfigError: the overlay has no Deployment named `app`.
    """
    deployment = next((dict(o) for o in objects if o.get("kind") == "Deployment"
                       and (o.get("metadata") or {}).get("name") == app), None)  # fmt: skip
    if deployment is None:
        raise ConfigError(f"the overlay has no Deployment named {app!r}: check the app name and "
                          "the overlay's resources")  # fmt: skip
    others = [dict(o) for o in objects if o.get("kind") not in OWNED_BY_RELEASE]
    return deployment, others


def release_from_overlay(
    objects: Sequence[Mapping[str, Any]],
    app: str,
    image: str,
    strategy: Mapping[str, Any] | None = None,
) -> tuple[ReleaseSpec, dict, list[dict]]:
    """(spec, pod template, supporting objects) releasing `image` as the overlay describes.

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
    template = (deployment.get("spec") or {}).get("template") or {}
    return spec, template, others


def with_monitoring(spec: ReleaseSpec) -> ReleaseSpec:
    """The spec with a post-deploy monitoring analysis wherever the strategy has none, so a bad
    version is rolled back automatically after it took the traffic."""
    data = spec.model_dump(by_alias=True, exclude_none=True)
    strategy = data["strategy"]
    if "blueGreen" in strategy:
        strategy["blueGreen"].setdefault("postPromotionAnalysis", MONITOR)
    elif "rolling" in strategy:
        strategy["rolling"].setdefault("analysis", MONITOR)
    elif not any("analysis" in step for step in strategy["canary"]["steps"]):
        strategy["canary"]["steps"] = [*strategy["canary"]["steps"], {"analysis": MONITOR}]
    return ReleaseSpec.model_validate(data)

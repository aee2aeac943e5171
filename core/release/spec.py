"""The release spec in Argo Rollouts' language (camelCase aliases)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic.alias_generators import to_camel

from core.release import defaults, unsupported
from core.release.analysis_ref import (
    AnalysisArg,
    AnalysisRef,
    ArgValueFrom,
    FieldRef,
    MetricRef,
    Retention,
    TemplateRef,
)
from core.release.fields import (
    GATEWAY_PLUGIN,
    DnsLabel,
    Image,
    IntOrPercent,
    Seconds,
    ServiceName,
)
from core.release.fields import Model as _Model
from core.release.podtemplate import checked_template
from core.release.steps import CanaryPause, CanaryStep, PodMetadata, SetCanaryScale

__all__ = [
    "AnalysisArg",
    "AnalysisRef",
    "ArgValueFrom",
    "CanaryPause",
    "CanaryStep",
    "FieldRef",
    "MetricRef",
    "PodMetadata",
    "Retention",
    "SetCanaryScale",
    "TemplateRef",
]


class _Surge(_Model):
    max_surge: IntOrPercent = defaults.MAX_SURGE
    """Pods above the desired count while updating: a number or a percentage (default 25%)."""
    max_unavailable: IntOrPercent = defaults.MAX_UNAVAILABLE
    """Pods below the desired count while updating: a number or a percentage (default 25%)."""

    @model_validator(mode="after")
    def _can_progress(self) -> Any:
        if {self.max_surge, self.max_unavailable} <= {0, "0%"}:
            raise ValueError(
                "maxSurge and maxUnavailable are both 0, so the update could never "
                "start: set maxSurge or maxUnavailable above 0"
            )
        return self


class RollingStrategy(_Surge):
    """A Deployment's RollingUpdate: `maxSurge`, `maxUnavailable`, `progressDeadlineSeconds`.

    `analysis` is ours (an Argo rolling update has none): once the Deployment settles, the new
    revision is analysed before the release is declared done; a failed verdict rolls it back.
    """

    progress_deadline_seconds: Seconds | None = Field(None, gt=0)
    """How long the update may go without progress before it fails (a Go duration such as 10m, or
    seconds); unset: the spec's.
    """
    analysis: AnalysisRef | None = None
    """Analysis of the new revision once the Deployment settles; a failed verdict rolls it back."""

    @model_validator(mode="after")
    def _no_steps(self) -> RollingStrategy:
        if self.analysis and self.analysis.starting_step is not None:
            raise ValueError(
                "analysis.startingStep counts canary steps and a rolling update has "
                "none: remove startingStep"
            )
        return self


class BlueGreenStrategy(_Model):
    """Argo's `blueGreen`: a new color behind `previewService`, then `activeService` switches."""

    active_service: ServiceName
    """The Service users reach; it switches to the new color on promotion."""
    preview_service: ServiceName | None = None
    """The Service that reaches the new color before promotion (for checks and analyses)."""
    auto_promotion_enabled: bool = defaults.AUTO_PROMOTION_ENABLED
    """Promote without a person once the preview is ready and analysed (default true); false waits
    for a human.
    """
    auto_promotion_seconds: Seconds | None = None
    """Promote automatically this long after the preview is ready (a Go duration such as 5m); unset:
    at once.
    """
    preview_replica_count: int | None = Field(None, ge=1, strict=True)
    """Pods of the new color before promotion (scaled to replicas on promotion); unset: all
    replicas.
    """
    scale_down_delay_seconds: Seconds = defaults.SCALE_DOWN_DELAY_SECONDS
    """How long the old color keeps running after the switch, for a fast way back (default 30s)."""
    abort_scale_down_delay_seconds: Seconds = defaults.ABORT_SCALE_DOWN_DELAY_SECONDS
    """How long the new color keeps running after an abort before it scales down (default 30s)."""
    pre_promotion_analysis: AnalysisRef | None = None
    """Analysis of the new color behind the preview Service, before the switch."""
    post_promotion_analysis: AnalysisRef | None = None
    """Analysis after the switch; a failed verdict switches back."""

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data: Any) -> Any:
        unsupported.refuse(data, unsupported.BLUE_GREEN, "blueGreen")
        return data

    @model_validator(mode="after")
    def _distinct(self) -> BlueGreenStrategy:
        if self.active_service == self.preview_service:
            raise ValueError(
                f"activeService and previewService are both {self.active_service!r}: "
                "give the preview its own Service"
            )
        return self


class NginxRouting(_Model):
    """Weights through ingress-nginx canary annotations next to `stableIngress`."""

    kind: Literal["nginx"] = "nginx"
    """The router: nginx (ingress-nginx canary annotations)."""
    stable_ingress: DnsLabel
    """The Ingress that serves the stable Service; the canary's Ingress is made beside it."""


class GatewayApiRouting(_Model):
    """Weights on the backendRefs of a Gateway API HTTPRoute (Argo's gatewayAPI plugin)."""

    kind: Literal["gatewayAPI"] = "gatewayAPI"
    """The router: gatewayAPI (weights on an HTTPRoute's backendRefs)."""
    http_route: DnsLabel
    """The HTTPRoute whose rules name the stable and canary Services."""
    namespace: DnsLabel | None = None
    """The HTTPRoute's namespace; unset: the release's."""


def _router(value: Any) -> Any:
    if not isinstance(value, Mapping) or "kind" in value:
        return value
    if len(value) != 1:
        raise ValueError("trafficRouting needs exactly one router: nginx or gatewayAPI")
    kind, body = next(iter(value.items()))
    if kind == "plugins" and isinstance(body, Mapping) and list(body) == [GATEWAY_PLUGIN]:
        kind, body = "gatewayAPI", body[GATEWAY_PLUGIN]
    if kind in unsupported.ROUTERS:
        raise ValueError(f"trafficRouting.{kind} is not supported: {unsupported.ROUTERS[kind]}")
    if kind == "plugins" and isinstance(body, Mapping) and len(body) == 1:
        raise ValueError(
            f"trafficRouting plugin {next(iter(body))!r} is not driven here: use "
            f"{GATEWAY_PLUGIN}, or no trafficRouting (replica-weighted)"
        )
    if kind not in ("nginx", "gatewayAPI"):
        raise ValueError(
            f"unsupported traffic router {kind!r}: use nginx: {{stableIngress}}, "
            f"plugins: {{{GATEWAY_PLUGIN}: {{httpRoute}}}}, or no trafficRouting "
            "(replica-weighted)"
        )
    return {"kind": kind, **(body or {})}


Router = Annotated[NginxRouting | GatewayApiRouting, Field(discriminator="kind")]


class CanaryStrategy(_Surge):
    """Argo's `canary`: steps over a stable and a canary workload, optionally traffic-routed."""

    steps: tuple[CanaryStep, ...] = ()
    """The canary's steps in order: setWeight, pause, analysis or setCanaryScale."""
    stable_service: ServiceName | None = None
    """The Service that selects the stable pods (needed with trafficRouting)."""
    canary_service: ServiceName | None = None
    """The Service that selects the canary pods (needed with trafficRouting)."""
    analysis: AnalysisRef | None = None
    """Background analysis: runs from startingStep until the end and aborts the canary when it
    fails.
    """
    traffic_routing: Annotated[Router | None, BeforeValidator(_router)] = None
    """A router that sets the canary's share of traffic; unset: the share is its share of pods."""
    scale_down_delay_seconds: Seconds = defaults.SCALE_DOWN_DELAY_SECONDS
    """How long the old stable pods keep running after promotion (a Go duration, default 30s)."""
    abort_scale_down_delay_seconds: Seconds = defaults.ABORT_SCALE_DOWN_DELAY_SECONDS
    """How long the canary pods keep running after an abort, behind a router (default 30s)."""
    canary_metadata: PodMetadata | None = None
    """Labels and annotations added to the canary's pods."""
    stable_metadata: PodMetadata | None = None
    """Labels and annotations added to the stable pods."""

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data: Any) -> Any:
        unsupported.refuse(data, unsupported.CANARY, "canary")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> CanaryStrategy:
        scaled = [i for i, s in enumerate(self.steps) if s.set_canary_scale is not None]
        if scaled and self.traffic_routing is None:
            raise ValueError(
                f"steps[{scaled[0]}].setCanaryScale requires trafficRouting (as in Argo "
                "Rollouts): without a router the canary's share of traffic is its share of "
                "pods, so use setWeight, or add a router"
            )
        if self.stable_service and self.stable_service == self.canary_service:
            raise ValueError(
                f"stableService and canaryService are both {self.stable_service!r}: "
                "give the canary its own Service"
            )
        if self.traffic_routing and not (self.stable_service and self.canary_service):
            raise ValueError(
                "trafficRouting needs stableService and canaryService: the router "
                "splits traffic between those two Services"
            )
        start = self.analysis.starting_step if self.analysis else None
        if start is not None and start > len(self.steps):
            raise ValueError(
                f"analysis.startingStep {start} is past the last step: use 0..{len(self.steps)}"
            )
        return self


class StrategyKind(StrEnum):
    """The three strategies, named as in a Rollout's `spec.strategy`."""

    ROLLING = "rolling"
    BLUE_GREEN = "blueGreen"
    CANARY = "canary"


class Strategy(_Model):
    """Exactly one of `rolling`, `blueGreen`, `canary`."""

    rolling: RollingStrategy | None = None
    """A rolling update of one Deployment (set exactly one of rolling, blue-green, canary)."""
    blue_green: BlueGreenStrategy | None = None
    """Two colors behind an active and a preview Service (set exactly one strategy)."""
    canary: CanaryStrategy | None = None
    """A canary in steps beside the stable version (set exactly one strategy)."""

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = {to_camel(k): v for k, v in data.items() if v is not None or len(data) == 1}
        kinds = ", ".join(StrategyKind)
        if unknown := [k for k in data if k not in set(StrategyKind)]:
            raise ValueError(f"unknown strategy {unknown[0]!r}: use exactly one of {kinds}")
        if len(data) != 1:
            raise ValueError(f"a strategy needs exactly one of {kinds}; got {len(data)}")
        return {k: v or {} for k, v in data.items()}

    @property
    def kind(self) -> StrategyKind:
        """Which strategy this is."""
        return next(k for k in StrategyKind if getattr(self, _ATTR[k]) is not None)


_ATTR = {"rolling": "rolling", "blueGreen": "blue_green", "canary": "canary"}


class FirstDeploy(_Model):
    """What a release does when nothing of the app runs yet (ours: Argo skips analysis then).

    With no stable version to compare with or return to, the new version is still analysed with
    every analysis its strategy names before it is done (blue-green: behind the preview Service,
    before the active one points at it). When an analysis fails, `onFailure` says what becomes of
    it: `scaleToZero` (the default: a version that failed its checks never keeps serving) or
    `keep` (left running for someone to look at; the run still fails).
    """

    analysis: bool = True
    """Analyse a first release too, with every analysis its strategy names (default true)."""
    on_failure: Literal["scaleToZero", "keep"] = "scaleToZero"
    """What a first release that failed its analysis leaves: scaleToZero (default) or keep."""


class WorkloadRef(_Model):
    """`workloadRef`: a Deployment whose pod template the release takes (Argo's migration path).

    `scaleDown: onsuccess` scales that Deployment to zero once the release runs the app (its first
    release succeeded); `never` (Argo's default) leaves it to you.
    """

    api_version: Literal["apps/v1"] = "apps/v1"
    """The referenced workload's API version: apps/v1."""
    kind: Literal["Deployment"] = "Deployment"
    """The referenced workload's kind: Deployment."""
    name: DnsLabel
    """The Deployment whose pod template the release takes."""
    scale_down: Literal["never", "onsuccess"] = "never"
    """onsuccess: scale that Deployment to zero once the release runs the app; never (default):
    leave it.
    """

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("scaleDown", data.get("scale_down")) == (
            "progressively"
        ):
            raise ValueError(
                "workloadRef.scaleDown progressively is not supported: use onsuccess (the "
                "Deployment goes to zero once the release runs the app) or never"
            )
        return data


class ReleaseSpec(_Model):
    """What to release, where, and how: one app's image rolled out by one strategy.

    `template` is the Rollout's pod template (resources, probes, env, securityContext, volumes,
    labels, annotations), checked when the spec is made and applied to every workload with the
    image replaced by `image`; `workloadRef` takes it from an existing Deployment instead.
    """

    app: DnsLabel
    """The application: its Deployments and Services are named after it."""
    namespace: DnsLabel
    """The namespace to release into."""
    image: Image
    """The image to release, pinned by digest (registry/repo@sha256:...)."""
    container: DnsLabel = ""  # filled with the app's name when empty (_fill)
    """The container that runs the image; default: the app's name."""
    replicas: int = Field(defaults.REPLICAS, ge=0, strict=True)
    """How many pods serve the app (default 1)."""
    strategy: Strategy
    """How the release proceeds: exactly one of rolling, blue-green or canary."""
    progress_deadline_seconds: Seconds = Field(defaults.PROGRESS_DEADLINE_SECONDS, gt=0)
    """How long a step may go without progress before the release fails (a Go duration such as 10m,
    or seconds; default 10m).
    """
    labels: dict[str, str] = Field(default_factory=dict)  # app=<app> when empty (_fill)
    """The labels that select the app's pods; default: app=<app>."""
    first_deploy: FirstDeploy = FirstDeploy()
    """What a release does when nothing of the app runs yet."""
    template: dict[str, Any] | None = None
    """The pod template (a Rollout's spec.template): resources, probes, env, volumes; the image is
    replaced by image.
    """
    workload_ref: WorkloadRef | None = None
    """Take the pod template from an existing Deployment instead (Argo's workloadRef)."""
    min_ready_seconds: int = Field(0, ge=0, strict=True)
    """Seconds a new pod must be ready before it counts as available (default 0)."""
    revision_history_limit: int = Field(defaults.REVISION_HISTORY_LIMIT, ge=0, strict=True)
    """Old ReplicaSets kept for rollbacks (default 10)."""
    engine: Literal["pipeline", "argo"] = Field(
        "pipeline",
        description="Who performs the release: pipeline (the flow itself, the default) or argo "
        "(the cluster's Argo Rollouts controller, which the flow writes a Rollout for and follows)",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        unsupported.refuse(data, unsupported.ROLLOUT, "spec")
        if isinstance(app := data.get("app"), str):  # the form sends "" and {} for these
            data = {**data, "container": data.get("container") or app}
            data["labels"] = data.get("labels") or {"app": app}
        container, image = data.get("container"), data.get("image")
        if data.get("template") is not None and isinstance(container, str):
            shown = image if isinstance(image, str) else ""
            data = {**data, "template": checked_template(data["template"], container, shown)}
        return data

    @model_validator(mode="after")
    def _fits(self) -> ReleaseSpec:
        canary, reserved = self.strategy.canary, {*self.labels, defaults.TRACK_LABEL}
        for name in ("canary_metadata", "stable_metadata"):
            meta = canary and getattr(canary, name)
            if meta and (clash := sorted(reserved & set(meta.labels))):
                raise ValueError(
                    f"{to_camel(name)}.labels sets {clash[0]!r}, which selects the pods: use "
                    "another label"
                )
        preview = self.strategy.blue_green and self.strategy.blue_green.preview_replica_count
        if preview and preview > self.replicas:
            raise ValueError(
                f"previewReplicaCount {preview} exceeds replicas {self.replicas}: "
                f"use at most {self.replicas}"
            )
        return self

    @property
    def kind(self) -> StrategyKind:
        """The strategy's kind."""
        return self.strategy.kind

    @property
    def deadline_seconds(self) -> int:
        """Progress deadline: the rolling strategy's own if set, else the spec's."""
        rolling = self.strategy.rolling
        return (rolling and rolling.progress_deadline_seconds) or self.progress_deadline_seconds

    def analysis_refs(self) -> list[tuple[str, AnalysisRef]]:
        """Every (phase, AnalysisRef) the strategy holds, in the order they would run."""
        s, out = self.strategy, []
        if s.canary is not None:
            if s.canary.analysis is not None:
                out.append(("background", s.canary.analysis))
            out += [("step", step.analysis) for step in s.canary.steps if step.analysis]
        if s.blue_green is not None:
            for phase, ref in (
                ("prePromotion", s.blue_green.pre_promotion_analysis),
                ("postPromotion", s.blue_green.post_promotion_analysis),
            ):
                if ref is not None:
                    out.append((phase, ref))
        if s.rolling is not None and s.rolling.analysis is not None:
            out.append(("postDeploy", s.rolling.analysis))
        return out

    def with_changes(self, **changes: Any) -> ReleaseSpec:
        """Return a validated copy with `changes` (snake_case names) applied; self is untouched."""
        fields = self.model_dump(exclude_none=True, by_alias=False)
        return ReleaseSpec.model_validate({**fields, **changes})

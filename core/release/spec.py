"""The release spec in Argo Rollouts' language (camelCase aliases) and a Rollout YAML reader."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from core.durations import whole_seconds
from core.errors import ConfigError
from core.names import is_dns_1035_label, is_dns_label, label_error
from core.release import defaults
from core.release.errors import SpecError

_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:{_HOST}(?::[0-9]+)?/)?{_PART}(?:/{_PART})*(?::[\w][\w.-]{{0,127}})?@sha256:[a-f0-9]{{64}}"
)
GATEWAY_PLUGIN = "argoproj-labs/gatewayAPI"


def _matching(check: Callable[[object], bool], what: str) -> AfterValidator:
    def validate(value: str) -> str:
        if not check(value):
            raise ValueError(label_error(value, what))
        return value

    return AfterValidator(validate)


def _image(value: str) -> str:
    if "@" not in value:
        raise ValueError(
            f"image {value!r} is not pinned by digest (a tag can move): deploy "
            "by digest, registry/repo@sha256:<64 hex>"
        )
    if not _IMAGE.fullmatch(value):
        raise ValueError(
            f"image {value!r} is not a valid reference: deploy by digest, "
            "registry/repo[:tag]@sha256:<64 lowercase hex>"
        )
    return value


def parse_duration(value: Any) -> Any:
    """Whole seconds of an Argo duration: seconds, or a Go duration ("30s", "5m", "1h30m")."""
    if value is None or isinstance(value, bool):
        return value
    try:
        return whole_seconds(value)
    except ConfigError as exc:  # pydantic reports ValueErrors with the field's location
        raise ValueError(exc.message) from None


def _int_or_percent(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,3}%", value) and int(value[:-1]) <= 100:
        return value
    raise ValueError(f"{value!r} is not valid: use a whole number >= 0 or a percentage 0%..100%")


DnsLabel = Annotated[str, _matching(is_dns_label, "DNS-1123 label")]
ServiceName = Annotated[str, _matching(is_dns_1035_label, "DNS-1035 label")]
Image = Annotated[str, AfterValidator(_image)]
Seconds = Annotated[int, BeforeValidator(parse_duration)]
IntOrPercent = Annotated[int | str, BeforeValidator(_int_or_percent)]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, populate_by_name=True, alias_generator=to_camel, extra="forbid"
    )


class _Surge(_Model):
    max_surge: IntOrPercent = defaults.MAX_SURGE
    max_unavailable: IntOrPercent = defaults.MAX_UNAVAILABLE

    @model_validator(mode="after")
    def _can_progress(self) -> Any:
        if {self.max_surge, self.max_unavailable} <= {0, "0%"}:
            raise ValueError(
                "maxSurge and maxUnavailable are both 0, so the update could never "
                "start: set maxSurge or maxUnavailable above 0"
            )
        return self


class TemplateRef(_Model):
    """One AnalysisTemplate by name (`templateName`)."""

    template_name: DnsLabel


class AnalysisArg(_Model):
    """One argument passed to the analysis templates (`name`, `value`)."""

    name: str = Field(min_length=1)
    value: str


class AnalysisRef(_Model):
    """Analysis templates plus arguments; what they measure and judge lives elsewhere."""

    templates: tuple[TemplateRef, ...] = Field(min_length=1)
    args: tuple[AnalysisArg, ...] = ()
    starting_step: int | None = Field(None, ge=0, strict=True)

    @property
    def names(self) -> tuple[str, ...]:
        """The template names, in order."""
        return tuple(t.template_name for t in self.templates)

    def with_defaults(self, defaults: Mapping[str, str]) -> AnalysisRef:
        """This ref with `defaults` added for every argument it does not set itself."""
        given = {a.name for a in self.args}
        extra = tuple(AnalysisArg(name=k, value=v) for k, v in defaults.items() if k not in given)
        return self.model_copy(update={"args": self.args + extra}) if extra else self


class RollingStrategy(_Surge):
    """A Deployment's RollingUpdate: `maxSurge`, `maxUnavailable`, `progressDeadlineSeconds`.

    `analysis` is ours (an Argo rolling update has none): once the Deployment settles, the new
    revision is analysed before the release is declared done; a failed verdict rolls it back.
    """

    progress_deadline_seconds: Seconds | None = Field(None, gt=0)
    analysis: AnalysisRef | None = None

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
    preview_service: ServiceName | None = None
    auto_promotion_enabled: bool = defaults.AUTO_PROMOTION_ENABLED
    auto_promotion_seconds: Seconds | None = None
    preview_replica_count: int | None = Field(None, ge=1, strict=True)
    scale_down_delay_seconds: Seconds = defaults.SCALE_DOWN_DELAY_SECONDS
    abort_scale_down_delay_seconds: Seconds = defaults.ABORT_SCALE_DOWN_DELAY_SECONDS
    pre_promotion_analysis: AnalysisRef | None = None
    post_promotion_analysis: AnalysisRef | None = None

    @model_validator(mode="after")
    def _distinct(self) -> BlueGreenStrategy:
        if self.active_service == self.preview_service:
            raise ValueError(
                f"activeService and previewService are both {self.active_service!r}: "
                "give the preview its own Service"
            )
        return self


class CanaryPause(_Model):
    """`pause: {}` waits for a human; `pause: {duration: 5m}` waits that long (held in seconds)."""

    duration: Seconds | None = None


class CanaryStep(_Model):
    """One canary step: exactly one of `setWeight` (0..100), `pause`, `analysis`."""

    set_weight: int | None = Field(None, ge=0, le=100, strict=True)
    pause: CanaryPause | None = None
    analysis: AnalysisRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        keys = [to_camel(k) for k in data]
        kinds = "setWeight, pause, analysis"
        if unknown := [k for k in keys if k not in kinds.split(", ")]:
            raise ValueError(f"unknown canary step {unknown[0]!r}: a step is one of {kinds}")
        if len(keys) != 1:
            got = ", ".join(keys) or "none"
            raise ValueError(f"a step needs exactly one of {kinds}; got {got}: split the step")
        (key, value), kind = next(iter(data.items())), keys[0]
        if kind == "setWeight" and isinstance(value, int) and not 0 <= value <= 100:
            raise ValueError(f"setWeight {value} is out of range: use a percentage from 0 to 100")
        return {key: {} if value is None and kind == "pause" else value}

    @property
    def kind(self) -> str:
        """Which of setWeight, pause or analysis this step is."""
        if self.set_weight is not None:
            return "setWeight"
        return "pause" if self.pause is not None else "analysis"


class NginxRouting(_Model):
    """Weights through ingress-nginx canary annotations next to `stableIngress`."""

    kind: Literal["nginx"] = "nginx"
    stable_ingress: DnsLabel


class GatewayApiRouting(_Model):
    """Weights on the backendRefs of a Gateway API HTTPRoute (Argo's gatewayAPI plugin)."""

    kind: Literal["gatewayAPI"] = "gatewayAPI"
    http_route: DnsLabel
    namespace: DnsLabel | None = None


def _router(value: Any) -> Any:
    if not isinstance(value, Mapping) or "kind" in value:
        return value
    if len(value) != 1:
        raise ValueError("trafficRouting needs exactly one router: nginx or gatewayAPI")
    kind, body = next(iter(value.items()))
    if kind == "plugins" and isinstance(body, Mapping) and list(body) == [GATEWAY_PLUGIN]:
        kind, body = "gatewayAPI", body[GATEWAY_PLUGIN]
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
    stable_service: ServiceName | None = None
    canary_service: ServiceName | None = None
    analysis: AnalysisRef | None = None
    traffic_routing: Annotated[Router | None, BeforeValidator(_router)] = None
    scale_down_delay_seconds: Seconds = defaults.SCALE_DOWN_DELAY_SECONDS
    abort_scale_down_delay_seconds: Seconds = defaults.ABORT_SCALE_DOWN_DELAY_SECONDS

    @model_validator(mode="after")
    def _consistent(self) -> CanaryStrategy:
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
    blue_green: BlueGreenStrategy | None = None
    canary: CanaryStrategy | None = None

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
    on_failure: Literal["scaleToZero", "keep"] = "scaleToZero"


class ReleaseSpec(_Model):
    """What to release, where, and how: one app's image rolled out by one strategy."""

    app: DnsLabel
    namespace: DnsLabel
    image: Image
    container: DnsLabel
    replicas: int = Field(defaults.REPLICAS, ge=0, strict=True)
    strategy: Strategy
    progress_deadline_seconds: Seconds = Field(defaults.PROGRESS_DEADLINE_SECONDS, gt=0)
    labels: dict[str, str]
    first_deploy: FirstDeploy = FirstDeploy()

    @model_validator(mode="before")
    @classmethod
    def _fill(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(app := data.get("app"), str):
            data = {"container": app, "labels": {"app": app}, **data}
        return data

    @model_validator(mode="after")
    def _fits(self) -> ReleaseSpec:
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
        return ReleaseSpec.model_validate({**self.model_dump(exclude_none=True), **changes})


def load_rollout(
    source: str | Mapping[str, Any],
    *,
    app: str | None = None,
    namespace: str | None = None,
    image: str | None = None,
    container: str | None = None,
) -> ReleaseSpec:
    """Read an argoproj.io/v1alpha1 Rollout or an apps/v1 RollingUpdate Deployment as a spec.

    Args:
        source: one YAML document, or its parsed mapping (left unmodified).
        app: the app's name, where the document has none (or to override its name).
        namespace: the namespace to release into, overriding the document's.
        image: the image by digest (the seed's Rollouts have no pod template, hence no image).
        container: the container that runs the app, where the template has several.

    Raises:
        SpecError or pydantic.ValidationError (both ValueErrors), saying what to fix.
    """
    doc = yaml.safe_load(source) if isinstance(source, str) else source
    if not isinstance(doc, Mapping):
        raise SpecError("expected one YAML mapping: a Rollout or a Deployment")
    api, kind = doc.get("apiVersion"), doc.get("kind")
    meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    if (api, kind) == ("argoproj.io/v1alpha1", "Rollout"):
        strategy = spec.get("strategy")
    elif (api, kind) == ("apps/v1", "Deployment"):
        update = spec.get("strategy") or {}
        if update.get("type", "RollingUpdate") != "RollingUpdate":
            raise SpecError(
                f"Deployment strategy {update['type']!r} is not supported: use "
                "RollingUpdate, or a Rollout for blueGreen/canary"
            )
        strategy = {"rolling": update.get("rollingUpdate") or {}}
    else:
        raise SpecError(
            f"expected an argoproj.io/v1alpha1 Rollout or an apps/v1 Deployment, got {api}/{kind}"
        )
    name = app or meta.get("name")
    pod = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    chosen = next((c for c in pod if c.get("name") in (container or name,)), pod[0])
    data = {
        "app": name,
        "namespace": namespace or meta.get("namespace"),
        "image": image or chosen.get("image"),
        "container": container or chosen.get("name"),
        "replicas": spec.get("replicas"),
        "strategy": strategy,
        "progressDeadlineSeconds": spec.get("progressDeadlineSeconds"),
        "labels": (spec.get("selector") or {}).get("matchLabels"),
    }
    if missing := [k for k in ("app", "namespace", "image", "strategy") if not data[k]]:
        raise SpecError(
            f"the {kind} has no {', '.join(missing)}: pass it to load_rollout "
            "(image by digest: registry/repo@sha256:<64 hex>)"
        )
    return ReleaseSpec.model_validate({k: v for k, v in data.items() if v is not None})

"""A canary's steps in Argo's language: setWeight, pause, analysis, setCanaryScale."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator
from pydantic.alias_generators import to_camel

from core.release import unsupported
from core.release.analysis_ref import AnalysisRef
from core.release.fields import Model as _Model
from core.release.fields import Seconds


class CanaryPause(_Model):
    """`pause: {}` waits for a human; `pause: {duration: 5m}` waits that long (held in seconds)."""

    duration: Seconds | None = None
    """How long to wait (a Go duration such as 30s or 5m); empty: wait for a person to promote or
    abort.
    """


class SetCanaryScale(_Model):
    """`setCanaryScale`: the canary's pods apart from its traffic weight (with a router only).

    Exactly one of `replicas` (a count), `weight` (a share of `replicas`, rounded up) or
    `matchTrafficWeight: true` (back to the pods the weight asks for). It holds from its step
    until the next setCanaryScale, as in Argo.
    """

    replicas: int | None = Field(None, ge=0, strict=True)
    """The canary's pods as a count."""
    weight: int | None = Field(None, ge=0, le=100, strict=True)
    """The canary's pods as a percentage of replicas (rounded up)."""
    match_traffic_weight: bool | None = None
    """true: the canary's pods follow its traffic weight again."""

    @model_validator(mode="after")
    def _one(self) -> SetCanaryScale:
        given = [
            v for v in (self.replicas, self.weight, self.match_traffic_weight) if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "setCanaryScale needs exactly one of replicas, weight, matchTrafficWeight"
            )
        if self.match_traffic_weight is False:
            raise ValueError("setCanaryScale matchTrafficWeight: false asks for nothing: use true")
        return self


_STEP_KINDS = ("setWeight", "pause", "analysis", "setCanaryScale")


class CanaryStep(_Model):
    """One canary step: one of `setWeight` (0..100), `pause`, `analysis`, `setCanaryScale`."""

    set_weight: int | None = Field(None, ge=0, le=100, strict=True)
    """Send this percentage (0-100) of traffic to the canary."""
    pause: CanaryPause | None = None
    """Wait: for a duration, or for a person when no duration is given."""
    analysis: AnalysisRef | None = None
    """Run these analysis templates now; a failed verdict aborts the canary."""
    set_canary_scale: SetCanaryScale | None = None
    """Set the canary's pods apart from its weight (needs trafficRouting)."""

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        if len(data) > 1:  # a dumped step (or the form) writes the kinds it is not as null
            data = {k: v for k, v in data.items() if v is not None} or data
        keys = [to_camel(k) for k in data]
        kinds = ", ".join(_STEP_KINDS)
        for key in keys:
            if key in unsupported.STEPS:
                raise ValueError(f"canary step {key!r} is not supported: {unsupported.STEPS[key]}")
        if unknown := [k for k in keys if k not in _STEP_KINDS]:
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
        """Which of setWeight, pause, analysis or setCanaryScale this step is."""
        if self.set_weight is not None:
            return "setWeight"
        if self.set_canary_scale is not None:
            return "setCanaryScale"
        return "pause" if self.pause is not None else "analysis"


class PodMetadata(_Model):
    """Labels and annotations put on one track's pods (`canaryMetadata`, `stableMetadata`)."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to the pods."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations added to the pods."""

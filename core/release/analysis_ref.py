"""How a release names its analyses: templates and arguments (Argo's RolloutAnalysis)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from core.release import unsupported
from core.release.fields import DnsLabel
from core.release.fields import Model as _Model


class TemplateRef(_Model):
    """One analysis template by name (`templateName`); `clusterScope` names a cluster one."""

    template_name: DnsLabel
    """The AnalysisTemplate's name (or a built-in: success-rate, error-rate, latency-p95)."""
    cluster_scope: bool = False
    """true: a ClusterAnalysisTemplate of that name."""

    @property
    def key(self) -> str:
        """How the runner finds it: `name`, or `cluster/name` for a ClusterAnalysisTemplate."""
        return f"cluster/{self.template_name}" if self.cluster_scope else self.template_name


class FieldRef(_Model):
    """`fieldRef: {fieldPath}`: a field of the Rollout, e.g. metadata.labels['team']."""

    field_path: str = Field(min_length=1)
    """The Rollout's field, e.g. metadata.labels['team']."""


class ArgValueFrom(_Model):
    """Where an argument's value comes from: the pods' template hash, or a field of the Rollout.

    `podTemplateHashValue` is `Stable` (the serving version's pods) or `Latest` (the new
    version's), read from their ReplicaSet when the analysis starts. A `fieldRef` is read from the
    Rollout document when it is loaded (core/release/rollout.py); a spec given directly states
    the value instead.
    """

    pod_template_hash_value: Literal["Stable", "Latest"] | None = None
    """Stable or Latest: the pod template hash of that version's pods."""
    field_ref: FieldRef | None = None
    """A field of the Rollout document."""

    @model_validator(mode="after")
    def _one(self) -> ArgValueFrom:
        if (self.pod_template_hash_value is None) == (self.field_ref is None):
            raise ValueError("valueFrom needs exactly one of podTemplateHashValue, fieldRef")
        if self.field_ref is not None:
            raise ValueError(
                f"valueFrom.fieldRef {self.field_ref.field_path!r} is read from the Rollout "
                "document: load it with load_rollout, or give the value"
            )
        return self


class AnalysisArg(_Model):
    """One argument passed to the analysis templates (`name`, and `value` or `valueFrom`)."""

    name: str = Field(min_length=1)
    """The argument's name, as the template's args name it."""
    value: str | None = None
    """The argument's value."""
    value_from: ArgValueFrom | None = None
    """Where the value comes from instead of value."""

    @model_validator(mode="after")
    def _one(self) -> AnalysisArg:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(f"argument {self.name!r} needs exactly one of value, valueFrom")
        return self


class MetricRef(_Model):
    """`dryRun: [{metricName}]`: a metric (a regular expression over names) that never decides."""

    metric_name: str = Field(min_length=1)
    """A regular expression over metric names."""


class Retention(_Model):
    """`measurementRetention: [{metricName, limit}]`: how many measurements a report keeps."""

    metric_name: str = Field(min_length=1)
    """A regular expression over metric names."""
    limit: int = Field(ge=1, strict=True)
    """How many of its measurements the report keeps."""


class AnalysisRef(_Model):
    """Analysis templates plus arguments; what they measure and judge lives elsewhere."""

    templates: tuple[TemplateRef, ...] = Field(min_length=1)
    """The analysis templates to run, by name."""
    args: tuple[AnalysisArg, ...] = ()
    """Arguments for the templates (the release fills app, namespace and track)."""
    starting_step: int | None = Field(None, ge=0, strict=True)
    """Background analysis only: the canary step it starts at (default 0)."""
    dry_run: tuple[MetricRef, ...] = ()
    """Metrics that are measured and reported but never decide the verdict."""
    measurement_retention: tuple[Retention, ...] = ()
    """How many measurements a metric's report keeps."""

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data: Any) -> Any:
        unsupported.refuse(data, unsupported.ANALYSIS, "analysis")
        return data

    @property
    def names(self) -> tuple[str, ...]:
        """The templates' keys, in order (`cluster/<name>` for a ClusterAnalysisTemplate)."""
        return tuple(t.key for t in self.templates)

    def with_defaults(self, defaults: Mapping[str, str]) -> AnalysisRef:
        """This ref with `defaults` added for every argument it does not set itself."""
        given = {a.name for a in self.args}
        extra = tuple(AnalysisArg(name=k, value=v) for k, v in defaults.items() if k not in given)
        return self.model_copy(update={"args": self.args + extra}) if extra else self

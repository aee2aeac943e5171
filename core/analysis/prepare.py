"""Analyses prepared for one release: templates resolved, queries rendered, values read, judged."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.analysis.criteria import Criteria
from core.analysis.judge import JudgeResult
from core.analysis.render import Rendered, render
from core.analysis.render import values as render_values
from core.analysis.templates import AnalysisTemplate, MetricTemplate
from core.errors import ConfigError
from core.release.actions import AnalysisPhase
from core.release.observed import Outcome
from core.release.spec import AnalysisRef, ReleaseSpec

#: The `track` argument a phase measures unless the AnalysisRef passes one: the new version's
#: pods carry this label value (canary pods, the blue-green preview, the settled Deployment).
PHASE_TRACK = {  # the `track` pod label a phase measures (canary and rolling releases)
    "step": "canary",
    "background": "canary",
    "postPromotion": "stable",
    "postDeploy": "stable",
}


#: What a `valueFrom` argument stands for while the release is checked before any write; the
#: executor reads the real value from the cluster before the analysis runs.
PENDING = "0"


@dataclass(frozen=True)
class Prepared:
    """An AnalysisRef resolved for one release: metrics, what to ask, and their conditions."""

    templates: tuple[AnalysisTemplate, ...]
    metrics: tuple[MetricTemplate, ...]
    rendered: dict[str, Rendered]
    criteria: dict[str, Criteria]
    args: dict[str, str]
    windows: dict[str, str]
    secrets: Mapping[str, Mapping[str, str]]

    @property
    def queries(self) -> dict[str, str]:
        """Every metric's query (or URL), as it is sent."""
        return {name: r.query for name, r in self.rendered.items()}

    def rendered_with(self, **overrides: str) -> dict[str, str]:
        """Every metric's query rendered with some arguments replaced (e.g. another track)."""
        out = {}
        for t in self.templates:
            for m in t.metrics:
                args = {**self.args, **overrides, "window": self.windows[m.name]}
                out[m.name] = render(t, args, self.secrets.get(t.key))[m.name].query
        return out


def implicit_args(phase: AnalysisPhase | str, spec: ReleaseSpec) -> dict[str, str]:
    """The arguments every analysis gets unless its AnalysisRef sets them."""
    if spec.strategy.blue_green is not None:  # pods carry a color, which the planner passes
        return {"service-name": spec.app, "namespace": spec.namespace, "track": ".*"}
    track = PHASE_TRACK.get(str(phase), "stable")
    return {"service-name": spec.app, "namespace": spec.namespace, "track": track}


def window(metric: MetricTemplate, scrape_seconds: float) -> str:
    """A metric's rate window.

    its interval, as Flagger does (each measurement then sees only what happened since the previous
    one), but never under four scrapes (rate needs two samples).
    """
    return f"{math.ceil(max(metric.interval_seconds, 4 * scrape_seconds))}s"


def _for_ref(metric: MetricTemplate, ref: AnalysisRef) -> MetricTemplate:
    """The metric with the release's own `dryRun` and `measurementRetention` applied."""
    changes: dict[str, object] = {}
    if any(re.fullmatch(d.metric_name, metric.name) for d in ref.dry_run):
        changes["dry_run"] = True
    kept = [r.limit for r in ref.measurement_retention if re.fullmatch(r.metric_name, metric.name)]
    if kept:
        changes["measurement_retention"] = kept[-1]
    return metric.model_copy(update=changes) if changes else metric


def prepare(
    ref: AnalysisRef,
    phase: AnalysisPhase | str,
    spec: ReleaseSpec,
    templates: Mapping[str, AnalysisTemplate],
    scrape_seconds: float = 15.0,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
) -> Prepared:
    """Resolve `ref`'s templates, render what each metric asks, parse its conditions.

    A `window` argument the AnalysisRef does not set is each metric's `window()`.

    Args:
        ref: the release's analysis (templates, args, dryRun, measurementRetention).
        phase: where in the release it runs; only a background analysis may run until the end.
        spec: the release.
        templates: known templates by key (`name`, `cluster/name` for cluster-scoped ones).
        scrape_seconds: Prometheus' scrape interval, for rate windows.
        secrets: the values of secretKeyRef arguments, by template key and argument name.

    Raises:
        ConfigError: a template is unknown, two templates share a metric name, a metric that
            runs until the release ends is not a background analysis, or an argument is missing
            or unsafe.
    """
    secrets = secrets or {}
    given = {a.name: a.value if a.value is not None else PENDING for a in ref.args}
    args = {**implicit_args(phase, spec), **given}
    used: list[AnalysisTemplate] = []
    metrics: list[MetricTemplate] = []
    rendered: dict[str, Rendered] = {}
    windows: dict[str, str] = {}
    criteria: dict[str, Criteria] = {}
    for key in ref.names:
        template = templates.get(key)
        if template is None:
            known = ", ".join(sorted(templates))
            raise ConfigError(
                f"no analysis template {key!r}: use one of {known}, an AnalysisTemplate in "
                f"namespace {spec.namespace} (or a ClusterAnalysisTemplate with clusterScope: "
                "true), or pass it in the flow's templates",
                app=spec.app,
            )
        for metric in template.metrics:
            if metric.name in rendered:
                raise ConfigError(
                    f"metric {metric.name!r} is in two templates of one analysis: rename one",
                    app=spec.app,
                )
            if metric.runs_until_ended and str(phase) != "background":
                raise ConfigError(
                    f"metric {metric.name} has an interval and no count, so it runs until the "
                    f"release ends; a {phase} analysis must end: set count",
                    template=template.name,
                )
            windows[metric.name] = args.get("window") or window(metric, scrape_seconds)
            mine = {**args, "window": windows[metric.name]}
            rendered[metric.name] = render(template, mine, secrets.get(template.key))[metric.name]
            values = render_values(template, mine, secrets.get(template.key) or {})
            criteria[metric.name] = Criteria.of(metric, values)
            metrics.append(_for_ref(metric, ref))
        used.append(template)
    return Prepared(tuple(used), tuple(metrics), rendered, criteria, args, windows, secrets)


def analysis_refs(spec: ReleaseSpec) -> list[tuple[str, AnalysisRef]]:
    """Every (phase, AnalysisRef) a spec holds, so that all can be checked before a release."""
    return spec.analysis_refs()


def artifact_key(spec: ReleaseSpec, key: str) -> str:
    """The artifact key of one analysis of a release (lowercase letters, digits and dashes)."""
    raw = f"analysis-{spec.namespace}-{spec.app}-{key}".lower()
    return re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")[:100]


def with_judge(outcome: Outcome, reason: str, judged: JudgeResult) -> tuple[Outcome, str]:
    """Thresholds and judge must both pass; the worse outcome wins and both reasons are kept."""
    order = [Outcome.FAILED, Outcome.ERROR, Outcome.INCONCLUSIVE, Outcome.SUCCESSFUL]
    worst = min(outcome, judged.outcome, key=order.index)
    return worst, f"{reason}; judge {judged.outcome}: {judged.reason}"

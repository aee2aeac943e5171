"""Analyses prepared for one release: templates resolved, queries rendered, values read, judged."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.analysis.judge import Direction, JudgeResult
from core.analysis.templates import AnalysisTemplate, MetricTemplate, Threshold, render, thresholds
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


@dataclass(frozen=True)
class Prepared:
    """An AnalysisRef resolved for one release: metrics, rendered queries and thresholds."""

    templates: tuple[AnalysisTemplate, ...]
    metrics: tuple[MetricTemplate, ...]
    queries: dict[str, str]
    thresholds: dict[str, Threshold]
    args: dict[str, str]
    windows: dict[str, str]

    def rendered(self, **overrides: str) -> dict[str, str]:
        """Every metric's query rendered with some arguments replaced (e.g. another track)."""
        args = {**self.args, **overrides}
        return {
            m.name: _render_one(t, m, {**args, "window": self.windows[m.name]})
            for t in self.templates
            for m in t.metrics
        }


def _render_one(template: AnalysisTemplate, metric: MetricTemplate, args: dict[str, str]) -> str:
    """One metric's query; a `window` the template does not declare is simply not used."""
    return render(template, args)[metric.name]


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


def prepare(
    ref: AnalysisRef,
    phase: AnalysisPhase | str,
    spec: ReleaseSpec,
    templates: Mapping[str, AnalysisTemplate],
    scrape_seconds: float = 15.0,
) -> Prepared:
    """Resolve `ref`'s templates, render their queries and thresholds (one AnalysisRun).

    A `window` argument the AnalysisRef does not set is each metric's `window()`.

    Raises:
        ConfigError: a template is unknown, two templates share a metric name, or an argument is
            missing or unsafe.
    """
    given = {a.name: a.value for a in ref.args}
    args = {**implicit_args(phase, spec), **given}
    used: list[AnalysisTemplate] = []
    metrics: list[MetricTemplate] = []
    queries: dict[str, str] = {}
    windows: dict[str, str] = {}
    limits: dict[str, Threshold] = {}
    for name in ref.names:
        template = templates.get(name)
        if template is None:
            known = ", ".join(sorted(templates))
            raise ConfigError(
                f"no analysis template {name!r}: use one of {known}, or pass it "
                "in the flow's templates",
                app=spec.app,
            )
        for metric in template.metrics:
            if metric.name in queries:
                raise ConfigError(
                    f"metric {metric.name!r} is in two templates of one analysis: rename one",
                    app=spec.app,
                )
            windows[metric.name] = args.get("window") or window(metric, scrape_seconds)
            queries[metric.name] = _render_one(
                template, metric, {**args, "window": windows[metric.name]}
            )
        limits.update(thresholds(template, args))
        metrics.extend(template.metrics)
        used.append(template)
    return Prepared(tuple(used), tuple(metrics), queries, limits, args, windows)


def analysis_refs(spec: ReleaseSpec) -> list[tuple[str, AnalysisRef]]:
    """Every (phase, AnalysisRef) a spec holds, so that all can be checked before a release."""
    return spec.analysis_refs()


def value_of(result: list) -> float | None:
    """The one number of an instant-query result; None for no data.

    Raises:
        ValueError: the query returned several series (aggregate them, e.g. with sum()).
    """
    if len(result) == 2 and not isinstance(result[0], dict):  # a scalar: [time, "value"]
        return float(result[1])
    if not result:
        return None
    if len(result) > 1:
        raise ValueError(
            f"the query returned {len(result)} series; aggregate them to one (sum, avg or max)"
        )
    return float(result[0]["value"][1])


def direction_of(threshold: Threshold) -> Direction:
    """Which change the judge counts as worse: a metric with only a minimum must not drop."""
    if threshold.min is not None and threshold.max is None:
        return Direction.DECREASE_IS_BAD
    return Direction.INCREASE_IS_BAD


def artifact_key(spec: ReleaseSpec, key: str) -> str:
    """The artifact key of one analysis of a release (lowercase letters, digits and dashes)."""
    raw = f"analysis-{spec.namespace}-{spec.app}-{key}".lower()
    return re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")[:100]


def with_judge(outcome: Outcome, reason: str, judged: JudgeResult) -> tuple[Outcome, str]:
    """Thresholds and judge must both pass; the worse outcome wins and both reasons are kept."""
    order = [Outcome.FAILED, Outcome.ERROR, Outcome.INCONCLUSIVE, Outcome.SUCCESSFUL]
    worst = min(outcome, judged.outcome, key=order.index)
    return worst, f"{reason}; judge {judged.outcome}: {judged.reason}"

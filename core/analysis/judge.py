"""The optional statistical judge: canary samples against baseline samples, metric by metric."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.release.observed import Outcome


class Direction(StrEnum):
    """Which change of a metric is bad for the canary."""

    INCREASE_IS_BAD = "increase_is_bad"  # error rate, latency
    DECREASE_IS_BAD = "decrease_is_bad"  # success rate, throughput


class Classification(StrEnum):
    """One metric's comparison result."""

    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class JudgeConfig:
    """Thresholds of the judge; the defaults follow Kayenta's customary 95/75 score thresholds."""

    alpha: float = 0.05
    large_effect: float = 0.5
    min_samples: int = 10
    pass_score: float = 95.0
    marginal_score: float = 75.0

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.large_effect <= 1 or self.min_samples < 1:
            raise ValueError("alpha in (0, 1), large_effect in (0, 1], min_samples >= 1")
        if not 0 <= self.marginal_score <= self.pass_score <= 100:
            raise ValueError("need 0 <= marginal_score <= pass_score <= 100")


@dataclass(frozen=True)
class MetricComparison:
    """One metric's result: classification, p-value, effect, medians and a one-line why."""

    metric: str
    classification: Classification
    p_value: float | None
    effect: float | None  # rank-biserial r, > 0 means the canary is worse
    relative_change: float | None  # (canary median - baseline median) / |baseline median|
    canary_median: float | None
    baseline_median: float | None
    why: str


@dataclass(frozen=True)
class JudgeResult:
    """The overall score 0..100, its outcome, a one-line reason and every metric's result."""

    score: float | None
    outcome: Outcome
    reason: str
    metrics: tuple[MetricComparison, ...]


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def _relative(canary: float | None, baseline: float | None) -> float | None:
    if canary is None or baseline is None:
        return None
    if baseline == 0:
        return 0.0 if canary == 0 else math.copysign(math.inf, canary)
    return (canary - baseline) / abs(baseline)


def compare(
    metric: str,
    canary: Sequence[float],
    baseline: Sequence[float],
    direction: Direction,
    config: JudgeConfig | None = None,
) -> MetricComparison:
    """Classify one metric's canary samples against its baseline samples.

    Args:
        metric: The metric's name, for the reason.
        canary: Canary samples; non-finite values (NaN: no data) are dropped.
        baseline: Baseline or stable samples, likewise.
        direction: Which change is bad.
        config: Judge thresholds; the defaults if None.
    """
    cfg = config or JudgeConfig()
    c = [float(x) for x in canary if math.isfinite(x)]
    b = [float(x) for x in baseline if math.isfinite(x)]
    mc, mb = _median(c), _median(b)
    rel = _relative(mc, mb)
    if min(len(c), len(b)) < cfg.min_samples:
        why = (
            f"{metric}: too few samples (canary {len(c)}, baseline {len(b)}); at least "
            f"{cfg.min_samples} per side needed"
        )
        return MetricComparison(metric, Classification.INCONCLUSIVE, None, None, rel, mc, mb, why)
    worse = "greater" if direction is Direction.INCREASE_IS_BAD else "less"
    # imported here: scipy.stats costs 0.5 s of CPU to import, paid by every release process
    # otherwise, and only releases with `judge` on compare samples
    from scipy.stats import mannwhitneyu

    result = mannwhitneyu(c, b, alternative=worse)
    u, p = float(result.statistic), float(result.pvalue)
    r = 2 * u / (len(c) * len(b)) - 1  # > 0: canary tends to be larger
    effect = r if direction is Direction.INCREASE_IS_BAD else -r
    if math.isnan(p):  # every sample identical: no difference at all
        p = 1.0
    if p < cfg.alpha and effect >= cfg.large_effect:
        cls = Classification.FAIL
    elif p < cfg.alpha:
        cls = Classification.MARGINAL
    else:
        cls = Classification.PASS
    why = (
        f"{metric}: {cls.value}, canary median {mc:g} vs baseline {mb:g} ({direction.value}), "
        f"p={p:.3g} (alpha {cfg.alpha:g}), effect r={effect:.2f} (large >= "
        f"{cfg.large_effect:g})"
    )
    return MetricComparison(metric, cls, p, effect, rel, mc, mb, why)


def judge(
    samples: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    directions: Mapping[str, Direction],
    config: JudgeConfig | None = None,
) -> JudgeResult:
    """Compare every metric and score the canary.

    Like Kayenta, each metric is classified and the share of passing metrics becomes a score:

    * A one-sided Mann-Whitney U test asks whether the canary is worse in the metric's bad direction
      (larger values when `increase_is_bad`, smaller when `decrease_is_bad`).
    * The effect size is the rank-biserial correlation r = 2U/(n1*n2) - 1, oriented so that r > 0
      means the canary is worse (r = 1: every canary sample is worse than every baseline sample).
      It stays meaningful when medians are 0 (error rates); the relative median change is reported.
    * Fail: p < alpha and r >= large_effect. Marginal: p < alpha with a smaller effect (significant
    but
      small). Pass: no significant difference in the bad direction. Inconclusive: fewer than
      `min_samples` finite samples on a side; such a metric never passes.

    Score = 100 * (passes + marginals / 2) / judged metrics (inconclusive ones excluded). The
    overall outcome: no judged metric -> Inconclusive; score < marginal_score -> Failed; score below
    pass_score, or any metric Inconclusive -> Inconclusive (never promote on missing data); else
    Successful.

    Args:
        samples: {metric: (canary samples, baseline samples)}.
        directions: {metric: which change is bad}; every metric of `samples` needs one.
        config: Judge thresholds; the defaults if None.

    Raises:
        ValueError: A metric has no direction.
    """
    cfg = config or JudgeConfig()
    missing = sorted(set(samples) - set(directions))
    if missing:
        raise ValueError(f"no direction for metrics {missing}")
    results = tuple(compare(m, c, b, directions[m], cfg) for m, (c, b) in samples.items())
    judged = [r for r in results if r.classification is not Classification.INCONCLUSIVE]
    lacking = [r.metric for r in results if r.classification is Classification.INCONCLUSIVE]
    if not judged:
        why = "no metric had enough samples to judge" if results else "no metrics to judge"
        return JudgeResult(None, Outcome.INCONCLUSIVE, why, results)
    points = sum(
        1.0 if r.classification is Classification.PASS else 0.5
        for r in judged
        if r.classification is not Classification.FAIL
    )
    score = 100 * points / len(judged)
    head = f"score {score:.0f} (pass >= {cfg.pass_score:g}, marginal >= {cfg.marginal_score:g})"
    bad = "; ".join(r.why for r in judged if r.classification is not Classification.PASS)
    if score < cfg.marginal_score:
        return JudgeResult(score, Outcome.FAILED, f"{head}: {bad}", results)
    if lacking:
        why = f"{head}, but too few samples for {', '.join(lacking)}"
        return JudgeResult(score, Outcome.INCONCLUSIVE, why, results)
    if score < cfg.pass_score:
        return JudgeResult(score, Outcome.INCONCLUSIVE, f"{head}: {bad}", results)
    return JudgeResult(score, Outcome.SUCCESSFUL, f"{head}: {len(judged)} metrics passed", results)

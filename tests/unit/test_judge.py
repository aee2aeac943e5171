"""The statistical judge on synthetic samples, with fixed random seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.analysis.judge import Classification, Direction, JudgeConfig, compare, judge
from core.release.observed import Outcome

UP, DOWN = Direction.INCREASE_IS_BAD, Direction.DECREASE_IS_BAD


def normal(seed: int, mean: float, sd: float = 0.01, n: int = 30) -> list[float]:
    return list(np.random.default_rng(seed).normal(mean, sd, n))


def test_clearly_worse_canary_fails() -> None:
    result = compare("latency", normal(1, 0.40), normal(2, 0.20), UP)
    assert result.classification is Classification.FAIL
    assert result.p_value is not None and result.p_value < 0.001
    assert result.effect == pytest.approx(1.0)
    assert result.relative_change == pytest.approx(1.0, abs=0.1)
    assert "latency: fail" in result.why


def test_equal_distributions_pass() -> None:
    result = compare("latency", normal(3, 0.20), normal(4, 0.20), UP)
    assert result.classification is Classification.PASS


def test_better_canary_passes_in_either_direction() -> None:
    assert compare("latency", normal(5, 0.10), normal(6, 0.20), UP).classification == "pass"
    assert compare("success", normal(7, 0.999), normal(8, 0.90), DOWN).classification == "pass"
    assert compare("success", normal(9, 0.80), normal(10, 0.99), DOWN).classification == "fail"


def test_significant_but_small_shift_is_marginal() -> None:
    result = compare("latency", normal(11, 0.205, n=400), normal(12, 0.200, n=400), UP)
    assert result.classification is Classification.MARGINAL
    assert result.effect is not None and 0 < result.effect < 0.5


@pytest.mark.parametrize(("n_canary", "n_base"), [(9, 30), (30, 9), (0, 0)])
def test_too_few_samples_is_inconclusive(n_canary: int, n_base: int) -> None:
    result = compare("latency", normal(13, 0.9, n=n_canary), normal(14, 0.2, n=n_base), UP)
    assert result.classification is Classification.INCONCLUSIVE
    assert "at least 10 per side" in result.why


def test_nan_samples_do_not_count() -> None:
    canary = normal(15, 0.2, n=9) + [math.nan] * 5
    assert compare("x", canary, normal(16, 0.2), UP).classification == "inconclusive"


def test_identical_constant_samples_pass() -> None:
    assert compare("errors", [0.0] * 10, [0.0] * 10, UP).classification == "pass"


def test_judge_scores_like_kayenta() -> None:
    good = {f"m{i}": (normal(20 + i, 0.2), normal(40 + i, 0.2)) for i in range(4)}
    directions = dict.fromkeys(good, UP)
    result = judge(good, directions)
    assert (result.score, result.outcome) == (100, Outcome.SUCCESSFUL)

    one_bad = {**good, "m0": (normal(60, 0.5), normal(61, 0.2))}
    result = judge(one_bad, directions)
    assert (result.score, result.outcome) == (75, Outcome.INCONCLUSIVE)

    two_bad = {**one_bad, "m1": (normal(62, 0.5), normal(63, 0.2))}
    result = judge(two_bad, directions)
    assert (result.score, result.outcome) == (50, Outcome.FAILED)
    assert "m0: fail" in result.reason and "m1: fail" in result.reason


def test_missing_samples_never_pass() -> None:
    samples = {"a": (normal(70, 0.2), normal(71, 0.2)), "b": (normal(72, 0.2, n=3), [])}
    result = judge(samples, {"a": UP, "b": UP})
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "too few samples for b" in result.reason
    nothing = judge({"b": ([], [])}, {"b": UP})
    assert (nothing.score, nothing.outcome) == (None, Outcome.INCONCLUSIVE)


def test_every_metric_needs_a_direction() -> None:
    with pytest.raises(ValueError, match="no direction"):
        judge({"a": ([1.0], [1.0])}, {})


@pytest.mark.parametrize(
    "fields", [{"alpha": 0}, {"pass_score": 50, "marginal_score": 80}, {"min_samples": 0}]
)
def test_config_is_validated(fields: dict) -> None:
    with pytest.raises(ValueError):
        JudgeConfig(**fields)

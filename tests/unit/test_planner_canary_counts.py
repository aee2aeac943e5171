"""Replica counts of a canary: Argo's weighted rounding, fenceposts, and surge-limited moves."""

from __future__ import annotations

import pytest

from core.release.planners.canary import (
    current_weight,
    fenceposts,
    next_counts,
    target_counts,
    weighted_counts,
)
from core.release.spec import ReleaseSpec

NEW = "ghcr.io/kyb/kyb-platform@sha256:" + "a" * 64


def make_spec(replicas: int = 10, **canary: object) -> ReleaseSpec:
    steps = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 20}]
    data = {"app": "kyb-platform", "namespace": "kyb", "image": NEW, "replicas": replicas}
    return ReleaseSpec.model_validate({**data, "strategy": {"canary": {"steps": steps, **canary}}})


# --- replica counts ------------------------------------------------------------------------------

# Worked by hand from Argo's rule (closest weight among totals N and N+1, neither side 0 for
# 0 < w < 100); default maxSurge 25% resolves to 1, 1, 2, 3 surge pods for N = 1, 3, 5, 10.
WITH_SURGE = {
    1: [(0, 1), (1, 1), (1, 1), (1, 1), (1, 1), (1, 0)],
    3: [(0, 3), (1, 3), (1, 3), (1, 2), (2, 2), (3, 0)],
    5: [(0, 5), (1, 5), (1, 4), (2, 4), (3, 3), (5, 0)],
    10: [(0, 10), (1, 9), (2, 8), (3, 7), (5, 5), (10, 0)],
}
NO_SURGE = {  # maxSurge 0: the pair always sums to N
    1: [(0, 1), (0, 1), (0, 1), (0, 1), (1, 0), (1, 0)],
    3: [(0, 3), (1, 2), (1, 2), (1, 2), (2, 1), (3, 0)],
    5: [(0, 5), (1, 4), (1, 4), (2, 3), (3, 2), (5, 0)],
    10: [(0, 10), (1, 9), (2, 8), (3, 7), (5, 5), (10, 0)],
}
WEIGHTS = (0, 10, 20, 33, 50, 100)


@pytest.mark.parametrize("n", [1, 3, 5, 10])
@pytest.mark.parametrize(("i", "weight"), list(enumerate(WEIGHTS)))
def test_replica_weighted_rounding(n: int, i: int, weight: int) -> None:
    surge, _ = fenceposts("25%", "25%", n)
    assert weighted_counts(n, weight, surge) == WITH_SURGE[n][i]
    assert weighted_counts(n, weight, 0) == NO_SURGE[n][i]


@pytest.mark.parametrize(
    ("n", "weight", "canary"), [(1, 10, 1), (3, 33, 1), (5, 50, 3), (10, 33, 4)]
)
def test_traffic_routed_counts_keep_stable_full(n: int, weight: int, canary: int) -> None:
    spec = make_spec(
        n,
        trafficRouting={"nginx": {"stableIngress": "kyb"}},
        stableService="kyb-stable",
        canaryService="kyb-canary",
    )
    assert target_counts(spec, weight) == (canary, n)


def test_argo_fallback_when_no_candidate_fits() -> None:
    assert weighted_counts(2, 75, 0) == (0, 2)  # Argo's own "should not get here" answer
    assert weighted_counts(0, 50, 1) == (0, 0)


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 10, (3, 2)),
        ("25%", "25%", 1, (1, 0)),
        ("0%", "0%", 10, (0, 1)),
        (0, "20%", 4, (0, 1)),
        (2, 5, 3, (2, 3)),
        ("25%", "25%", 0, (0, 0)),
    ],
)
def test_fenceposts(surge, unavailable, replicas: int, expected: tuple[int, int]) -> None:
    assert fenceposts(surge, unavailable, replicas) == expected


# One move towards the weight, from (spec, available) pairs; cases from Argo's documented examples.
@pytest.mark.parametrize(
    ("n", "weight", "surge", "unavailable", "canary", "stable", "move"),
    [
        (10, 20, 2, 0, (0, 0), (10, 10), (2, 10)),  # surge first
        (10, 20, 2, 0, (2, 2), (10, 10), (2, 8)),  # then shrink stable
        (10, 30, 2, 0, (0, 0), (10, 10), (2, 10)),  # never past maxSurge
        (10, 20, 0, 2, (0, 0), (10, 10), (0, 8)),  # no surge: shrink stable first
        (10, 50, 2, 1, (0, 0), (10, 10), (2, 9)),
        (10, 0, 1, 1, (1, 1), (10, 10), (0, 10)),  # weight 0: canary to 0
        (10, 100, 1, 1, (10, 10), (1, 1), (10, 0)),  # weight 100: stable to 0
        (10, 30, 0, 3, (4, 4), (8, 5), (3, 7)),  # shrinking canary, total back under the cap
        (10, 100, 1, 0, (10, 8), (10, 2), (9, 2)),
        (4, 100, 1, 0, (1, 1), (4, 1), (1, 3)),  # unavailable stable still respects maxUnavailable
        (4, 0, 1, 0, (4, 4), (0, 0), (4, 1)),  # reducing weight: stable surges back first
        (3, 99, 0, 2, (0, 0), (3, 3), (0, 1)),
        (3, 99, 0, 2, (0, 0), (1, 1), (2, 1)),
    ],
)
def test_next_counts_honours_surge_and_unavailable(
    n, weight, surge, unavailable, canary, stable, move
):
    want = weighted_counts(n, weight, surge)
    assert next_counts(n, want, surge, unavailable, canary, stable) == move


def test_current_weight_is_the_last_set_weight() -> None:
    steps = make_spec().strategy.canary.steps
    assert [current_weight(steps, i) for i in range(3)] == [10, 10, 20]
    assert current_weight(make_spec(steps=[{"pause": {}}]).strategy.canary.steps, 0) == 0

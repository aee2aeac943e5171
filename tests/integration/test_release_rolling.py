"""Rolling releases on the real cluster: success, idempotent re-run, rollback, bad specs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from blocks import KubernetesCluster
from core.spec import ReleaseSpec
from tests.integration.release_helpers import (
    NOT_READY,
    V1,
    V2,
    Scripted,
    deployments,
    release_flow,
    spec,
)

ROLLING = {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}


@pytest.fixture
def cluster(platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


def test_rolling_release_then_rerun_changes_nothing(cluster, namespace) -> None:
    first = release_flow(spec(namespace, V1, ROLLING), Scripted())
    assert first.ok, first.summary
    second = release_flow(spec(namespace, V2, ROLLING), Scripted())
    assert second.ok, second.summary
    assert deployments(cluster, namespace) == {"web": (V2, 3, 3)}

    again = release_flow(spec(namespace, V2, ROLLING), Scripted())
    assert again.ok
    assert [e.action for e in again.journal] == [again.summary]  # Done at once, no write
    assert deployments(cluster, namespace) == {"web": (V2, 3, 3)}


def test_never_ready_revision_is_rolled_back(cluster, namespace) -> None:
    assert release_flow(spec(namespace, V1, ROLLING), Scripted()).ok
    bad = spec(namespace, V2, ROLLING, progress_deadline_seconds=10)
    result = release_flow(bad, Scripted(), template=NOT_READY)
    assert not result.ok
    assert "no progress within 10s" in result.summary
    assert "rolled back to revision 1" in result.summary
    assert deployments(cluster, namespace) == {"web": (V1, 3, 3)}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image": "127.0.0.1:5001/kyb-platform:v2"}, "not pinned by digest"),
        ({"app": "Web_App"}, "app"),
        ({"strategy": {"rolling": {"maxSurge": 0, "maxUnavailable": 0}}}, "maxSurge"),
        ({"strategy": {"recreate": {}}}, "rolling"),
    ],
)
def test_bad_spec_is_refused_before_touching_the_cluster(cluster, namespace, changes, message):
    raw = {"app": "web", "namespace": namespace, "image": V1, "strategy": ROLLING, **changes}
    with pytest.raises(ValidationError, match=message):
        ReleaseSpec.model_validate(raw)
    assert deployments(cluster, namespace) == {}

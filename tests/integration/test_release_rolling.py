"""Rolling releases on the real cluster.

success, idempotent re-run, rollback, post-deploy analysis (and a crash before its verdict), bad
specs.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from blocks import KubernetesCluster
from core.analysis.verdict import Verdict
from core.release.actions import AnalysisPhase
from core.release.observed import Outcome
from core.release.spec import AnalysisRef, ReleaseSpec
from tests.integration.progress_helpers import assert_progressed
from tests.integration.release_helpers import (
    NOT_READY,
    V1,
    V2,
    Scripted,
    deployments,
    record_left,
    release_flow,
    revision,
    spec,
)

ROLLING = {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}
ANALYSED = {
    "rolling": {**ROLLING["rolling"], "analysis": {"templates": [{"templateName": "error-rate"}]}}
}
POST_DEPLOY = [("error-rate", AnalysisPhase.POST_DEPLOY)]


@pytest.fixture
def cluster(platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


def _slow_to_ready(image: str) -> dict:
    """A pod template whose pods turn Ready 1 s after they start (the probe readiness stage).

    The roll then takes seconds, as a real one does, and the table has moves a person could see.
    """
    probe = {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 1}
    return {
        "metadata": {"labels": {"app": "web", "sandbox.kyb.dev/readiness": "probe"}},
        "spec": {"containers": [{"name": "web", "image": image, "readinessProbe": probe}]},
    }


def test_rolling_release_then_rerun_changes_nothing(cluster, namespace) -> None:
    first = release_flow(spec(namespace, V1, ROLLING), Scripted())
    assert first.ok, first.summary
    v2 = spec(namespace, V2, ROLLING, template=_slow_to_ready(V2))
    state = release_flow(v2, Scripted(), return_state=True)
    second = state.result()
    assert second.ok, second.summary
    assert deployments(cluster, namespace) == {"web": (V2, 3, 3)}
    # the progress moved as the Deployment rolled: the watch's counts, one table version each
    versions = assert_progressed(
        "release",
        state.state_details.flow_run_id,
        ["apply stable", "wait for stable", "done"],
        name=f"{namespace}-web",
    )
    waits = [r for rows in versions for r in rows if r["step"].startswith("wait for stable")]
    # counts seen while it rolled: at least one mid-roll count before the end (how many depends
    # on how fast the pods turn ready against the table's update rate, so not a fixed number)
    rolling = {r["detail"] for r in waits if r["state"] == "running"}
    assert rolling and all("updated" in d for d in rolling), waits
    assert any(r["state"] == "done" and r["detail"].startswith("Complete") for r in waits), waits
    assert 0 < max(r["progress"] for r in waits) < 100

    again = release_flow(v2, Scripted())
    assert again.ok
    assert [e.action for e in again.journal] == [again.summary]  # Done at once, no write
    assert deployments(cluster, namespace) == {"web": (V2, 3, 3)}


def test_never_ready_revision_is_rolled_back(cluster, namespace) -> None:
    assert release_flow(spec(namespace, V1, ROLLING), Scripted()).ok
    bad = spec(namespace, V2, ROLLING, progress_deadline_seconds=10)
    result = release_flow(bad.with_changes(template=NOT_READY), Scripted())
    assert not result.ok
    assert "no progress within 10s" in result.summary
    assert "rolled back to revision 1" in result.summary
    assert deployments(cluster, namespace) == {"web": (V1, 3, 3)}


def test_failed_post_deploy_analysis_rolls_back_to_the_previous_revision(cluster, namespace):
    assert release_flow(spec(namespace, V1, ROLLING), Scripted()).ok
    runner = Scripted({"error-rate": Outcome.FAILED})
    result = release_flow(spec(namespace, V2, ANALYSED), runner)
    assert not result.ok
    assert "postDeploy analysis error-rate ended Failed" in result.summary
    assert "rolled back to revision 1" in result.summary
    assert runner.calls == POST_DEPLOY
    assert deployments(cluster, namespace) == {"web": (V1, 3, 3)}
    assert revision(cluster, namespace, "web") == "3"  # revision 1's template, re-numbered
    actions = [e.action for e in result.journal]
    applied = actions.index(f"apply stable: {V2} x3")
    assert applied < actions.index("run postDeploy analysis error-rate")
    assert actions[-1] == "roll back to the previous revision"
    assert record_left(cluster, namespace) is None


def test_successful_post_deploy_analysis_keeps_the_new_revision(cluster, namespace) -> None:
    assert release_flow(spec(namespace, V1, ROLLING), Scripted()).ok
    runner = Scripted()
    result = release_flow(spec(namespace, V2, ANALYSED), runner)
    assert result.ok, result.summary
    assert runner.calls == POST_DEPLOY
    assert result.verdicts["post-deploy"].outcome is Outcome.SUCCESSFUL
    assert deployments(cluster, namespace) == {"web": (V2, 3, 3)}
    assert revision(cluster, namespace, "web") == "2"
    again = Scripted()
    assert release_flow(spec(namespace, V2, ANALYSED), again).ok
    assert again.calls == [], "re-releasing the settled image is a no-op, not a new analysis"


class Crashing(Scripted):
    """The run dies while the analysis runs (a crash, not an analysis Error).

    the Deployment settled on the new image and no verdict was recorded.
    """

    def run(
        self, ref: AnalysisRef, phase: AnalysisPhase, spec: ReleaseSpec, key: str = ""
    ) -> Verdict:
        super().run(ref, phase, spec, key)
        raise RuntimeError("worker lost")


def test_a_release_that_crashed_after_its_apply_is_analysed_by_the_rerun(cluster, namespace):
    assert release_flow(spec(namespace, V1, ROLLING), Scripted()).ok
    with pytest.raises(RuntimeError, match="worker lost"):
        release_flow(spec(namespace, V2, ANALYSED), Crashing())
    assert deployments(cluster, namespace) == {"web": (V2, 3, 3)}  # settled, never analysed
    assert record_left(cluster, namespace)["promoted"] is True
    runner = Scripted()
    result = release_flow(spec(namespace, V2, ANALYSED), runner)
    assert result.ok, result.summary
    assert runner.calls == POST_DEPLOY
    assert result.journal[0].action == "run postDeploy analysis error-rate"
    assert record_left(cluster, namespace) is None


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

"""Percent computations of releases, backups, restores and drills (core/*/progress.py)."""

from __future__ import annotations

import pytest

from core.names import artifact_key
from core.recovery.progress import BACKED_UP, BACKUP, DRILL, RESTORED, Stages, velero_progress
from core.release.actions import (
    AnalysisPhase,
    ApplyWorkload,
    Done,
    Fail,
    Pause,
    Promote,
    RunAnalysis,
    ScaleDownAfter,
    SwitchService,
    WaitReady,
)
from core.release.argo_rollout import RolloutStatus
from core.release.observed import RunRecord, Track, WorkloadView
from core.release.progress import (
    Phase,
    argo_percent,
    blue_green_phases,
    canary_percent,
    phase_percent,
    release_percent,
    rollout_share,
)
from core.release.spec import AnalysisRef, ReleaseSpec

IMAGE = "127.0.0.1:5001/kyb-platform@sha256:" + "2" * 64
OLD = "127.0.0.1:5001/kyb-platform@sha256:" + "1" * 64
ANALYSIS = {"templates": [{"templateName": "error-rate"}]}


def _spec(strategy: dict, replicas: int = 3) -> ReleaseSpec:
    raw = {"app": "web", "namespace": "ns", "image": IMAGE, "replicas": replicas}
    return ReleaseSpec.model_validate({**raw, "strategy": strategy})


def _view(updated: int, ready: int, total: int, image: str = IMAGE, **kw) -> WorkloadView:
    return WorkloadView(
        "web", image, 3, updated=updated, ready=ready, available=ready, total=total, **kw
    )


@pytest.mark.parametrize(
    ("view", "share"),
    [
        (None, 0.0),
        (_view(3, 3, 3, image=OLD), 0.0),  # still the old template
        (_view(3, 3, 3, observed=False), 0.0),  # status not caught up with the new spec
        (_view(1, 3, 4), 1 / 6),  # surge pod created, not ready; 3 old ready
        (_view(2, 3, 4), 3 / 6),  # 2 new (1 ready), 2 old
        (_view(3, 3, 4), 5 / 6),  # 3 new (2 ready), 1 old left
        (_view(3, 3, 3), 1.0),  # settled
        (_view(9, 9, 9), 1.0),
    ],
)
def test_rollout_share_counts_new_pods_created_and_ready(view, share) -> None:
    assert rollout_share(view, IMAGE, 3) == pytest.approx(share)


def test_rolling_percent_rises_with_the_rollout_and_ends_at_done() -> None:
    spec = _spec({"rolling": {"maxSurge": 1}})
    wait, rec = WaitReady(Track.STABLE, 600), RunRecord()
    seen = [release_percent(spec, wait, rec, v) for v in (_view(1, 3, 4), _view(3, 3, 4))]
    assert seen == sorted(seen) and seen[0] > 0 and seen[-1] < 100
    assert release_percent(spec, ApplyWorkload(Track.STABLE, IMAGE, 3), rec, None) == 0.0
    assert release_percent(spec, wait, rec, _view(3, 3, 3)) == 99.0  # 100 only when done
    assert release_percent(spec, Done("ok"), rec) == 100.0
    assert release_percent(spec, Fail("no"), rec) is None


def test_rolling_with_analysis_leaves_room_for_the_verdict() -> None:
    spec = _spec({"rolling": {"maxSurge": 1, "analysis": ANALYSIS}})
    ref = AnalysisRef.model_validate(ANALYSIS)
    analysis = RunAnalysis("post-deploy", ref, AnalysisPhase.POST_DEPLOY)
    assert release_percent(spec, analysis, RunRecord(promoted=True)) == 90.0


def test_canary_percent_is_the_share_of_steps() -> None:
    assert canary_percent(0, 5) == 0.0
    assert canary_percent(2, 5) == 40.0
    assert canary_percent(7, 5) == 100.0
    spec = _spec({"canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": 1}}]}})
    assert release_percent(spec, Pause("p", "wait", 1), RunRecord(step_index=1)) == 50.0


BLUE_GREEN = {
    "blueGreen": {
        "activeService": "web-active",
        "previewService": "web-preview",
        "prePromotionAnalysis": ANALYSIS,
        "postPromotionAnalysis": ANALYSIS,
    }
}


def test_blue_green_phases_follow_the_spec() -> None:
    assert blue_green_phases(_spec(BLUE_GREEN)) == tuple(Phase)
    plain = _spec({"blueGreen": {"activeService": "web-active"}})
    assert blue_green_phases(plain) == (
        Phase.PREVIEW,
        Phase.PROMOTION,
        Phase.SWITCH,
        Phase.SCALE_DOWN,
    )


def test_blue_green_percent_moves_by_phase() -> None:
    spec, ref = _spec(BLUE_GREEN), AnalysisRef.model_validate(ANALYSIS)
    rec, promoted = RunRecord(), RunRecord(promoted=True)
    steps = [
        (ApplyWorkload(Track.GREEN, IMAGE, 3), rec, None),
        (WaitReady(Track.GREEN, 600), rec, _view(2, 3, 4)),
        (RunAnalysis("pre-promotion", ref, AnalysisPhase.PRE_PROMOTION), rec, None),
        (Pause("promotion", "switch?", needs_human=True), rec, None),
        (Promote("go"), rec, None),
        (SwitchService("web-active", {"color": "green"}), promoted, None),
        (RunAnalysis("post-promotion", ref, AnalysisPhase.POST_PROMOTION), promoted, None),
        (ScaleDownAfter(Track.BLUE, 30), promoted, None),
        (Done("ok"), promoted, None),
    ]
    seen = [release_percent(spec, a, r, v) for a, r, v in steps]
    assert seen == sorted(seen), seen
    assert seen[0] == 0.0 and 0 < seen[1] < seen[2] and seen[-1] == 100.0
    aborted = RunRecord(aborted="analysis failed")
    back = SwitchService("web-active", {"color": "blue"})
    assert release_percent(spec, back, aborted) is None  # a rollback moves nothing


def test_phase_percent_of_a_missing_phase_is_the_next_one() -> None:
    phases = (Phase.PREVIEW, Phase.SWITCH)
    assert phase_percent(phases, Phase.PREVIEW, 0.5) == 25.0
    assert phase_percent(phases, Phase.PROMOTION, 0.9) == 50.0  # not there: start of switch


def _status(**kw) -> RolloutStatus:
    base = dict(
        generation=1,
        observed=True,
        phase="Progressing",
        message="",
        step=None,
        steps=0,
        pauses=(),
        aborted=False,
        stable="a",
        current="b",
        updated=0,
        ready=0,
        replicas=3,
    )
    return RolloutStatus(**{**base, **kw})


def test_argo_percent_from_the_rollout_status() -> None:
    spec = _spec(BLUE_GREEN)
    assert argo_percent(spec, _status(steps=4, step=1)) == 25.0
    assert argo_percent(spec, _status(updated=3, ready=3)) == 50.0
    assert argo_percent(spec, _status(pauses=("BlueGreenPause",), active="a")) == 50.0
    assert argo_percent(spec, _status(active="b")) == 75.0
    assert argo_percent(spec, _status(phase="Healthy", stable="b")) == 100.0


def test_velero_progress_reads_status_progress() -> None:
    obj = {"status": {"phase": "InProgress", "progress": {"totalItems": 40, BACKED_UP: 10}}}
    found = velero_progress(obj, BACKED_UP)
    assert (found.done, found.total, found.share) == (10, 40, 0.25)
    assert found.describe("backed up") == "InProgress: 10 of 40 items backed up"
    assert velero_progress({}, RESTORED).describe("restored") == "New: no items counted yet"
    done = velero_progress({"status": {"phase": "Completed"}}, RESTORED)
    assert done.share == 1.0
    odd = {"status": {"progress": {"totalItems": "x", RESTORED: -3}}}
    assert velero_progress(odd, RESTORED).share == 0.0


def test_stages_weigh_their_share() -> None:
    stages = Stages((("a", 1), ("b", 2), ("c", 1)))
    assert [stages.percent(s) for s in stages.names] == [0.0, 25.0, 75.0]
    assert stages.percent("b", 0.5) == 50.0
    assert stages.percent("c", 1.0) == 100.0
    with pytest.raises(KeyError, match="no stage"):
        stages.percent("d")
    for run in (BACKUP, DRILL):
        ends = [run.percent(s, 1.0) for s in run.names]
        assert ends == sorted(ends) and ends[-1] == 100.0


@pytest.mark.parametrize(
    ("parts", "key"),
    [
        (("release", "progress", "ns-web"), "release-progress-ns-web"),
        (("backup", "steps", ""), "backup-steps"),
        (("Release", "steps", "My_App.v2"), "release-steps-my-app-v2"),
        (("x" * 120,), "x" * 100),
    ],
)
def test_artifact_keys_are_sanitised(parts, key) -> None:
    assert artifact_key(*parts) == key

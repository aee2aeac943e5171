"""Table tests for the rollback planner: the target decided once, and the order of its steps."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ConfigError
from core.release.actions import Scale, ScaleDownAfter, SwitchService, WaitReady
from core.release.history import History, RollbackRecord
from core.release.observed import Track, WorkloadView
from core.release.revisions import Revision
from core.release.rollback import (
    AppLayout,
    AppState,
    RestoreTemplate,
    VerifyServing,
    decide,
    foreign_pods,
    plan,
)
from core.release.spec import ReleaseSpec

REPO = "127.0.0.1:5001/web@sha256:"
V1, V2, V3 = (REPO + c * 64 for c in "123")
BLUE, GREEN, STABLE, CANARY = Track.BLUE, Track.GREEN, Track.STABLE, Track.CANARY
BG = {"blueGreen": {"activeService": "web-active", "previewService": "web-preview"}}
CANARY_STEPS = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}
ROLLING: dict[str, Any] = {"rolling": {}}
AT = {"at": "2026-12-04T10:00:00+00:00", "by": "run-1"}


def release(strategy: dict, image: str = V2) -> ReleaseSpec:
    data = {"app": "web", "namespace": "ns", "image": image, "replicas": 3, "strategy": strategy}
    return ReleaseSpec.model_validate(data)


def served(*images: str, spec: ReleaseSpec | None = None) -> History:
    history = History()
    for image in images:
        history = history.released((spec or release(ROLLING)).with_changes(image=image), "t")
    return history.model_copy(update={"spec": spec}) if spec else history


def template(image: str) -> dict:
    labels = {"app": "web", "pod-template-hash": "h" + image[-3:]}
    containers = [{"name": "web", "image": image}]
    return {"metadata": {"labels": labels}, "spec": {"containers": containers}}


def revs(*pairs: tuple[int, str]) -> tuple[Revision, ...]:
    return tuple(Revision(n, f"web-{n}", image, template(image)) for n, image in pairs)


def view(name: str, image: str, replicas: int = 3, revision: int = 1, **kw: Any) -> WorkloadView:
    ready = kw.pop("ready", replicas)
    return WorkloadView(name, image, replicas, ready, ready, ready, revision=str(revision), **kw)


def on(color: str) -> dict[str, str]:
    return {"app": "web", "color": color}


# ---- history -------------------------------------------------------------------------------
def test_history_keeps_versions_in_order_and_round_trips() -> None:
    spec = release(BG)
    history = served(V1, V2, V2, spec=spec)  # the same image again adds no version
    assert [(s.seq, s.image) for s in history.served] == [(1, V1), (2, V2)]
    assert history.previous(V2).image == V1 and history.previous(V1).image == V2
    assert served(V1).previous(V1) is None
    again = History.loads(history.dumps(), "cm")
    assert again == history and again.spec.strategy.blue_green.active_service == "web-active"
    with pytest.raises(ConfigError, match="does not hold a release history"):
        History.loads('{"served": 3}', "ConfigMap ns/web-history")


def test_finished_rollback_is_the_newest_version_once() -> None:
    rec = record(undoes=2)
    history = served(V1, V2).decided(rec).finished("t2")
    assert [(s.seq, s.image, s.by) for s in history.served][-1] == (3, V1, "rollback")
    assert history.rollback.done == 3
    assert history.finished("t3") == history  # a re-run after it finished adds nothing


def record(**kw: Any) -> RollbackRecord:
    data = dict(
        undoes=2,
        to_revision=0,
        track=STABLE,
        image=V1,
        revision=1,
        template=template(V1),
        from_track=STABLE,
        from_image=V2,
        from_revision=2,
        decided_at="t",
        decided_by="run-0",
    )
    return RollbackRecord(**{**data, **kw})


# ---- rolling -------------------------------------------------------------------------------
def rolling_state(current: str, number: int, history: tuple[Revision, ...]) -> AppState:
    return AppState(
        workloads={STABLE: view("web", current, revision=number)},
        revisions={STABLE: history},
        services={"web": {"app": "web"}},
    )


def test_rolling_goes_back_to_the_version_that_served_before() -> None:
    lay = AppLayout.of_release(release(ROLLING))
    state = rolling_state(V2, 2, revs((1, V1), (2, V2)))
    rec, reused = decide(lay, served(V1, V2), state, **AT)
    assert not reused
    assert (rec.image, rec.revision, rec.from_image, rec.from_revision) == (V1, 1, V2, 2)
    assert "pod-template-hash" not in rec.template["metadata"]["labels"]
    steps = plan(lay, rec, state)
    assert [type(s.action) for s in steps] == [RestoreTemplate, WaitReady, VerifyServing]
    assert steps[0].before == f"{V2} (revision 2)"
    assert steps[0].after == f"{V1} (revision 1's template)"
    assert steps[-1].action == VerifyServing("web", {"app": "web"}, V1, 3)


def test_rolling_skips_a_failed_release_that_was_undone() -> None:
    # V3 failed and was undone: its ReplicaSet is revision 3, V2's came back as revision 4
    state = rolling_state(V2, 4, revs((1, V1), (3, V3), (4, V2)))
    rec, _ = decide(AppLayout.of_release(release(ROLLING)), served(V1, V2), state, **AT)
    assert (rec.image, rec.revision) == (V1, 1)  # kubectl's "previous revision" would be V3


def test_recorded_target_is_reused_after_a_lost_answer() -> None:
    lay = AppLayout.of_release(release(ROLLING))
    history = served(V1, V2).decided(record())
    # the first run's restore applied (V1 is revision 3 now) but its answer was lost
    state = rolling_state(V1, 3, revs((2, V2), (3, V1)))
    rec, reused = decide(lay, history, state, **AT)
    assert reused and rec == history.rollback  # never V2's "previous revision"
    assert [type(s.action) for s in plan(lay, rec, state)] == [WaitReady, VerifyServing]
    # and after it finished, a re-run keeps it too
    rec, reused = decide(lay, history.finished("t"), state, **AT)
    assert reused and rec.image == V1


def test_a_new_release_or_another_revision_decides_again() -> None:
    lay = AppLayout.of_release(release(ROLLING))
    history = served(V1, V2).decided(record()).finished("t").released(release(ROLLING, V3), "t")
    state = rolling_state(V3, 4, revs((2, V2), (3, V1), (4, V3)))
    rec, reused = decide(lay, history, state, **AT)
    assert not reused and (rec.image, rec.revision) == (V1, 3)  # V1 served before V3
    rec, reused = decide(lay, history, state, 2, **AT)
    assert not reused and (rec.image, rec.revision, rec.to_revision) == (V2, 2, 2)


def test_bad_input_fails_before_any_change() -> None:
    lay = AppLayout.of_release(release(ROLLING))
    state = rolling_state(V1, 1, revs((1, V1)))
    with pytest.raises(ConfigError, match="nothing to roll back to: web has served no other"):
        decide(lay, served(V1), state, **AT)
    with pytest.raises(ConfigError, match="revision 9 does not exist: choose one of 1"):
        decide(lay, served(V1), state, 9, **AT)
    with pytest.raises(ConfigError, match="to_revision must be 0"):
        decide(lay, served(V1), state, -1, **AT)
    with pytest.raises(ConfigError, match="no Deployment 'web' in namespace 'ns'"):
        decide(lay, served(V1, V2), AppState(), **AT)
    unfinished = AppState(state.workloads, state.revisions, state.services, unfinished=V2)
    with pytest.raises(ConfigError, match=f"a release of {V2} to web has not ended"):
        decide(lay, served(V1, V2), unfinished, **AT)
    gone = rolling_state(V2, 5, revs((5, V2)))  # V1's ReplicaSet was garbage-collected
    with pytest.raises(ConfigError, match=f"keeps no ReplicaSet of {V1}"):
        decide(lay, served(V1, V2), gone, **AT)


def test_deployment_without_history_is_undone_like_kubectl() -> None:
    deployment = {
        "metadata": {"name": "api", "namespace": "ns"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "api"}},
            "template": template(V2),
        },
    }
    lay = AppLayout.of_deployment(deployment)
    assert (lay.container, lay.replicas, lay.service) == ("web", 2, None)
    state = AppState({STABLE: view("api", V3, 2, 3)}, {STABLE: revs((1, V1), (2, V2), (3, V3))})
    rec, _ = decide(lay, History(), state, **AT)
    assert (rec.image, rec.revision) == (V2, 2)
    assert plan(lay, rec, state)[-1].action == VerifyServing(None, {"app": "api"}, V2, 2)
    with pytest.raises(ConfigError, match="no revision before 1"):
        decide(lay, History(), AppState({STABLE: view("api", V1, 2, 1)}, {}), **AT)


# ---- blue-green ----------------------------------------------------------------------------
def bg_state(blue: WorkloadView, green: WorkloadView, active: str = "green", **kw) -> AppState:
    return AppState(
        workloads={BLUE: blue, GREEN: green},
        revisions=kw.get("revisions", {}),
        services={"web-active": on(active), "web-preview": on(active)},
    )


def test_blue_green_brings_the_old_color_back_before_the_switch_then_scales_down() -> None:
    spec = release(BG)
    lay = AppLayout.of_release(spec)
    state = bg_state(view("web-blue", V1, 0, ready=0), view("web-green", V2, 3, 2))
    rec, _ = decide(lay, served(V1, V2, spec=spec), state, **AT)
    assert (rec.track, rec.image, rec.template, rec.from_track) == (BLUE, V1, None, GREEN)
    steps = [s.action for s in plan(lay, rec, state)]
    assert steps[:5] == [
        Scale(BLUE, 3),
        WaitReady(BLUE, 600),
        SwitchService("web-active", on("blue")),
        SwitchService("web-preview", on("blue")),
        ScaleDownAfter(GREEN, 30),
    ]
    assert steps[5] == VerifyServing("web-active", on("blue"), V1, 3)


def test_blue_green_restores_the_old_colors_template_after_a_failed_release() -> None:
    spec = release(BG)
    lay = AppLayout.of_release(spec)
    # V3 failed on blue after V2 went to green: blue holds V3 at 0, its revision 1 ran V1
    blue = view("web-blue", V3, 0, revision=2, ready=0)
    revisions = {BLUE: revs((1, V1), (2, V3))}
    state = bg_state(blue, view("web-green", V2, 3, 2), revisions=revisions)
    rec, _ = decide(lay, served(V1, V2, spec=spec), state, **AT)
    assert (rec.track, rec.image, rec.revision) == (BLUE, V1, 1)
    first = plan(lay, rec, state)[0]
    assert first.action == RestoreTemplate(BLUE, V1, 1, rec.template)
    assert first.before == f"{V3} (revision 2)"


def test_blue_green_rerun_after_the_switch_only_finishes() -> None:
    spec = release(BG)
    lay = AppLayout.of_release(spec)
    rec = record(track=BLUE, template=None, from_track=GREEN)
    history = served(V1, V2, spec=spec).decided(rec)
    state = bg_state(view("web-blue", V1, 3, 2), view("web-green", V2, 3, 2), active="blue")
    again, reused = decide(lay, history, state, **AT)
    assert reused and again == rec  # blue is active now: never "back" to green
    steps = [s.action for s in plan(lay, again, state)]
    assert steps == [
        WaitReady(BLUE, 600),
        ScaleDownAfter(GREEN, 30),
        VerifyServing("web-active", on("blue"), V1, 3),
    ]


def test_blue_green_refuses_what_it_cannot_do() -> None:
    spec = release(BG)
    lay = AppLayout.of_release(spec)
    state = bg_state(view("web-blue", V1, 0), view("web-green", V2))
    with pytest.raises(ConfigError, match="a blue-green app has one per color"):
        decide(lay, served(V1, V2, spec=spec), state, 1, **AT)
    nothing = bg_state(view("web-blue", V1), view("web-green", V2), active="none")
    with pytest.raises(ConfigError, match="nothing to roll back to: Service web-active selects"):
        decide(lay, served(V1, spec=spec), nothing, **AT)
    only = AppState({GREEN: view("web-green", V2)}, {}, {"web-active": on("green")})
    with pytest.raises(ConfigError, match="no Deployment 'web-blue'"):
        decide(lay, served(V1, V2, spec=spec), only, **AT)


# ---- canary --------------------------------------------------------------------------------
def test_canary_puts_stable_back_at_full_size_then_the_canary_to_zero() -> None:
    spec = release(CANARY_STEPS)
    lay = AppLayout.of_release(spec)
    state = AppState(
        workloads={
            STABLE: view("web", V2, 2, revision=2),
            CANARY: view("web-canary", V2, 2, revision=1),
        },
        revisions={STABLE: revs((1, V1), (2, V2)), CANARY: revs((1, V2))},
        services={"web": {"app": "web"}},
    )
    rec, _ = decide(lay, served(V1, V2, spec=spec), state, **AT)
    assert (rec.track, rec.image, rec.revision) == (STABLE, V1, 1)
    steps = plan(lay, rec, state)
    assert [s.action for s in steps][1:] == [
        Scale(STABLE, 3),
        WaitReady(STABLE, 600),
        Scale(CANARY, 0),
        VerifyServing("web", {"app": "web"}, V1, 3),  # the Service of both tracks
    ]
    assert (steps[3].before, steps[3].after) == (f"2 replicas of {V2}", "0 replicas")


def test_foreign_pods_leaves_terminating_pods_out() -> None:
    def pod(name: str, image: str, gone: bool = False) -> dict:
        meta = {"name": name, **({"deletionTimestamp": "now"} if gone else {})}
        return {"metadata": meta, "spec": {"containers": [{"name": "web", "image": image}]}}

    pods = [pod("a", V1), pod("b", V2), pod("c", V2, gone=True)]
    assert foreign_pods(pods, "web", V1) == [f"b: {V2}"]

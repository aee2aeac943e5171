"""The rollback planner (pure): where the last release put the app, one target, ordered steps.

Order (DESIGN.md principle 8): traffic back to the previous stable version first (blue-green: that
color back on its version, scaled up and Ready, then the active and preview Services switched to
it; rolling and canary: the stable Deployment back on that version at full size and Ready), then
the rest (the bad color or the canary to 0), then a check that the app's Service selects only
pods of the target version. The target is decided once and recorded before any write
(`core.release.history.RollbackRecord`), so a retried or re-run rollback never moves further back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from typing_extensions import override

from core.errors import ConfigError
from core.release import layout as where
from core.release.actions import ReleaseAction, Scale, ScaleDownAfter, SwitchService, WaitReady
from core.release.defaults import COLOR_LABEL, COLORS, PROGRESS_DEADLINE_SECONDS
from core.release.history import HISTORY_SUFFIX, History, RollbackRecord
from core.release.observed import Track, WorkloadView
from core.release.revisions import Revision, rollback_target, undo_patch
from core.release.spec import ReleaseSpec, StrategyKind

BLUE, GREEN = (Track(c) for c in COLORS)


@dataclass(frozen=True)
class AppLayout:
    """Where an app's last release put it: a Deployment and pod labels per track, its Services."""

    app: str
    namespace: str
    kind: StrategyKind
    container: str
    replicas: int
    workloads: Mapping[Track, str]
    selectors: Mapping[Track, Mapping[str, str]]
    service: str | None = None  # what users reach: `<app>` (rolling, canary) or activeService
    preview: str | None = None  # blue-green previewService
    scale_down_delay: int = 0  # blue-green abortScaleDownDelaySeconds, before the bad color goes
    deadline: int = PROGRESS_DEADLINE_SECONDS

    @classmethod
    def of_release(cls, spec: ReleaseSpec) -> AppLayout:
        """The layout `core.release.layout` gives the release `spec`."""
        tracks, bg = where.tracks(spec), spec.strategy.blue_green
        return cls(
            app=spec.app,
            namespace=spec.namespace,
            kind=spec.kind,
            container=spec.container,
            replicas=spec.replicas,
            workloads={t: where.workload_name(spec, t) for t in tracks},
            selectors={t: where.selector(spec, t) for t in tracks},
            service=bg.active_service if bg else spec.app,
            preview=bg.preview_service if bg else None,
            scale_down_delay=bg.abort_scale_down_delay_seconds if bg else 0,
            deadline=spec.deadline_seconds,
        )

    @classmethod
    def of_deployment(cls, deployment: Mapping[str, Any]) -> AppLayout:
        """A Deployment without a release history: rolled back as `kubectl rollout undo` does."""
        meta, spec = deployment.get("metadata") or {}, deployment.get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or {}
        return cls(
            app=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            kind=StrategyKind.ROLLING,
            container=((pod.get("containers") or [{}])[0]).get("name", ""),
            replicas=spec.get("replicas", 1),
            workloads={Track.STABLE: meta.get("name", "")},
            selectors={Track.STABLE: dict((spec.get("selector") or {}).get("matchLabels") or {})},
            deadline=spec.get("progressDeadlineSeconds") or PROGRESS_DEADLINE_SECONDS,
        )


@dataclass(frozen=True)
class AppState:
    """What the cluster shows of an app's layout, as the rollback planner reads it."""

    workloads: Mapping[Track, WorkloadView] = field(default_factory=dict)
    revisions: Mapping[Track, tuple[Revision, ...]] = field(default_factory=dict)  # oldest first
    services: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # name -> selector
    unfinished: str | None = None  # image of a release whose run record is still on the cluster


@dataclass(frozen=True)
class RestoreTemplate(ReleaseAction):
    """Replace `track`'s pod template with the one revision `revision` ran (`image`)."""

    track: Track
    image: str
    revision: int
    template: Mapping[str, Any]

    @override
    def describe(self) -> str:
        return f"restore {self.track}'s pod template of revision {self.revision} ({self.image})"


@dataclass(frozen=True)
class VerifyServing(ReleaseAction):
    """Check that `service` (or, without one, `selector`) reaches only ready pods of `image`."""

    service: str | None
    selector: Mapping[str, str]
    image: str
    replicas: int

    @override
    def describe(self) -> str:
        who = f"Service {self.service}" if self.service else "the app's selector"
        return f"verify {who} selects only pods of {self.image}, {self.replicas} ready"


@dataclass(frozen=True)
class Step:
    """One planned action, with what it changes as it is now (`before`) and will be (`after`)."""

    action: ReleaseAction
    before: str
    after: str


def labels(selector: Mapping[str, str] | None) -> str:
    """A selector as `k=v,k=v` ("none" for no Service)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) if selector else "none"


def image_of(template: Mapping[str, Any], container: str) -> str | None:
    """The image of `container` in a pod template (the first container's if none is named so)."""
    found = ((template.get("spec") or {}).get("containers")) or [{}]
    return next(
        (c.get("image") for c in found if c.get("name") == container), found[0].get("image")
    )


def foreign_pods(pods: Iterable[Mapping[str, Any]], container: str, image: str) -> list[str]:
    """`name: image` of the live (not terminating) pods whose `container` runs another image."""
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        seen = image_of(pod, container)
        if not meta.get("deletionTimestamp") and seen != image:
            out.append(f"{meta.get('name')}: {seen}")
    return out


def serving(lay: AppLayout, state: AppState) -> tuple[Track, WorkloadView]:
    """The track users reach now and its workload.

    Raises:
        ConfigError: nothing of the app serves (a missing Deployment or Service, no color).
    """
    track = Track.STABLE
    if lay.kind is StrategyKind.BLUE_GREEN:
        if lay.service not in state.services:
            raise ConfigError(
                f"Service {lay.service!r} of {lay.app} is not in namespace {lay.namespace!r}: "
                "check the app and namespace names"
            )
        color = state.services[lay.service].get(COLOR_LABEL)
        if color not in COLORS:
            raise ConfigError(
                f"nothing to roll back to: Service {lay.service} selects no color "
                f"({COLOR_LABEL}={color}), so no version of {lay.app} serves yet"
            )
        track = Track(color)
    view = state.workloads.get(track)
    if view is None:
        raise ConfigError(
            f"no Deployment {lay.workloads[track]!r} in namespace {lay.namespace!r}: "
            "check the app and namespace names"
        )
    return track, view


def _number(revision: str | None) -> int:
    return int(revision) if revision and revision.isdigit() else 0


def _nothing(lay: AppLayout, image: str | None) -> ConfigError:
    return ConfigError(
        f"nothing to roll back to: {lay.app} has served no other version than {image} (its "
        f"history, ConfigMap {lay.app}{HISTORY_SUFFIX}, knows no earlier one); release the "
        "version you want instead"
    )


def _kept(lay: AppLayout, state: AppState, track: Track, image: str, skip: int) -> Revision:
    """The newest revision of `track` that ran `image` (not revision `skip`)."""
    revs = state.revisions.get(track, ())
    found = [r for r in revs if image_of(r.template, lay.container) == image and r.number != skip]
    if not found:
        raise ConfigError(
            f"{lay.workloads[track]} keeps no ReplicaSet of {image}, the version that served "
            "before (its revisionHistoryLimit dropped it?): release that image again instead"
        )
    return found[-1]


def _target(
    lay: AppLayout, history: History, state: AppState, now: tuple[Track, WorkloadView], asked: int
) -> tuple[Track, Revision, bool]:
    """(track, revision, restore?) to go back to; restore: its pod template must be put back."""
    track, view = now
    current = _number(view.revision)
    if lay.kind is not StrategyKind.BLUE_GREEN:
        if asked or not history.served:  # a revision asked for, or a Deployment with no history
            return track, rollback_target(state.revisions.get(track, ()), current, asked), True
        previous = history.previous(view.image)
        if previous is None:
            raise _nothing(lay, view.image)
        return track, _kept(lay, state, track, previous.image, current), True
    if asked:
        raise ConfigError(
            "to_revision names a revision of one Deployment, and a blue-green app has one per "
            "color: leave it 0 to return to the previous stable version"
        )
    previous = history.previous(view.image)
    if previous is None:
        raise _nothing(lay, view.image)
    other = GREEN if track is BLUE else BLUE
    back = state.workloads.get(other)
    if back is None:
        raise ConfigError(
            f"no Deployment {lay.workloads[other]!r} in namespace {lay.namespace!r} to bring "
            f"{previous.image} back on: release that image again instead"
        )
    if back.image == previous.image:  # the usual case: the old color still has it, scaled down
        return other, Revision(_number(back.revision), back.name, previous.image, {}), False
    return other, _kept(lay, state, other, previous.image, -1), True


def decide(
    lay: AppLayout, history: History, state: AppState, to_revision: int = 0, *, at: str, by: str
) -> tuple[RollbackRecord, bool]:
    """The rollback target: the recorded one if this run carries on with it, else a new one.

    Args:
        lay: where the app's last release put it.
        history: the app's release history, with the rollback decided last, if any.
        state: what the cluster shows now.
        to_revision: 0 for the previous stable version, or a revision of the stable Deployment.
        at: when (ISO time), for a new record.
        by: who decides (the flow run), for a new record.

    Returns:
        (record, reused): a reused record is the one `history` holds; a new one must be saved
        before any write.

    Raises:
        ConfigError: nothing to roll back to, an unknown app or revision, an unfinished release.
    """
    if to_revision < 0:
        raise ConfigError("to_revision must be 0 (the previous stable version) or a revision")
    if state.unfinished:
        raise ConfigError(
            f"a release of {state.unfinished} to {lay.app} has not ended (its run record, "
            f"ConfigMap {lay.app}{where.RECORD_SUFFIX}, is still there): re-run that release so "
            "that it finishes or rolls itself back, then roll back if still needed"
        )
    now = serving(lay, state)
    kept = history.rollback
    if kept is not None and kept.fits(history.newest, to_revision, now[1].image):
        return kept, True
    track, rev, restore = _target(lay, history, state, now, to_revision)
    template = undo_patch(rev)[0]["value"] if restore else None
    record = RollbackRecord(
        undoes=history.newest,
        to_revision=to_revision,
        track=track,
        image=image_of(rev.template, lay.container) if restore else rev.image,
        revision=rev.number,
        template=template,
        from_track=now[0],
        from_image=now[1].image or "",
        from_revision=_number(now[1].revision),
        decided_at=at,
        decided_by=by,
    )
    return record, False


def plan(lay: AppLayout, rec: RollbackRecord, state: AppState) -> list[Step]:
    """The ordered steps from what the cluster shows to `rec`'s target serving alone.

    Steps already done (a re-run after a crash or a lost answer) are left out; the wait and the
    final check always run.
    """
    t, n, view = rec.track, lay.replicas, state.workloads.get(rec.track)
    steps = []
    if rec.template is not None and (view is None or view.image != rec.image):
        was = f"{view.image} (revision {view.revision})" if view else "missing"
        action = RestoreTemplate(t, rec.image, rec.revision, rec.template)
        steps.append(Step(action, was, f"{rec.image} (revision {rec.revision}'s template)"))
    if view is None or view.replicas != n:
        steps.append(Step(Scale(t, n), f"{view.replicas if view else 0} replicas", f"{n} replicas"))
    ready = f"{view.ready if view else 0}/{n} ready"
    steps.append(Step(WaitReady(t, lay.deadline), ready, f"{n}/{n} ready"))
    want: Mapping[str, str] = dict(lay.selectors[t])
    blue_green = lay.kind is StrategyKind.BLUE_GREEN
    if blue_green:  # active first: it carries the traffic; preview follows (as after a release)
        for svc in (lay.service, lay.preview):
            now = state.services.get(svc or "")
            if now is not None and now != want:
                steps.append(Step(SwitchService(svc, want), labels(now), labels(want)))
    elif lay.service in state.services:
        want = state.services[lay.service]  # both tracks of a canary are behind it
    for other, seen in state.workloads.items():
        if other is not t and seen.replicas:
            down = ScaleDownAfter(other, lay.scale_down_delay) if blue_green else Scale(other, 0)
            steps.append(Step(down, f"{seen.replicas} replicas of {seen.image}", "0 replicas"))
    service = lay.service if lay.service in state.services else None
    check = VerifyServing(service, want, rec.image, n)
    steps.append(Step(check, "", f"only pods of {rec.image}, {n} ready"))
    return steps

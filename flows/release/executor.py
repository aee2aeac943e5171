"""The release executor: observe, ask the planner for one action, perform it, record it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from prefect.futures import PrefectFuture

from blocks import KubernetesCluster
from core.analysis.verdict import AnalysisRunner, Verdict
from core.delivery.record import Attempt
from core.errors import ConfigError
from core.release import layout
from core.release.actions import (
    Abort,
    AnalysisPhase,
    ApplyWorkload,
    CompleteStep,
    Done,
    Pause,
    Promote,
    ReleaseAction,
    RunAnalysis,
    Scale,
    ScaleDownAfter,
    SetCanaryWeight,
    SwitchService,
    WaitReady,
    updated_record,
)
from core.release.decisions import Choice, Decision
from core.release.errors import SpecError
from core.release.observed import ObservedState, Outcome, RunRecord, Track, WorkloadView
from core.release.planners import next_action
from core.release.progress import release_percent
from core.release.spec import NginxRouting, ReleaseSpec, StrategyKind
from flows import events
from flows.progress import FAILED, Progress, Step
from flows.release.background import abort_pause_on_bad_verdict, bad_verdict, finished
from tasks import kube, lease, router, workload
from tasks.release import (
    ensure_services,
    load_record,
    observe,
    remember_release,
    run_analysis,
    save_record,
    timed_pause,
)
from tasks.rollback import undo_once

Asker = Callable[[Pause, ReleaseSpec], Decision]
MAX_ACTIONS = 500  # a release that needs more actions than this is stuck in a loop: fail it


@dataclass
class JournalEntry:
    """One performed action: what, when, how long, and what came of it."""

    action: str
    started: float
    seconds: float = 0.0
    note: str = ""


@dataclass
class ReleaseResult:
    """How a release ended, with every action, verdict and human decision along the way."""

    ok: bool
    summary: str
    journal: list[JournalEntry] = field(default_factory=list)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    first_deploy: bool = False  # nothing of the app ran when the release started
    record: Attempt | None = None  # the attempt as the run's labels record it (flows/record.py)


def preflight(spec: ReleaseSpec) -> None:
    """Refuse what the executor cannot do before anything touches the cluster."""
    canary = spec.strategy.canary
    if canary is not None and isinstance(canary.traffic_routing, NginxRouting):
        raise ConfigError(
            "trafficRouting nginx is not supported: use plugins: {argoproj-labs/gatewayAPI: "
            "{httpRoute: <name>}} (an HTTPRoute on the platform's Gateway), or remove it to "
            "release with a replica-weighted canary",
            app=spec.app,
        )


def release_progress(spec: ReleaseSpec) -> Progress:
    """The progress artifacts of a release: `release-progress-` and `release-steps-<ns>-<app>`."""
    return Progress("release", f"{spec.namespace}-{spec.app}", f"{spec.app} ({spec.kind})")


class Executor:
    """Runs one release to Done or Fail; the flow supplies the analysis runner and the asker.

    It runs until Done or Fail. Every write is an idempotent task; the run record survives a crash
    on the cluster (ConfigMap `<app>-release`), so a re-run finishes or cleans up what a crashed run
    left.
    """

    def __init__(
        self,
        spec: ReleaseSpec,
        cluster: KubernetesCluster,
        runner: AnalysisRunner,
        ask: Asker,
    ) -> None:
        self.spec, self.cluster, self.runner, self.ask = spec, cluster, runner, ask
        self.result = ReleaseResult(ok=False, summary="")
        self.background: dict[str, tuple[RunAnalysis, PrefectFuture]] = {}
        self.background_ended = threading.Event()  # set when any background analysis ends
        self.progress = release_progress(spec)

    def run(self) -> ReleaseResult:
        """Drive the planner until the release is Done (ok) or Fail (rolled back where possible)."""
        preflight(self.spec)
        self.runner.validate(self.spec)  # an unknown template fails before any write
        if router.routing(self.spec) is not None:  # a missing or unfit route, too
            router.check_route(self.cluster, self.spec)
        workload.dry_run(self.cluster, self.spec)  # and a pod template the apiserver refuses
        ensure_services(self.cluster, self.spec)
        rec = load_record(self.cluster, self.spec)
        stored = rec != RunRecord()  # a crashed run of this release left its record
        for _ in range(MAX_ACTIONS):
            lease.check_held()  # never write after another run took the app's lock over
            rec = self._collect_background(rec)
            seen = observe(self.cluster, self.spec, rec)
            if not self.result.journal:  # what ran before this release wrote anything
                self.result.first_deploy = rec.first_deploy or not any(
                    view.replicas for view in seen.workloads.values()
                )
            action = next_action(self.spec, seen)
            entry = JournalEntry(action.describe(), time.time())
            self.result.journal.append(entry)
            if action.terminal:
                self.result.ok = isinstance(action, Done)
                self.result.summary = entry.action
                self._ended(action, rec)
                break
            if not stored:  # before the first write: the cluster says a release is under way
                save_record(self.cluster, self.spec, rec)  # (what flows/reconcile.py looks for)
                stored = True
            row = self.progress.start(entry.action, percent=self._percent(action, rec, seen))
            events.emit("step", {"action": entry.action, "canary_step": rec.step_index})
            try:
                before, rec = rec, self._perform(action, rec, entry, row)
            except Exception as exc:
                self.progress.end(row, f"{type(exc).__name__}: {exc}"[:300], state=FAILED)
                raise
            entry.seconds = round(time.time() - entry.started, 2)
            self.progress.end(row, self._said(entry, rec), self._percent(action, rec, seen))
            if rec != before:  # only decisions change the record; writes show on the cluster
                save_record(self.cluster, self.spec, rec)
                stored = True
        else:
            self.result.summary = f"gave up after {MAX_ACTIONS} actions: not converging"
        if self.result.ok:  # what a later rollback reads: this layout, this version serving
            remember_release(self.cluster, self.spec)
        undone = True
        if not self.result.ok and self.spec.kind == StrategyKind.ROLLING:
            undone = self._undo_rolling()
        if stored and undone:  # a failed first release keeps its verdict: a rerun fails again
            save_record(self.cluster, self.spec, None)
        return self.result

    def _percent(self, action: ReleaseAction, rec: RunRecord, seen: ObservedState) -> float | None:
        """How far the release is at `action`, from the workload it works on as last seen."""
        track = getattr(action, "track", Track.STABLE)
        return release_percent(self.spec, action, rec, seen.workload(track))

    def _said(self, entry: JournalEntry, rec: RunRecord) -> str:
        """A step's last word: what came of it, and a canary's steps done."""
        canary = self.spec.strategy.canary
        if canary is None or not canary.steps:
            return entry.note
        steps = f"step {min(rec.step_index, len(canary.steps))}/{len(canary.steps)} done"
        return f"{steps}; {entry.note}" if entry.note else steps

    def _ended(self, action: ReleaseAction, rec: RunRecord) -> None:
        """The last row: done at 100 percent, or failed where the release got to."""
        said = self._said(JournalEntry(action.describe(), time.time()), rec)
        if isinstance(action, Done):
            self.progress.finish(f"{said}; {action.summary}" if said else action.summary)
        else:
            self.progress.next(action.describe(), said, state=FAILED)

    def _watched(self, action: WaitReady, rec: RunRecord, row: Step) -> Callable[[dict], None]:
        """What the watch of `action`'s Deployment reports: its counts and the percent they make."""

        def seen(deployment: dict) -> None:
            view = WorkloadView.from_deployment(deployment, self.spec.container)
            if view.image != self.spec.image:
                return
            counts = f"{view.updated}/{view.replicas} updated, {view.ready} ready"
            total = view.replicas if view.total is None else view.total
            old = f", {total - view.updated} old" if total > view.updated else ""
            percent = release_percent(self.spec, action, rec, view)
            self.progress.note(row, f"{view.name}: {counts}{old}", percent)

        return seen

    def _undo_rolling(self) -> bool:
        """A failed rolling update goes back to the previous revision (kubectl rollout undo).

        Returns False if there was nothing to go back to (a first release).
        """
        entry = JournalEntry("roll back to the previous revision", time.time())
        self.result.journal.append(entry)
        row = self.progress.start(entry.action)
        try:
            undone = self._undo(entry)
        finally:
            self.progress.end(row, entry.note)
        return undone

    def _undo(self, entry: JournalEntry) -> bool:
        spec = self.spec
        view = observe(self.cluster, spec, RunRecord()).workload(Track.STABLE)
        if view is None or view.image != spec.image:  # a crashed run already undid it
            entry.note = f"already off {spec.image}: nothing to undo"
            return True
        try:
            undone = undo_once(self.cluster, spec.namespace, spec.app)
        except ConfigError as exc:  # first release: there is nothing to go back to
            entry.note = str(exc)
            if spec.first_deploy.on_failure == "scaleToZero":
                kube.scale(self.cluster, spec.namespace, spec.app, 0)
                entry.note += "; first deploy: scaled to 0 (a failed version never keeps serving)"
                self.result.summary += f"; nothing to roll back to, so {spec.app} was scaled to 0"
            return False
        state, why = kube.wait_rollout(
            self.cluster, spec.namespace, spec.app, spec.deadline_seconds
        )
        entry.seconds = round(time.time() - entry.started, 2)
        entry.note = f"revision {undone['from']} -> {undone['to']} ({undone['image']}): {why}"
        self.result.summary += f"; rolled back to revision {undone['to']} ({state})"
        return True

    def _perform(
        self, action: ReleaseAction, rec: RunRecord, entry: JournalEntry, row: Step
    ) -> RunRecord:
        spec, cluster = self.spec, self.cluster
        name = lambda track: layout.workload_name(spec, track)  # noqa: E731
        match action:
            case ApplyWorkload(track=t, image=image, replicas=n):
                kube.apply(cluster, layout.workload_manifest(spec, t, image, n))
            case Scale(track=t, replicas=n):
                kube.scale(cluster, spec.namespace, name(t), n)
            case SwitchService(service=svc, selector=sel):
                kube.switch_selector(cluster, spec.namespace, svc, dict(sel))
            case WaitReady(track=t, timeout_seconds=secs):
                seen = self._watched(action, rec, row)
                state, why = kube.wait_rollout(cluster, spec.namespace, name(t), secs + 60, seen)
                entry.note = f"{state}: {why}"
            case ScaleDownAfter(track=t, delay_seconds=secs):
                timed_pause(secs, f"let endpoints converge before {name(t)} goes")
                kube.scale(cluster, spec.namespace, name(t), 0)
            case Pause(duration_seconds=secs, needs_human=False):
                if not self._pause(secs or 0, action.reason, entry):
                    return self._collect_background(rec)  # saved now; the planner acts on it
            case Pause():
                return self._ask(action, rec, entry)
            case RunAnalysis() if (failed := self._resolve(action)) is not None:
                self.result.verdicts[action.key] = failed
                entry.note = f"{failed.outcome}: {failed.reason}"
                return updated_record(rec, action, outcome=failed.outcome)
            case RunAnalysis(phase=AnalysisPhase.BACKGROUND):
                action = self._resolved
                future = run_analysis.submit(self.runner, action, spec)
                future.add_done_callback(lambda _: self.background_ended.set())
                self.background[action.key] = (action, future)
            case RunAnalysis():
                verdict = run_analysis(self.runner, self._resolved, spec)
                self.result.verdicts[action.key] = verdict
                entry.note = f"{verdict.outcome}: {verdict.reason}"
                return updated_record(rec, action, outcome=verdict.outcome)
            case SetCanaryWeight(weight=w):
                entry.note = router.set_weight(cluster, spec, w)
            case CompleteStep() | Promote() | Abort():
                pass
        return updated_record(rec, action)

    def _resolve(self, action: RunAnalysis) -> Verdict | None:
        """Read the arguments an analysis takes from the cluster (valueFrom podTemplateHashValue).

        The resolved action is kept in `_resolved`; an Error verdict is returned if they cannot
        be read (the analysis then never runs on a wrong value).
        """
        try:
            ref = workload.resolve_args(self.cluster, self.spec, action.ref)
        except SpecError as exc:
            return Verdict(Outcome.ERROR, f"analysis arguments cannot be read: {exc.message}")
        self._resolved = replace(action, ref=ref)
        return None

    def _ask(self, pause: Pause, rec: RunRecord, entry: JournalEntry) -> RunRecord:
        events.paused(pause)
        with abort_pause_on_bad_verdict(self.background):
            decision = self.ask(pause, self.spec)
        events.decided(decision)
        self.result.decisions.append(decision)
        entry.note = f"{decision.choice} by {decision.decided_by}: {decision.reason}"
        rec = updated_record(rec, pause, approved=decision.choice is not Choice.ABORT)
        if decision.choice is Choice.PROMOTE_FULL:
            rec = updated_record(rec, Promote(f"promoted in full by {decision.decided_by}"))
        return rec

    def _pause(self, seconds: float, reason: str, entry: JournalEntry) -> bool:
        """Wait out a timed pause unless a background analysis ends badly first.

        Wait out a timed pause unless a background analysis ends badly first (Argo aborts
        mid-pause too); a Successful one lets the pause go on. True if the pause ran its course.
        """
        deadline = time.time() + seconds
        while True:
            self.background_ended.clear()  # then look: one that ended before is seen below
            found = bad_verdict(self.background)
            if found is not None:
                entry.note = f"cut short: {found[0]} analysis {found[1]}"[:300]
                return False
            cut = self.background_ended if self.background else None
            if timed_pause(max(0.0, deadline - time.time()), reason, cut):
                return True

    def _collect_background(self, rec: RunRecord) -> RunRecord:
        for key, (action, future) in list(self.background.items()):
            if finished(future):
                verdict = future.result()
                self.result.verdicts[key] = verdict
                rec = updated_record(rec, action, outcome=verdict.outcome)
                del self.background[key]
        return rec

"""The release executor: observe, ask the strategy's planner for one action, perform it, record it,
until Done or Fail. Every write is an idempotent task; the run record survives a crash on the
cluster (ConfigMap `<app>-release`), so a re-run finishes or cleans up what a crashed run left."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from blocks import KubernetesCluster
from core import layout
from core.actions import (
    Abort,
    Action,
    AnalysisPhase,
    ApplyWorkload,
    CompleteStep,
    Done,
    Pause,
    Promote,
    RunAnalysis,
    Scale,
    ScaleDownAfter,
    SetCanaryWeight,
    SwitchService,
    WaitReady,
    record,
)
from core.analysis import AnalysisRunner, Choice, Decision, Verdict
from core.errors import ConfigError
from core.observed import ObservedState, Outcome, RunRecord, Track, WorkloadView
from core.planners import next_action
from core.spec import ReleaseSpec, StrategyKind
from tasks import kube
from tasks.background import abort_pause_on_bad_verdict, bad_verdict, finished
from tasks.retry import RETRIES

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


# ---- the run record, kept on the cluster ---------------------------------------------------
def _dump(rec: RunRecord, image: str) -> str:
    return json.dumps({
        "image": image, "step_index": rec.step_index, "pauses_done": sorted(rec.pauses_done),
        "analyses": {k: v.value for k, v in rec.analyses.items()}, "promoted": rec.promoted,
        "aborted": rec.aborted,
    })  # fmt: skip


def _load(text: str, image: str) -> RunRecord:
    data = json.loads(text)
    if data.get("image") != image:
        return RunRecord()  # a record of another release: start fresh
    return RunRecord(
        step_index=data["step_index"], pauses_done=frozenset(data["pauses_done"]),
        analyses={k: Outcome(v) for k, v in data["analyses"].items()},
        promoted=data["promoted"], aborted=data["aborted"],
    )  # fmt: skip


@task(name="release-record-load", cache_policy=NO_CACHE, **RETRIES)
def load_record(cluster: KubernetesCluster, spec: ReleaseSpec) -> RunRecord:
    """The record a crashed run of this same release left, or a fresh one."""
    core = client.CoreV1Api(kube.api_for(cluster))
    try:
        cm = core.read_namespaced_config_map(spec.app + layout.RECORD_SUFFIX, spec.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return RunRecord()
        raise
    return _load((cm.data or {}).get("record", "{}"), spec.image)


@task(name="release-record-save", cache_policy=NO_CACHE, **RETRIES)
def save_record(cluster: KubernetesCluster, spec: ReleaseSpec, rec: RunRecord | None) -> None:
    """Keep the record on the cluster (None: the release ended, forget it)."""
    name = spec.app + layout.RECORD_SUFFIX
    if rec is None:
        core = client.CoreV1Api(kube.api_for(cluster))
        try:
            core.delete_namespaced_config_map(name, spec.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        return
    kube.apply.fn(cluster, {  # inside this retrying task
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": spec.namespace, "labels": layout.MANAGED_BY},
        "data": {"record": _dump(rec, spec.image)},
    })  # fmt: skip


# ---- observing -----------------------------------------------------------------------------
@task(name="release-observe", cache_policy=NO_CACHE, **RETRIES)
def observe(cluster: KubernetesCluster, spec: ReleaseSpec, rec: RunRecord) -> ObservedState:
    """What the cluster shows for this release's workloads and Services, plus the run record."""
    api = kube.api_for(cluster)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    workloads = {}
    for track in layout.tracks(spec):
        try:
            dep = apps.read_namespaced_deployment(layout.workload_name(spec, track), spec.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            continue
        workloads[track] = WorkloadView.from_deployment(kube.to_dict(api, dep), spec.container)
    services = {}
    for name in layout.service_names(spec):
        try:
            services[name] = dict(
                core.read_namespaced_service(name, spec.namespace).spec.selector or {}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
    return ObservedState(workloads=workloads, services=services, record=rec)


@task(name="ensure-services", cache_policy=NO_CACHE, **RETRIES)
def ensure_services(cluster: KubernetesCluster, spec: ReleaseSpec) -> None:
    """Create the release's Services that are missing; never reset an existing selector."""
    core = client.CoreV1Api(kube.api_for(cluster))
    for svc in layout.services(spec):
        try:
            core.create_namespaced_service(spec.namespace, svc)
        except ApiException as exc:
            if exc.status != 409:  # 409: it exists, and its selector is the truth
                raise


# ---- performing ----------------------------------------------------------------------------
@task(name="pause", cache_policy=NO_CACHE)
def timed_pause(seconds: float, reason: str, cut: threading.Event | None = None) -> bool:
    """A timed pause step: wait `seconds` (the step's own duration, bounded by the spec), or
    less if `cut` is set first (a background analysis ended). True if the pause ran its course."""
    get_run_logger().info("pausing %ss: %s", round(seconds, 1), reason)
    if cut is None:
        time.sleep(seconds)
        return True
    return not cut.wait(seconds)


@task(name="analysis", cache_policy=NO_CACHE)
def run_analysis(runner: AnalysisRunner, action: RunAnalysis, spec: ReleaseSpec) -> Verdict:
    """Run one analysis through the configured runner and log its verdict."""
    verdict = runner.run(action.ref, action.phase, spec, action.key)
    get_run_logger().info("%s analysis %s: %s (%s)", action.phase, action.key, verdict.outcome,
                          verdict.reason)  # fmt: skip
    return verdict


def preflight(spec: ReleaseSpec) -> None:
    """Refuse what the executor cannot do before anything touches the cluster."""
    canary = spec.strategy.canary
    if canary is not None and canary.traffic_routing is not None:
        raise ConfigError(
            "trafficRouting is not executed yet (no ingress or mesh moves packets here): remove "
            "it to release with a replica-weighted canary", app=spec.app,
        )  # fmt: skip


class Executor:
    """Runs one release to Done or Fail; the flow supplies the analysis runner and the asker."""

    def __init__(self, spec: ReleaseSpec, cluster: KubernetesCluster, runner: AnalysisRunner,
                 ask: Asker, template: dict | None = None) -> None:  # fmt: skip
        self.spec, self.cluster, self.runner, self.ask = spec, cluster, runner, ask
        self.template = template
        self.result = ReleaseResult(ok=False, summary="")
        self.background: dict[str, tuple[RunAnalysis, PrefectFuture]] = {}
        self.background_ended = threading.Event()  # set when any background analysis ends
        self.progress_id = None

    def run(self) -> ReleaseResult:
        """Drive the planner until the release is Done (ok) or Fail (rolled back where possible)."""
        preflight(self.spec)
        self.runner.validate(self.spec)  # an unknown template fails before any write
        ensure_services(self.cluster, self.spec)
        rec = load_record(self.cluster, self.spec)
        stored = rec != RunRecord()  # a crashed run of this release left its record
        for _ in range(MAX_ACTIONS):
            rec = self._collect_background(rec)
            action = next_action(self.spec, observe(self.cluster, self.spec, rec))
            entry = JournalEntry(action.describe(), time.time())
            self.result.journal.append(entry)
            if action.terminal:
                self.result.ok = isinstance(action, Done)
                self.result.summary = entry.action
                break
            before, rec = rec, self._perform(action, rec, entry)
            entry.seconds = round(time.time() - entry.started, 2)
            if rec != before:  # only decisions change the record; writes show on the cluster
                save_record(self.cluster, self.spec, rec)
                stored = True
                self._progress(rec, action.describe())
        else:
            self.result.summary = f"gave up after {MAX_ACTIONS} actions: not converging"
        undone = True
        if not self.result.ok and self.spec.kind == StrategyKind.ROLLING:
            undone = self._undo_rolling()
        if stored and undone:  # a failed first release keeps its verdict: a rerun fails again
            save_record(self.cluster, self.spec, None)
        return self.result

    def _progress(self, rec: RunRecord, last: str) -> None:
        """Move the canary's progress artifact: the share of steps done, and the last decision."""
        canary = self.spec.strategy.canary
        if canary is None or not canary.steps:
            return
        done = round(100 * min(rec.step_index, len(canary.steps)) / len(canary.steps), 1)
        text = f"{self.spec.app}: step {rec.step_index}/{len(canary.steps)} done; {last}"
        if self.progress_id is None:
            key = f"release-progress-{self.spec.namespace}-{self.spec.app}"
            self.progress_id = create_progress_artifact(done, key=key, description=text)
        else:
            update_progress_artifact(self.progress_id, done, description=text)

    def _undo_rolling(self) -> bool:
        """A failed rolling update goes back to the previous revision (kubectl rollout undo).

        Returns False if there was nothing to go back to (a first release).
        """
        spec, entry = self.spec, JournalEntry("roll back to the previous revision", time.time())
        self.result.journal.append(entry)
        view = observe(self.cluster, spec, RunRecord()).workload(Track.STABLE)
        if view is None or view.image != spec.image:  # a crashed run already undid it
            entry.note = f"already off {spec.image}: nothing to undo"
            return True
        try:
            undone = kube.undo(self.cluster, spec.namespace, spec.app)
        except ConfigError as exc:  # first release: there is nothing to go back to
            entry.note = str(exc)
            return False
        state, why = kube.wait_rollout(
            self.cluster, spec.namespace, spec.app, spec.deadline_seconds
        )
        entry.seconds = round(time.time() - entry.started, 2)
        entry.note = f"revision {undone['from']} -> {undone['to']} ({undone['image']}): {why}"
        self.result.summary += f"; rolled back to revision {undone['to']} ({state})"
        return True

    def _perform(self, action: Action, rec: RunRecord, entry: JournalEntry) -> RunRecord:
        spec, cluster = self.spec, self.cluster
        name = lambda track: layout.workload_name(spec, track)  # noqa: E731
        match action:
            case ApplyWorkload(track=t, image=image, replicas=n):
                kube.apply(cluster, layout.workload_manifest(spec, t, image, n, self.template))
            case Scale(track=t, replicas=n):
                kube.scale(cluster, spec.namespace, name(t), n)
            case SwitchService(service=svc, selector=sel):
                kube.switch_selector(cluster, spec.namespace, svc, dict(sel))
            case WaitReady(track=t, timeout_seconds=secs):
                state, why = kube.wait_rollout(cluster, spec.namespace, name(t), secs + 60)
                entry.note = f"{state}: {why}"
            case ScaleDownAfter(track=t, delay_seconds=secs):
                timed_pause(secs, f"let endpoints converge before {name(t)} goes")
                kube.scale(cluster, spec.namespace, name(t), 0)
            case Pause(duration_seconds=secs, needs_human=False):
                if not self._pause(secs or 0, action.reason, entry):
                    return self._collect_background(rec)  # saved now; the planner acts on it
            case Pause():
                return self._ask(action, rec, entry)
            case RunAnalysis(phase=AnalysisPhase.BACKGROUND):
                future = run_analysis.submit(self.runner, action, spec)
                future.add_done_callback(lambda _: self.background_ended.set())
                self.background[action.key] = (action, future)
            case RunAnalysis():
                verdict = run_analysis(self.runner, action, spec)
                self.result.verdicts[action.key] = verdict
                entry.note = f"{verdict.outcome}: {verdict.reason}"
                return record(rec, action, outcome=verdict.outcome)
            case SetCanaryWeight():
                raise ConfigError("no traffic router is configured to set a canary weight")
            case CompleteStep() | Promote() | Abort():
                pass
        return record(rec, action)

    def _ask(self, pause: Pause, rec: RunRecord, entry: JournalEntry) -> RunRecord:
        with abort_pause_on_bad_verdict(self.background):
            decision = self.ask(pause, self.spec)
        self.result.decisions.append(decision)
        entry.note = f"{decision.choice} by {decision.decided_by}: {decision.reason}"
        rec = record(rec, pause, approved=decision.choice is not Choice.ABORT)
        if decision.choice is Choice.PROMOTE_FULL:
            rec = record(rec, Promote(f"promoted in full by {decision.decided_by}"))
        return rec

    def _pause(self, seconds: float, reason: str, entry: JournalEntry) -> bool:
        """Wait out a timed pause unless a background analysis ends badly first (Argo aborts
        mid-pause too); a Successful one lets the pause go on. True if the pause ran its course."""
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
                rec = record(rec, action, outcome=verdict.outcome)
                del self.background[key]
        return rec

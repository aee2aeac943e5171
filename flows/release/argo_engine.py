"""`engine: argo`: the cluster's Argo Rollouts controller performs the release; the flow follows it.

The flow writes the Rollout (and the analysis templates it names that the cluster lacks), then
follows it by watch, reporting as the pipeline engine does: a progress artifact moved at every
step, a journal entry at every change the controller reports, a table artifact per AnalysisRun,
the same result artifact and record. A pause only a person can end (a `pause: {}` step, a
blue-green promotion without autoPromotion, an inconclusive analysis) becomes the same typed
Prefect gate; its answer is sent as `kubectl argo rollouts promote|abort` sends it. A Rollout the
controller aborts while a person is asked (a background analysis failed) answers the gate itself.

The result is the controller's: promoted when the new version is stable and Healthy; failed when
it aborted (a failed analysis, a missed progress deadline, an abort), by which time the controller
has put every pod and all traffic back on the stable version.
"""

from __future__ import annotations

import time
from typing import Any

from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from blocks import KubernetesCluster
from core.analysis.argo_runs import read_run
from core.analysis.builtins import BUILTINS
from core.analysis.prepare import artifact_key
from core.analysis.verdict import AnalysisRunner, Verdict
from core.errors import ConfigError
from core.release import argo_rollout
from core.release.actions import human_pause, worst_case_seconds
from core.release.argo_rollout import RolloutStatus, read_status
from core.release.decisions import Choice
from core.release.planners import plan_release
from core.release.progress import argo_percent
from core.release.spec import ReleaseSpec
from flows import events
from flows.progress import FAILED
from flows.release.background import abort_pause_when
from flows.release.executor import Asker, JournalEntry, ReleaseResult, release_progress
from tasks import argo, lease
from tasks.release import ensure_services, remember_release

OBSERVE_SECONDS = 60  # the controller must have seen the Rollout by then, or there is none
SLACK_SECONDS = 300  # beyond the plan's worst case, before the flow gives up on the controller


class ArgoEngine:
    """Writes one release as a Rollout and follows the controller until it is promoted or not."""

    def __init__(
        self, spec: ReleaseSpec, cluster: KubernetesCluster, runner: AnalysisRunner, ask: Asker
    ) -> None:
        self.spec, self.cluster, self.runner, self.ask = spec, cluster, runner, ask
        self.result = ReleaseResult(ok=False, summary="")
        self.answered: set[str] = set()
        self.reported: dict[str, str] = {}  # AnalysisRun name -> the phase last reported
        self.progress = release_progress(spec)
        self.last = ""

    # ---- before any write ----------------------------------------------------------------------
    def templates(self) -> list[dict[str, Any]]:
        """The AnalysisTemplates to write beside the Rollout: those the cluster does not have.

        A template read from the cluster is there already; one given to the flow, or a built-in
        the cluster does not replace, is written into the release's namespace, with the
        Prometheus block's address where the template names none.

        Raises:
            ConfigError: an analysis would need what Argo's controller cannot be given here (no
                Prometheus block, or one whose credentials only the flow holds).
        """
        keys = {k for _, ref in self.spec.analysis_refs() for k in ref.names}
        if not keys:
            return []
        prometheus = getattr(self.runner, "prometheus", None)
        known: dict[str, Any] = dict(getattr(self.runner, "templates", {}))
        given = getattr(self.runner, "given", frozenset())
        if prometheus is None:
            raise ConfigError(
                "engine argo: the release's analyses need a Prometheus block (the controller "
                "measures them itself): name one, or release with engine pipeline",
                app=self.spec.app,
            )
        if prometheus.headers():
            raise ConfigError(
                f"engine argo: Prometheus block at {prometheus.url} needs credentials, which the "
                "controller can only read from a Secret: write your own AnalysisTemplate with "
                "args valueFrom secretKeyRef into the namespace, or use engine pipeline",
                app=self.spec.app,
            )
        docs = []
        for key in sorted(k for k in keys if not k.startswith("cluster/")):
            template = known.get(key)
            if template is None or not (key in given or template is BUILTINS.get(key)):
                continue  # the cluster's own, or one validate() already refused
            doc = template.to_argo()
            doc["metadata"] = {"name": key, "namespace": self.spec.namespace}
            for metric in doc["spec"]["metrics"]:
                query = (metric.get("provider") or {}).get("prometheus")
                if query is not None and not query.get("address"):
                    query["address"] = prometheus.url
            docs.append(doc)
        return docs

    # ---- the run -------------------------------------------------------------------------------
    def run(self) -> ReleaseResult:
        """Write the Rollout and follow the controller until it promoted or aborted the release."""
        spec, cluster = self.spec, self.cluster
        argo_rollout.refuse(spec)
        argo.check_served(cluster, spec.namespace)
        self.runner.validate(spec)  # an unknown template or argument fails before any write
        templates, manifest = self.templates(), argo_rollout.rollout_manifest(spec)
        argo.dry_run(cluster, manifest, templates)
        ensure_services(cluster, spec, argo_rollout.services(spec))
        before = argo.read_rollout(cluster, spec.namespace, spec.app)
        self.result.first_deploy = before is None
        entry = self._journal(f"write Rollout {spec.namespace}/{spec.app} ({spec.kind})")
        if templates:
            entry.note = f"templates {', '.join(argo.write_templates(cluster, templates))}"
        live = argo.write_rollout(cluster, manifest)
        status = read_status(live)
        if status.aborted:  # the same template as an aborted update: try it again
            argo.retry(cluster, spec.namespace, spec.app)
            self._journal("retry the aborted Rollout (kubectl argo rollouts retry)")
        self._follow(live)
        if self.result.ok:
            remember_release(cluster, spec)
        return self.result

    def _follow(self, live: dict[str, Any]) -> None:
        spec = self.spec
        started = time.monotonic()
        give_up = started + worst_case_seconds(plan_release(spec)) + SLACK_SECONDS
        version = live["metadata"].get("resourceVersion")
        while True:
            for obj in argo.follow(self.cluster, spec.namespace, spec.app, version):
                lease.check_held()  # never answer a pause after another run took the lock
                version = obj["metadata"].get("resourceVersion")
                if self._seen(obj):
                    return
            obj = argo.read_rollout(self.cluster, spec.namespace, spec.app)
            if obj is None:
                self._end(False, "the Rollout was deleted while it was being released")
                return
            version = obj["metadata"].get("resourceVersion")
            if self._seen(obj):
                return
            status = read_status(obj)
            if not status.observed and time.monotonic() - started > OBSERVE_SECONDS:
                self._end(
                    False,
                    f"no Argo Rollouts controller took Rollout {spec.namespace}/{spec.app} within "
                    f"{OBSERVE_SECONDS}s: is one running for this cluster? (sandbox up "
                    "argo-rollouts on the local platform)",
                )
                return
            if time.monotonic() > give_up:
                argo.abort(self.cluster, spec.namespace, spec.app)
                self._end(
                    False, f"not done within the plan's worst case: {status.describe()}; aborted"
                )
                return

    def _seen(self, obj: dict[str, Any]) -> bool:
        """Report what changed; answer a human pause; True once the release has ended."""
        status = read_status(obj)
        if not status.observed:
            return False
        if self._report(status):  # AnalysisRuns are read when the controller reports a change
            self._analyses(obj)
        if status.aborted:
            if status.back_on_stable:
                self._end(
                    False, f"aborted: {status.message or 'by request'}; all traffic on stable"
                )
                return True
            return False
        if status.promoted and (status.steps == 0 or status.step in (None, status.steps)):
            self._end(True, f"promoted: {self.spec.image} is stable ({status.current})")
            return True
        reason = status.human_pause
        if reason is not None:
            key = {
                "CanaryPauseStep": f"argo:step-{status.step}:{status.current}",
                "BlueGreenPause": f"argo:promotion:{status.current}",
                "InconclusiveAnalysisRun": f"argo:analysis-{status.step}:{status.current}",
            }[reason]  # lowercase: Prefect names the pause's input after it
            if key not in self.answered:
                self.answered.add(key)
                self._decide(reason, key, status)
        return False

    def _decide(self, reason: str, key: str, status: RolloutStatus) -> None:
        spec, cluster = self.spec, self.cluster
        key += ":inconclusive" if reason == "InconclusiveAnalysisRun" else ""  # demo mode aborts
        what = {
            "CanaryPauseStep": f"canary paused at step {status.step}/{status.steps}",
            "BlueGreenPause": "blue-green preview is up, waiting for promotion",
            "InconclusiveAnalysisRun": "an analysis was inconclusive",
        }[reason]
        pause = human_pause(key, f"{what} (Argo Rollouts)")
        entry = self._journal(f"ask: {pause.reason}")
        events.paused(pause)
        with abort_pause_when(self._aborted_meanwhile):
            decision = self.ask(pause, spec)
        events.decided(decision)
        self.result.decisions.append(decision)
        entry.note = f"{decision.choice} by {decision.decided_by}: {decision.reason}"
        entry.seconds = round(time.time() - entry.started, 2)
        if decision.choice is Choice.ABORT:
            argo.abort(cluster, spec.namespace, spec.app)
        else:
            full = decision.choice is Choice.PROMOTE_FULL
            argo.promote(cluster, spec.namespace, spec.app, full=full)

    def _aborted_meanwhile(self) -> tuple[str, str] | None:
        obj = argo.read_rollout.fn(self.cluster, self.spec.namespace, self.spec.app)
        status = read_status(obj) if obj else None
        if status is not None and status.aborted:
            return "Argo Rollouts", f"the controller aborted the Rollout: {status.message}"
        return None

    # ---- reporting -----------------------------------------------------------------------------
    def _journal(self, action: str) -> JournalEntry:
        entry = JournalEntry(action, time.time())
        self.result.journal.append(entry)
        return entry

    def _report(self, status: RolloutStatus) -> bool:
        """Journal, log and move the progress artifact if the controller says something new."""
        text = status.describe()
        if text == self.last:
            return False
        self.last = text
        self._journal(f"Argo Rollouts: {text}")
        events.emit("step", {"action": f"Argo Rollouts: {text}", "canary_step": status.step})
        get_run_logger().info("%s/%s: %s", self.spec.namespace, self.spec.app, text)
        counts = f"{status.updated} updated, {status.ready} ready of {self.spec.replicas}"
        self.progress.next(f"Argo Rollouts: {text}", counts, argo_percent(self.spec, status))
        return True

    def _analyses(self, obj: dict[str, Any]) -> None:
        uid = obj["metadata"].get("uid", "")
        for run in argo.analysis_runs(self.cluster, self.spec.namespace, uid):
            report = read_run(run)
            phase = (run.get("status") or {}).get("phase") or ""
            if report.outcome is None or self.reported.get(report.name) == phase:
                continue
            self.reported[report.name] = phase
            key = artifact_key(self.spec, report.name)
            create_table_artifact(
                report.rows,
                key=key,
                description=f"AnalysisRun {report.name} of {self.spec.app} in "
                f"{self.spec.namespace}: {report.outcome}. {report.reason}"[:1000],
            )
            self.result.verdicts[report.name] = Verdict(report.outcome, report.reason, key)
            self._journal(f"analysis {report.name}: {report.outcome}").note = report.reason[:300]

    def _end(self, ok: bool, summary: str) -> None:
        self.result.ok, self.result.summary = ok, summary
        self._journal(summary)
        if ok:
            self.progress.finish(summary)
        else:
            self.progress.next("failed", summary, state=FAILED)

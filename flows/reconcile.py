"""The `reconcile` flow: releases and rollbacks whose run died half-way are ended, not abandoned.

A run that crashed, was cancelled, lost its worker or had its process killed leaves its record
(core/delivery/record.py) saying `running` (or `failed`, when the process was stopped from
outside), and leaves the cluster as it was at that moment: a canary at 50%, say. This flow finds
those attempts from the run records, checks the cluster (the app's Lease: is its holder still
renewing it? the release's run record, ConfigMap `<app>-release`: is a release unfinished?),
and under the app's lock either

- resumes it: a `release` or `rollback` deployment run is scheduled again (Prefect's retry). The
  same flow run takes its lock back and carries on from the record on the cluster (a pause with
  a person's answer pauses again); at most MAX_RESUMES times, or
- rolls it back: the release's own abort path, from the spec kept in its record on the cluster,
  when it cannot be resumed (not a deployment run, or it was resumed before and died again).

It reports what it did in an artifact (`reconcile-report`), in an event per attempt
(`kyb.release.reconciled`, which prefect.yaml turns into a notification) and in the crashed
run's record (`<kind>.<env>.reconciled`, and the cause). prefect.yaml runs it every minute and
whenever a release, rollback or delivery run crashes.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Crashed, Scheduled

from blocks import KubernetesCluster
from core.analysis.verdict import NoJudge
from core.delivery.record import CAUSE_CHARS, PREFIX, Attempt, Result, stamp
from core.errors import PipelineError
from core.release.decisions import Choice, Decision
from core.release.errors import ReleaseLocked
from flows import events
from flows.form import titled
from flows.release.executor import Executor
from flows.rollback import roll_back_locked
from tasks import lease
from tasks.dora import attempts_of, recorded_runs
from tasks.release import load_history, load_record, save_record, unfinished

MAX_RESUMES = 1  # a run resumed once that dies again is rolled back: it may be what kills it
LOCK_WAIT = 60.0  # seconds to wait for the app's lock (a release that just started holds it)
ABANDONED = (Result.RUNNING, Result.CRASHED, Result.FAILED)
RESUMABLE = {"release", "rollback"}  # flows whose re-run carries on where the cluster is
RESUMED, NOTHING = "resumed:", "nothing to do:"  # how what was done begins
NO_CLUSTER = "cannot reach its cluster: the run's cluster was not a saved block"


@task(name="find-abandoned", cache_policy=NO_CACHE)
def abandoned(lookback_hours: float, namespaces: list[str]) -> list[tuple[Attempt, FlowRun]]:
    """The newest attempt per app that a run left unfinished and nobody reconciled yet.

    Only in `namespaces` when some are given.
    """
    since = datetime.now(UTC) - timedelta(hours=lookback_hours)
    with get_client(sync_client=True) as client:
        runs = {str(r.id): r for r in recorded_runs(client, since, datetime.now(UTC))}
    newest: dict[tuple[str, str], Attempt] = {}
    for attempt in attempts_of(runs.values()):  # oldest first: the last one per app wins
        if namespaces and attempt.namespace not in namespaces:
            continue
        newest[(attempt.namespace, attempt.app)] = attempt
    found = []
    for attempt in newest.values():
        labels = runs[attempt.run_id].labels or {}
        done = labels.get(_key(attempt, "reconciled")) == stamp(attempt.started)
        if attempt.result in ABANDONED and not done:
            found.append((attempt, runs[attempt.run_id]))
    return found


def _key(attempt: Attempt, field: str) -> str:
    return f"{PREFIX}.{attempt.kind}.{attempt.environment}.{field}"


def _dead(attempt: Attempt, run: FlowRun, cluster: KubernetesCluster) -> str:
    """Why the attempt's run can no longer end it ("" while it may: leave it alone)."""
    final = run.state is not None and run.state.is_final()
    who, until = lease.holder(cluster, attempt.namespace, attempt.app)
    if who == f"flow-run/{run.id}" and until > time.time():
        return ""  # it still renews the lock: alive (a paused release too)
    if final:
        return f"its run ended {run.state_name} with the {attempt.kind} unfinished"
    if who == f"flow-run/{run.id}" or not who:
        return f"its run stopped renewing the lock of {attempt.app} (its process is gone)"
    return ""


def _abort_all(pause: Any, spec: Any) -> Decision:
    """A rollback asks nobody: any gate on the way back aborts."""
    return Decision(Choice.ABORT, "reconcile", "rolling back a crashed release")


def _roll_back_release(cluster: KubernetesCluster, attempt: Attempt, why: str) -> str:
    """The release's own abort path, from the spec its record keeps on the cluster."""
    spec = unfinished(cluster, attempt.namespace, attempt.app)
    if spec is None or spec.image != attempt.image:
        return f"{NOTHING} no unfinished release of this image on the cluster"
    rec = load_record(cluster, spec)
    if not rec.aborted:  # recorded first: a reconciler that dies now is carried on by the next
        save_record(cluster, spec, replace(rec, aborted=why))
    result = Executor(spec, cluster, NoJudge(), _abort_all).run()
    return f"rolled back: {result.summary}"


def _resume(run: FlowRun, attempt: Attempt, why: str) -> str:
    """Schedule the crashed deployment run again: it carries on from the cluster's record."""
    resumes = int((run.labels or {}).get(f"{PREFIX}.resumes", "0")) + 1
    with get_client(sync_client=True) as client:
        client.update_flow_run_labels(run.id, {f"{PREFIX}.resumes": str(resumes)})
        client.set_flow_run_state(
            run.id, Scheduled(message=f"resumed by reconcile: {why}"), force=True
        )
    return f"{RESUMED} run {run.name} scheduled again ({resumes} of {MAX_RESUMES})"


def _can_resume(run: FlowRun, flow_name: str) -> bool:
    resumes = int((run.labels or {}).get(f"{PREFIX}.resumes", "0"))
    return run.deployment_id is not None and flow_name in RESUMABLE and resumes < MAX_RESUMES


def _settle(
    cluster: KubernetesCluster, attempt: Attempt, run: FlowRun, resume: bool
) -> tuple[str, str] | None:
    """End one abandoned attempt under the app's lock: (why, what was done); None: it lives."""
    why = _dead(attempt, run, cluster)
    if not why:
        return None
    with get_client(sync_client=True) as client:
        flow_name = client.read_flow(run.flow_id).name
    purpose = f"reconcile of {attempt.kind} run {run.name}"
    ns, app = attempt.namespace, attempt.app
    with lease.hold(cluster, ns, app, purpose, LOCK_WAIT):
        if attempt.kind == "release" and unfinished(cluster, ns, app) is None:
            action = f"{NOTHING} the cluster holds no unfinished release"
        elif resume and _can_resume(run, flow_name):
            action = _resume(run, attempt, why)
        elif attempt.kind == "release":
            action = _roll_back_release(cluster, attempt, f"{why}; rolled back by reconcile")
        else:
            action = _finish_rollback(cluster, attempt)
    if not action.startswith(RESUMED) and not (run.state and run.state.is_final()):
        with get_client(sync_client=True) as client:  # what the UI shows for a dead process
            client.set_flow_run_state(run.id, Crashed(message=why), force=True)
    return why, action


def _finish_rollback(cluster: KubernetesCluster, attempt: Attempt) -> str:
    """A rollback run that died: the rollback flow again, which keeps its decided target."""
    found = load_history(cluster, attempt.namespace, attempt.app)
    kept = found.rollback if found is not None else None
    if kept is None or kept.done is not None:
        return f"{NOTHING} its rollback had finished or had not begun"
    done = roll_back_locked(cluster, attempt.app, attempt.namespace, 0, "")
    return f"rolled back: {done['summary']}"


def _mark(attempt: Attempt, run: FlowRun, why: str, action: str) -> str:
    """Write what was done into the crashed run's record, and tell (event, notification)."""
    result = attempt.result if attempt.result is not Result.RUNNING else Result.CRASHED
    completed = run.state is not None and run.state.is_completed()
    if completed and action.startswith(NOTHING):  # only its end's label was lost
        result, action = Result.SUCCEEDED, f"{action}; the run completed, its end went unrecorded"
    resumed = action.startswith(RESUMED)
    action = f"{why}: {action}" if why else action
    labels = {_key(attempt, "reconciled"): stamp(attempt.started)}
    if not resumed:  # a resumed run writes its own end
        labels[_key(attempt, "result")] = str(result)
        labels[_key(attempt, "cause")] = " ".join(action.split())[:CAUSE_CHARS]
        if _key(attempt, "ended") not in (run.labels or {}):
            labels[_key(attempt, "ended")] = stamp(run.end_time or datetime.now(UTC))
    with get_client(sync_client=True) as client:
        client.update_flow_run_labels(run.id, labels)
    events.emit("reconciled", {"run": str(run.id), "action": action}, attempt)
    return action


@flow(name="reconcile")
def reconcile(
    lookback_hours: Annotated[float, titled("Look back (hours)")] = 24,
    resume: Annotated[bool, titled("Resume deployment runs")] = True,
    namespaces: Annotated[list[str] | None, titled("Only these namespaces")] = None,
) -> list[dict[str, Any]]:
    """End the releases and rollbacks that a dead run left half-done: resume or roll back.

    Args:
        lookback_hours: how far back to look for runs that ended with an attempt unfinished.
        resume: resume a crashed deployment run (else every unfinished release is rolled back).
        namespaces: only attempts in these namespaces (unset: every namespace).
    """
    log = get_run_logger()
    rows = []
    for attempt, run in abandoned(lookback_hours, namespaces or []):
        started = time.monotonic()
        done: tuple[str, str] | None = ("", NO_CLUSTER)
        if attempt.cluster:
            try:
                cluster = KubernetesCluster.load(attempt.cluster)
                done = _settle(cluster, attempt, run, resume)
            except ReleaseLocked as exc:
                log.info("%s of %s: left for now: %s", attempt.kind, attempt.app, exc)
                continue
            except (PipelineError, ValueError) as exc:
                done = ("", f"could not end it: {type(exc).__name__}: {exc}")
        if done is None:
            continue  # its run is alive
        action = _mark(attempt, run, *done)
        log.warning("%s of %s (run %s): %s", attempt.kind, attempt.app, run.name, action)
        rows.append(
            {
                "app": attempt.app,
                "namespace": attempt.namespace,
                "environment": attempt.environment,
                "kind": attempt.kind,
                "run": str(run.id),
                "image": attempt.image,
                "what was done": action,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    if rows:
        create_table_artifact(rows, key="reconcile-report", description="what reconcile ended")
    return rows

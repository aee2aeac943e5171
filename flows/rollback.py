"""The manual `rollback` flow: an app back to its previous stable version, whatever its strategy.

It reads where the app's last release put it (the release history, ConfigMap `<app>-history`),
decides the target once and records it before any write (a retry or re-run never moves further
back), moves traffic back first, then scales the bad version down, then verifies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import UUID

from prefect import flow, get_run_logger, resume_flow_run
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.exceptions import NotPausedError, ObjectNotFound
from prefect.runtime import flow_run

from blocks import KubernetesCluster
from core.delivery.record import Result
from core.errors import ConfigError, PipelineError
from core.release.actions import Scale, ScaleDownAfter, SwitchService, WaitReady
from core.release.errors import RollbackFailed
from core.release.history import HISTORY_SUFFIX, History, RollbackRecord
from core.release.rollback import (
    AppLayout,
    RestoreTemplate,
    Step,
    VerifyServing,
    decide,
    plan,
)
from core.release.spec import StrategyKind
from core.release.status import RolloutState
from flows import record
from flows.form import titled
from flows.release.argo_rollback import rollback_rollout
from tasks import kube, lease
from tasks.health import check_health
from tasks.release import load_history, now_iso, save_history, timed_pause
from tasks.rollback import observe_app, restore_template, verify_serving

HEALTH_BUDGET = 60.0  # seconds the rolled-back version has to report healthy, retries included
VERIFY_SECONDS = 120.0  # seconds for the Service to select only the target's ready pods


def _verify_health(health_url: str) -> dict[str, Any]:
    """Check the /health contract at `health_url` (retrying 5xx and connection errors)."""
    parts = urlsplit(health_url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    base = f"{parts.scheme}://{parts.netloc}"
    result = check_health(base, budget_seconds=HEALTH_BUDGET, path=path or "/health")
    if not result.ok:
        raise RollbackFailed(
            f"rolled back, but {health_url} is not healthy: {result.reason} "
            f"({result.attempts} attempts in {result.seconds:.1f}s)"
        )
    return {"status": "healthy", **result.model_dump()}


def _layout(
    cluster: KubernetesCluster, namespace: str, app: str, found: History | None
) -> AppLayout:
    """Where the app's last release put it; a Deployment without history is a rolling one."""
    if found is not None and found.spec is not None:
        return AppLayout.of_release(found.spec)
    deployment = kube.read_deployment(cluster, namespace, app)
    if deployment is None:
        raise ConfigError(
            f"no release of {app!r} is recorded in namespace {namespace!r} (no ConfigMap "
            f"{app}{HISTORY_SUFFIX}) and there is no Deployment {app!r} there: check the app "
            "and namespace names"
        )
    return AppLayout.of_deployment(deployment)


def _perform(cluster: KubernetesCluster, lay: AppLayout, step: Step) -> str:
    """Do one step; return a note on how it went."""
    ns, name = lay.namespace, lay.workloads.__getitem__
    match step.action:
        case RestoreTemplate(track=t, template=template):
            restore_template(cluster, ns, name(t), dict(template))
        case Scale(track=t, replicas=n):
            kube.scale(cluster, ns, name(t), n)
        case WaitReady(track=t, timeout_seconds=secs):
            state, why = kube.wait_rollout(cluster, ns, name(t), secs + 60)
            if state is not RolloutState.COMPLETE:
                raise RollbackFailed(f"{name(t)} did not become ready ({why}): traffic not moved")
            return why
        case SwitchService(service=svc, selector=sel):
            kube.switch_selector(cluster, ns, svc, dict(sel))
        case ScaleDownAfter(track=t, delay_seconds=secs):
            timed_pause(secs, f"let endpoints converge before {name(t)} goes")
            kube.scale(cluster, ns, name(t), 0)
        case VerifyServing():
            return verify_serving(cluster, ns, step.action, lay.container, VERIFY_SECONDS)
    return ""


def _ends(lay: AppLayout, rec: RollbackRecord) -> tuple[Any, Any]:
    """(from, to) as the result names them: colors for blue-green, else revision numbers."""
    if lay.kind is StrategyKind.BLUE_GREEN:
        return rec.from_track.value, rec.track.value
    return rec.from_revision, rec.revision


def _publish(lay: AppLayout, rec: RollbackRecord | None, journal: list[dict], summary: str) -> None:
    """The rollback result artifact: from what to what, then every step with its from and to."""
    lines = [f"# Rollback of `{lay.app}` in `{lay.namespace}` ({lay.kind})", "", summary, ""]
    if rec is not None:
        lines += [
            f"Target decided by `{rec.decided_by}` at {rec.decided_at}: `{rec.image}` "
            f"({rec.track}, revision {rec.revision}), from `{rec.from_image}` ({rec.from_track}, "
            f"revision {rec.from_revision}).",
            "",
        ]
    lines += ["| # | step | from | to | seconds | note |", "|---|---|---|---|---|---|"]
    for e in journal:
        cells = (e["step"], e["action"], e["from"], e["to"], e["seconds"], e["note"])
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    create_markdown_artifact("\n".join(lines), key=f"rollback-{lay.app}")


def _rollback_rollout(
    cluster: KubernetesCluster, found: History, to_revision: int, health_url: str
) -> dict[str, Any]:
    """An app released with engine argo: its Rollout back (flows/release/argo_rollback.py)."""
    spec = found.spec
    assert spec is not None
    lay = AppLayout.of_release(spec)
    by = flow_run.get_name() or "a run"
    try:
        rec, reused, journal = rollback_rollout(
            cluster, spec.namespace, spec.app, found, to_revision, by
        )
        health = _verify_health(health_url) if health_url else None
    except PipelineError as exc:
        _publish(lay, None, [], f"FAILED: {exc}")
        raise
    summary = (
        f"{spec.app} rolled back from {rec.from_image} (revision {rec.from_revision}) to "
        f"{rec.image} (revision {rec.revision}) by Argo Rollouts"
    )
    _publish(lay, rec, journal, summary + (f"; health: {health['status']}" if health else ""))
    get_run_logger().info(summary)
    return {
        "app": spec.app,
        "namespace": spec.namespace,
        "strategy": f"{spec.kind} (engine argo)",
        "from": rec.from_revision,
        "to": rec.revision,
        "image": rec.image,
        "from_image": rec.from_image,
        "reused": reused,
        "steps": journal,
        "summary": summary,
        "health": health,
    }


@flow(name="rollback")
def rollback(
    app: Annotated[str, titled("App")],
    namespace: Annotated[str, titled("Namespace")],
    to_revision: Annotated[int, titled("To revision")] = 0,
    cluster: Annotated[KubernetesCluster | None, titled("Cluster")] = None,
    health_url: Annotated[str, titled("Health URL")] = "",
) -> dict[str, Any]:
    """Return `app` to its previous stable version (rolling, blue-green or canary), verified.

    Args:
        app: the application as its releases name it.
        namespace: its namespace.
        to_revision: 0 for the version that served before the current one, or a revision of
            the stable Deployment (rolling and canary) from its history.
        cluster: the KYB Kubernetes Cluster the app runs on (unset: the block named "local").
        health_url: optional URL answering the /health contract after the rollback.
    """
    cluster = cluster or KubernetesCluster.load("local")
    where = record.environment_for(namespace, cluster)
    purpose = f"rollback (to revision {to_revision or 'previous'})"
    aborted: list[str] = []  # the paused releases this rollback pre-empted
    # the same lock as releases: never interleave with one, but never wait behind one at a pause
    with (
        lease.hold(cluster, namespace, app, purpose, on_held=preempt(app, aborted)),
        record.recorded("rollback", app, where, namespace, cluster=cluster) as rec,
    ):
        if aborted and not to_revision:
            done = _after_preemption(cluster, app, namespace, aborted, health_url)
        else:
            done = roll_back_locked(cluster, app, namespace, to_revision, health_url)
        rec.result = Result.SUCCEEDED
    return done


def preempt(app: str, aborted: list[str]) -> Callable[[str], None]:
    """What a rollback does while the app's lock is held: abort a release waiting for a person.

    The release is answered as a person would answer it (its pause's form: abort, by this
    rollback, and why), so it rolls its new version back itself and frees the lock; its record
    says `aborted`. A release that is not at a pause is waited for.
    """
    by = f"rollback {flow_run.get_name() or 'run'}"

    def on_held(holder: str) -> None:
        run_id = holder.removeprefix("flow-run/")
        if not holder.startswith("flow-run/") or run_id in aborted:
            return
        try:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(UUID(run_id)).state
            if state is None or not state.is_paused():
                return
            answer = {"choice": "abort", "decided_by": by, "reason": EMERGENCY.format(app=app)}
            resume_flow_run(UUID(run_id), run_input=answer)
        except (ValueError, ObjectNotFound, NotPausedError):
            return  # not a run of this server, or no longer paused: wait for it
        aborted.append(run_id)
        get_run_logger().warning("pre-empted release run %s of %s at its pause", run_id, app)

    return on_held


EMERGENCY = "an emergency rollback of {app} pre-empted this release at its pause"


def _after_preemption(
    cluster: KubernetesCluster, app: str, namespace: str, aborted: list[str], health_url: str
) -> dict[str, Any]:
    """The pre-empted release's abort already put the app back: nothing further back to go."""
    found = load_history(cluster, namespace, app)  # its last successful release serves again
    image = found.spec.image if found is not None and found.spec is not None else "?"
    health = _verify_health(health_url) if health_url else None
    summary = (
        f"{app} is back on {image}: the release waiting at a pause (run {', '.join(aborted)}) "
        "was aborted by this rollback and rolled its new version back; nothing further back"
    )
    get_run_logger().info(summary)
    return {
        "app": app,
        "namespace": namespace,
        "image": image,
        "preempted": aborted,
        "summary": summary,
        "health": health,
    }


def roll_back_locked(
    cluster: KubernetesCluster, app: str, namespace: str, to_revision: int, health_url: str
) -> dict[str, Any]:
    """The rollback itself, under the app's lock."""
    log = get_run_logger()
    found = load_history(cluster, namespace, app)
    if found is not None and found.spec is not None and found.spec.engine == "argo":
        return _rollback_rollout(cluster, found, to_revision, health_url)
    lay = _layout(cluster, namespace, app, found)
    history = found or History()
    state = observe_app(cluster, lay)
    rec, reused = decide(
        lay, history, state, to_revision, at=now_iso(), by=flow_run.get_name() or "a run"
    )
    if not reused:  # recorded before any write: a retry or re-run carries on with it
        history = history.decided(rec)
        save_history(cluster, namespace, app, history)
    journal: list[dict] = []
    try:
        for i, step in enumerate(plan(lay, rec, state), 1):
            started = time.monotonic()
            entry = {"step": i, "action": step.action.describe(), "from": step.before}
            journal.append({**entry, "to": step.after, "seconds": 0.0, "note": ""})
            journal[-1]["note"] = _perform(cluster, lay, step)
            journal[-1]["seconds"] = round(time.monotonic() - started, 2)
        health = _verify_health(health_url) if health_url else None
    except PipelineError as exc:
        _publish(lay, rec, journal, f"FAILED at step {len(journal)}: {exc}")
        raise
    save_history(cluster, namespace, app, history.finished(now_iso()))
    old, new = _ends(lay, rec)
    summary = f"{app} rolled back from {rec.from_image} ({old}) to {rec.image} ({new})"
    if reused:
        summary += f"; target kept from {rec.decided_by} ({rec.decided_at}): never further back"
    _publish(lay, rec, journal, summary + (f"; health: {health['status']}" if health else ""))
    log.info(summary)
    return {
        "app": app,
        "namespace": namespace,
        "strategy": str(lay.kind),
        "from": old,
        "to": new,
        "image": rec.image,
        "from_image": rec.from_image,
        "reused": reused,
        "steps": journal,
        "summary": summary,
        "health": health,
    }

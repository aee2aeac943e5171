"""The `release` flow: one image, one environment, one strategy; a plan before, a report after."""

from __future__ import annotations

import os
from typing import Annotated, Any

from prefect import flow, get_run_logger, pause_flow_run
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from prefect.settings import PREFECT_UI_URL
from prefect.states import Running

from blocks import Environment, KubernetesCluster, PrometheusServer
from core.analysis.templates import AnalysisTemplate
from core.analysis.verdict import AnalysisRunner
from core.delivery.record import AUTOMATIC_DEMO, release_result
from core.errors import ConfigError
from core.release.actions import Pause, human_pause, worst_case_seconds
from core.release.decisions import Choice, Decision
from core.release.errors import ReleaseFailed
from core.release.planners import plan_release
from core.release.rollout import load_rollout
from core.release.spec import ReleaseSpec
from flows import record
from flows.environments import (
    Placement,
    check_spec,
    check_templates,
    cluster_of,
    place,
    prometheus_of,
    runner_for,
)
from flows.form import titled
from flows.release.argo_engine import ArgoEngine
from flows.release.executor import Asker, Executor, ReleaseResult
from tasks import analysis_templates, is_transient, kube, lease, workload
from tasks.environment import check_namespaces

POLL_SECONDS = int(os.environ.get("KYB_PAUSE_POLL_SECONDS", "5"))


class ReleaseDecision(RunInput):
    """The form a paused release shows in the Prefect UI."""

    choice: Choice = Choice.ABORT
    decided_by: str
    reason: str = ""


def ask_in_ui(pause: Pause, spec: ReleaseSpec) -> Decision:
    """Pause the flow run for a typed human answer; no answer in time aborts (never promotes)."""
    text = (
        f"**{spec.app}** in `{spec.namespace}`: {pause.reason}\n\n"
        f"Image `{spec.image}`. Choose promote, promote-full, skip or abort; "
        f"no answer within {pause.timeout_seconds}s aborts the release."
    )
    try:
        answer = pause_flow_run(
            wait_for_input=ReleaseDecision.with_initial_data(description=text),
            timeout=pause.timeout_seconds or 3600,
            poll_interval=POLL_SECONDS,
            key=pause.key.replace(":", "-"),
        )
    except FlowPauseTimeout:
        run_id = get_run_context().flow_run.id
        with get_client(sync_client=True) as client:  # back to Running, so rollback can proceed
            client.set_flow_run_state(run_id, Running(), force=True)
        return Decision(Choice.ABORT, "timeout", f"no answer within {pause.timeout_seconds}s")
    return Decision(answer.choice, answer.decided_by, answer.reason)


def approve_promotions(pause: Pause, spec: ReleaseSpec) -> Decision:
    """Demo mode.

    approve promotion gates at once; an inconclusive analysis still aborts (a release is never
    promoted on missing data, not even in a demo).
    """
    if pause.key.endswith(":inconclusive"):
        return Decision(Choice.ABORT, AUTOMATIC_DEMO, f"{pause.reason}: not promoted on no data")
    return Decision(Choice.PROMOTE, AUTOMATIC_DEMO, "promotion gates are approved in demo mode")


def publish_plan(spec: ReleaseSpec) -> list[dict[str, Any]]:
    """The release plan artifact: steps, weights, pauses and the worst-case time."""
    plan = plan_release(spec)
    rows = [
        {
            "step": i + 1,
            "kind": p.kind,
            "what": p.description,
            "worst case (s)": p.seconds,
            "weight": p.weight,
            "canary": p.canary_replicas,
            "stable": p.stable_replicas,
            "human": p.needs_human,
        }
        for i, p in enumerate(plan)
    ]
    create_table_artifact(
        rows,
        key=f"release-plan-{spec.app}",
        description=f"{spec.kind} release of {spec.image} to {spec.namespace}: worst case "
        f"{worst_case_seconds(plan)}s",
    )
    return rows


def report_link(key: str | None) -> str:
    """A markdown link to an analysis report artifact in the Prefect UI ("" if none)."""
    if not key:
        return ""
    ui = PREFECT_UI_URL.value() or ""
    return f" ([report `{key}`]({ui}/artifacts/key/{key}))" if ui else f" (report `{key}`)"


def publish_result(spec: ReleaseSpec, result: ReleaseResult) -> None:
    """The release result artifact: every action with timings, verdicts and decisions."""
    lines = [
        f"# Release of `{spec.app}` to `{spec.namespace}`: "
        f"{'succeeded' if result.ok else 'FAILED'}",
        "",
        result.summary,
        "",
        "| # | action | seconds | note |",
        "|---|---|---|---|",
    ]
    for i, e in enumerate(result.journal, 1):
        lines.append(f"| {i} | {e.action} | {e.seconds} | {e.note} |")
    if result.verdicts:
        lines += ["", "## Analysis verdicts", ""]
        lines += [
            f"- {k}: **{v.outcome}**: {v.reason}{report_link(v.report)}"
            for k, v in result.verdicts.items()
        ]
    if result.decisions:
        lines += ["", "## Human decisions", ""]
        lines += [f"- {d.choice} by {d.decided_by}: {d.reason}" for d in result.decisions]
    try:
        create_markdown_artifact("\n".join(lines), key=f"release-result-{spec.app}")
    except Exception as exc:  # the release is done on the cluster: a report must not undo that
        if not is_transient(exc):
            raise
        get_run_logger().warning(
            "the release result artifact was not written (Prefect unreachable: %s); the run's "
            "logs and its record say how it ended",
            type(exc).__name__,
        )


def perform_release(
    spec: ReleaseSpec,
    cluster: KubernetesCluster,
    runner: AnalysisRunner,
    lock_timeout: float = 1800,
    ask: Asker = ask_in_ui,
    environment: str = "",
) -> ReleaseResult:
    """Plan, lock, execute and report one release inside the current flow run.

    `ask` answers human gates: the Prefect UI form by default, `approve_promotions` in demo mode.
    A `workloadRef` spec takes its Deployment's pod template first, and once the release succeeded
    that Deployment goes to zero when its `scaleDown` is `onsuccess`. The spec's `engine` says who
    performs it: the flow's own executor (pipeline) or the cluster's Argo Rollouts (argo).
    The attempt is recorded in the run's labels (flows/record.py) under `environment`, by default
    the saved Environment whose namespace it releases into.
    """
    if spec.workload_ref is not None:  # a task run only where there is something to read
        spec = workload.resolve_workload_ref(cluster, spec)
    runner = analysis_templates.for_release(runner, cluster, spec)
    publish_plan(spec)
    purpose = f"release of {spec.image} ({spec.kind})"
    where = environment or record.environment_for(spec.namespace, cluster)
    with (
        lease.hold(cluster, spec.namespace, spec.app, purpose, lock_timeout),
        record.recorded(
            "release", spec.app, where, spec.namespace, spec.kind, spec.image, cluster
        ) as rec,
    ):
        engine = ArgoEngine if spec.engine == "argo" else Executor
        result = engine(spec, cluster, runner, ask).run()
        onsuccess = spec.workload_ref is not None and spec.workload_ref.scale_down == "onsuccess"
        if result.ok and onsuccess and (retired := workload.retire_workload_ref(cluster, spec)):
            result.summary += f"; {retired}"
        rec.result = release_result(result.ok, result.decisions)
        rec.cause = "" if result.ok else result.summary
    result.record = rec.done
    publish_result(spec, result)
    get_run_logger().info("release %s: %s", "succeeded" if result.ok else "failed", result.summary)
    return result


def approve_release(env: Environment, spec: ReleaseSpec, ask: Asker = ask_in_ui) -> None:
    """The environment's approval before anything is written: a typed pause (no answer: no go).

    Raises:
        ReleaseFailed: the person declined (or did not answer in time).
    """
    pause = human_pause("approve-release", f"release {spec.image} to environment {env.name}?")
    decision = ask(pause, spec)
    if decision.choice not in (Choice.PROMOTE, Choice.PROMOTE_FULL):
        raise ReleaseFailed(
            f"environment {env.name} requires approval: {decision.choice} by "
            f"{decision.decided_by} ({decision.reason or 'no reason given'}); nothing was changed",
            app=spec.app,
            namespace=spec.namespace,
        )


def release_in(
    env: Environment,
    spec: ReleaseSpec | None,
    app: str,
    image: str,
    cluster: KubernetesCluster | None,
    prometheus: PrometheusServer | None,
    templates: list[AnalysisTemplate],
    judge: bool,
) -> tuple[ReleaseSpec, ReleaseResult]:
    """Release into an Environment: its cluster, namespace, overlay, strategy and rules.

    Raises:
        ConfigError: a parameter conflicts with the environment.
    """
    target = cluster_of(env, cluster)
    check_templates(env, templates, target)
    runner = runner_for(prometheus_of(env, prometheus), templates, judge)
    if spec is None:
        if not (app and image):
            raise ConfigError(f"environment {env.name!r}: give app and image (or a spec)")
        placed = place(env, app, image)
    else:
        placed = Placement(check_spec(env, spec, app, image))
    if placed.namespaces and (drift := check_namespaces(target, placed.namespaces)):
        raise ConfigError(
            f"{'; '.join(drift)}: the pipeline does not change Namespaces, an administrator "
            "applies the overlay's namespace.yaml",
            environment=env.name,
        )
    if env.approval_required:
        approve_release(env, placed.spec)
    if placed.others:
        get_run_logger().info("applied %s", ", ".join(kube.apply_objects(target, placed.others)))
    return placed.spec, perform_release(placed.spec, target, runner, environment=env.name)


def spec_of_rollout(
    rollout: str, spec: ReleaseSpec | None, env: Environment | None, app: str, image: str
) -> ReleaseSpec | None:
    """The spec a Rollout's YAML text describes (with `image`, in the environment's namespace).

    Raises:
        ConfigError: both a spec and a Rollout, or a Rollout that does not read (what to fix).
    """
    if not rollout.strip():
        return spec
    if spec is not None:
        raise ConfigError("give a spec or a Rollout's YAML, not both")
    try:
        return load_rollout(
            rollout,
            app=app or None,
            image=image or None,
            namespace=env.namespace if env is not None else None,
        )
    except ValueError as exc:
        raise ConfigError(f"rollout: {exc}") from None


@flow(name="release")
def release(
    environment: Annotated[Environment | None, titled("Environment")] = None,
    app: Annotated[str, titled("App")] = "",
    image: Annotated[str, titled("Image")] = "",
    rollout: Annotated[str, titled("Rollout YAML")] = "",
    spec: Annotated[ReleaseSpec | None, titled("Spec")] = None,
    cluster: Annotated[KubernetesCluster | None, titled("Cluster")] = None,
    prometheus: Annotated[PrometheusServer | None, titled("Prometheus")] = None,
    templates: Annotated[list[AnalysisTemplate] | None, titled("Analysis templates")] = None,
    judge: Annotated[bool, titled("Judge canary against stable")] = False,
) -> dict[str, Any]:
    """Release an image to an environment (or spec.namespace); fails if it was rolled back.

    Name an environment, an app and an image (the environment gives the cluster, namespace,
    overlay, default strategy, approval and analysis templates); or paste a Rollout's YAML with
    an image; or give a whole spec. With an environment, a Rollout or a spec must agree with it.

    Args:
        environment: the KYB Environment to release into, e.g. staging.
        app: the app (its Deployment in the environment's overlay, or the Rollout's name).
        image: the image by digest, registry/repo@sha256:...
        rollout: an Argo Rollouts Rollout (YAML text) saying how to release; its namespace is
            the environment's when one is named.
        spec: what to release and how, field by field (Argo Rollouts' fields), instead.
        cluster: the KYB Kubernetes Cluster to release to; unset: the environment's (without
            one: the block named "local").
        prometheus: the KYB Prometheus the analyses query; unset: the environment's (without
            one: the block named "local").
        templates: analysis templates beside the built-ins (success-rate, error-rate,
            latency-p95); one with a built-in's name replaces it.
        judge: also compare canary against stable statistically (Mann-Whitney U) in canary
            analyses; both the thresholds and the judge must pass.
    """
    spec = spec_of_rollout(rollout, spec, environment, app, image)
    if environment is not None:
        spec, result = release_in(
            environment, spec, app, image, cluster, prometheus, templates or [], judge
        )
    elif spec is None or (app and not rollout) or (image and not rollout):
        raise ConfigError(
            "give an environment with an app and an image, a Rollout's YAML with an image, "
            "or a spec"
        )
    else:
        runner = runner_for(prometheus or PrometheusServer.load("local"), templates or [], judge)
        target = cluster or KubernetesCluster.load("local")
        result = perform_release(spec, target, runner)
    if not result.ok:
        raise ReleaseFailed(result.summary, app=spec.app, namespace=spec.namespace)
    return {"app": spec.app, "image": spec.image, "summary": result.summary}

"""The `delivery` flow: the seed's whole workflow for one commit, from tests to production."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect import flow, get_run_logger
from pydantic_settings import BaseSettings, SettingsConfigDict

from blocks import (
    ContainerRegistry,
    Environment,
    GitRepository,
    KubernetesCluster,
    PrometheusServer,
)
from blocks.endpoint import ServiceEndpoint
from core.analysis.templates import AnalysisTemplate
from core.analysis.verdict import AnalysisRunner
from core.ci import GitRef
from core.delivery.approval import check_auto_approve
from core.delivery.branches import environments_for
from core.delivery.checklist import Checklist, human_items
from core.delivery.checks import SmokeRequest
from core.delivery.errors import DeliveryFailed
from core.delivery.overlay import (
    default_production_strategy,
    release_from_overlay,
    with_monitoring,
)
from core.delivery.reach import served_by
from core.delivery.record import Result
from core.errors import ConfigError
from core.release import layout
from core.release.defaults import COLOR_LABEL
from core.release.errors import ReleaseFailed
from core.release.spec import ReleaseSpec
from flows import record
from flows.ci import run_ci_stages
from flows.delivery_report import Phase, Phases, publish
from flows.environments import (
    Placement,
    Stage,
    chain,
    cluster_of,
    prometheus_of,
    runner_for,
    stage_in,
)
from flows.form import titled
from flows.release.executor import ReleaseResult
from flows.release.flow import (
    approve_promotions,
    ask_in_ui,
    perform_release,
)
from tasks import kube
from tasks.environment import check_namespaces
from tasks.gates import (
    confirm_human_items,
    post_deploy_checks,
    pre_deploy_gates,
    publish_checklist,
    render_overlay,
)
from tasks.health import endpoint_of, smoke_test
from tasks.source import fetch_source

ROOT = Path(__file__).resolve().parents[1]
SMOKE = [
    SmokeRequest(name="health", path="/health", expect_json={"status": "healthy"}),
    SmokeRequest(
        name="verify", path="/api/v1/verify?business_id=smoke", expect_json={"status": "verified"}
    ),
]


def _why(checklist: Checklist) -> str:
    """The failed or declined items, and the pending ones, in one line."""
    bad = [f"{i.name}: {i.detail or i.status}" for i in checklist.failures()]
    bad += [f"{i.name}: {i.status}" for i in checklist.pending()]
    return "; ".join(bad)


class _Modes(BaseSettings):
    """The worker's modes, from KYB_ variables: demo mode is set by the local platform only."""

    model_config = SettingsConfigDict(env_prefix="KYB_", extra="ignore")

    demo_mode: bool = False


def _inside(app_dir: str) -> str:
    """app_dir, refused when it could leave the checkout (absolute, or climbing out with ..)."""
    normal = os.path.normpath(app_dir)
    if os.path.isabs(app_dir) or normal == ".." or normal.startswith("../"):
        raise ConfigError(
            f"app_dir {app_dir!r} leaves the checkout: give a folder inside it, e.g. "
            "examples/kyb-platform",
            app_dir=app_dir,
        )
    return normal


def _resolve(app_dir: str, root: Path = ROOT) -> Path:
    path = (root / _inside(app_dir)).resolve()
    if not path.is_relative_to(root.resolve()):  # a symlink out of the checkout
        raise ConfigError(f"app_dir {app_dir!r} leaves the checkout through a link")
    if not (path / "deploy").is_dir():
        raise ConfigError(
            f"{path} has no deploy/ folder with kustomize overlays: give the app's directory",
            app_dir=app_dir,
        )
    return path


@dataclass(frozen=True)
class DeliveryOptions:
    """What every environment of one delivery shares: the app, its blocks and the human gates."""

    app: str
    app_path: Path
    root: Path  # the checkout delivered: the fetched commit's tree, or the worker's own
    cluster: KubernetesCluster | None  # without Environment blocks
    registry: ContainerRegistry
    prometheus: PrometheusServer
    runner: AnalysisRunner
    production_strategy: dict[str, Any] | None
    auto_approve: bool
    approval_timeout: int
    service_urls: dict[str, str]
    environments: dict[str, Environment] = field(default_factory=dict)  # by environment name
    templates: list[AnalysisTemplate] = field(default_factory=list)


def _stage(env: str, image: str, opts: DeliveryOptions) -> Stage:
    """The environment's block settles cluster, overlay, strategy, approval and Prometheus.

    Without one, the delivery's own parameters do (the seed's rules: production is blue-green
    and human-approved; its Namespace is applied with the overlay's other objects).
    """
    given = opts.production_strategy if env == "production" else None
    block = opts.environments.get(env)
    if block is None:
        strategy = given or (default_production_strategy(opts.app) if env == "production" else None)
        overlay = opts.app_path / "deploy" / env
        objects = render_overlay(overlay)
        spec, others = release_from_overlay(objects, opts.app, image, strategy)
        placed = Placement(with_monitoring(spec), others)
        human = env == "production"  # the seed's human checklist guards production only
        assert opts.cluster is not None  # set whenever no Environment block is
        return Stage(opts.cluster, overlay, placed, human, opts.prometheus, opts.runner)
    return stage_in(
        block,
        opts.app,
        image,
        given,
        opts.app_path,
        opts.prometheus,
        opts.runner,
        opts.templates,
        opts.root,
    )


def deliver_to(
    env: str,
    image: str,
    ci: dict[str, tuple[bool, str]],
    opts: DeliveryOptions,
    phases: Phases | None = None,
) -> dict[str, Any]:
    """Gates, release and checks of one environment; raises DeliveryFailed or ReleaseFailed.

    Each of the three is timed as a stage of the delivery report.
    """
    phases = phases or Phases()
    with phases.phase(f"{env} gates"):
        stage, checklist = _gates(env, image, ci, opts)
    with phases.phase(f"{env} release") as st:
        result = _release(env, stage, opts)
        st.outcome = str(result.record.result) if result.record else st.outcome
        if not result.ok:
            raise ReleaseFailed(
                f"{env}: {result.summary}", app=opts.app, namespace=stage.placed.spec.namespace
            )
    with phases.phase(f"{env} checks") as st:
        return _checks(env, stage, opts, checklist, result, st)


def _gates(
    env: str, image: str, ci: dict[str, tuple[bool, str]], opts: DeliveryOptions
) -> tuple[Stage, Checklist]:
    """The environment's gates and human checklist; the overlay's objects applied once they pass."""
    log, app, stage = get_run_logger(), opts.app, _stage(env, image, opts)
    cluster, spec = stage.cluster, stage.placed.spec
    others = stage.placed.others
    declared = stage.placed.namespaces  # an Environment's: only read, never written
    if declared and (drift := check_namespaces(cluster, declared)):
        raise DeliveryFailed(
            f"{env}: {'; '.join(drift)}: the pipeline does not change Namespaces, an "
            "administrator applies the overlay's namespace.yaml",
            app=app,
        )
    writes = [
        layout.workload_manifest(spec, track, image, spec.replicas) for track in layout.tracks(spec)
    ] + layout.services(spec)
    objects = [*others, *writes]
    checklist = pre_deploy_gates(cluster, opts.app_path, stage.overlay, ci, image, objects)
    human = stage.human
    if not human:
        checklist = Checklist(items=[i for i in checklist.items if i.kind == "machine"])
    elif not checklist.failures():
        checklist = confirm_human_items(
            checklist, opts.auto_approve, opts.approval_timeout, phase="pre"
        )
    publish_checklist(checklist, f"{env}-{app}", f"{env} checklist for {image}")
    if not checklist.ok():
        raise DeliveryFailed(f"{env} gates failed: {_why(checklist)}", app=app)
    log.info("%s: applied %s", env, ", ".join(kube.apply_objects(cluster, others)))
    return stage, checklist


def _release(env: str, stage: Stage, opts: DeliveryOptions) -> ReleaseResult:
    ask = approve_promotions if opts.auto_approve else ask_in_ui
    spec = stage.placed.spec
    return perform_release(spec, stage.cluster, stage.runner, ask=ask, environment=env)


def _active_color(cluster: KubernetesCluster, spec: ReleaseSpec) -> str | None:
    """A blue-green release's active color (its active Service's selector); None otherwise."""
    blue_green = spec.strategy.blue_green
    if blue_green is None:
        return None
    core = client.CoreV1Api(kube.api_for(cluster))
    service = core.read_namespaced_service(
        blue_green.active_service, spec.namespace, _request_timeout=30
    )
    return (service.spec.selector or {}).get(COLOR_LABEL)


def _checks(
    env: str,
    stage: Stage,
    opts: DeliveryOptions,
    checklist: Checklist,
    result: ReleaseResult,
    st: Phase,
) -> dict[str, Any]:
    """Smoke requests (staging), post-deployment checks and the human's; fails if one fails."""
    log, app, cluster, spec = get_run_logger(), opts.app, stage.cluster, stage.placed.spec
    human = stage.human
    url = _endpoint(opts, spec, env, stage.environment)
    smoke = smoke_test(url, SMOKE, budget_seconds=30) if url and env == "staging" else []
    color = _active_color(cluster, spec)
    post = post_deploy_checks(stage.prometheus, url, app, spec.namespace, "stable", color=color)
    after = checklist.add(*post, *(human_items("post") if human else []))
    if human:
        after = confirm_human_items(after, opts.auto_approve, opts.approval_timeout, phase="post")
    publish_checklist(after, f"{env}-{app}", f"{env} checklist for {spec.image}")
    broken = [f"{r.name}: {r.reason}" for r in smoke if not r.ok]
    broken += [] if after.ok() else [_why(after)]
    if broken:
        if result.record is not None:
            record.mark(result.record, Result.CHECKS_FAILED, "; ".join(broken))
        what = _retire_first_deploy(cluster, spec) if result.first_deploy else ""
        st.outcome = "failed"
        raise DeliveryFailed(
            f"{env} released, but its checks failed: {'; '.join(broken)}{what}",
            app=app,
            namespace=spec.namespace,
        )
    log.info("%s: %s", env, result.summary)
    return {
        "namespace": spec.namespace,
        "strategy": spec.kind,
        "summary": result.summary,
        "seconds": sum(e.seconds or 0 for e in result.journal),
    }


def _retire_first_deploy(cluster: KubernetesCluster, spec: ReleaseSpec) -> str:
    """Scale a first deploy that failed its checks to zero, and say what became of it.

    It has nothing to roll back to; `firstDeploy.onFailure: keep` leaves it running instead.
    """
    if spec.first_deploy.on_failure == "keep":
        return "; first deploy: left running (firstDeploy.onFailure: keep)"
    scaled = []
    for track in layout.tracks(spec):
        name = layout.workload_name(spec, track)
        try:
            kube.scale(cluster, spec.namespace, name, 0)
        except ApiException as exc:
            if exc.status != 404:  # a track this strategy never created
                raise
            continue
        scaled.append(name)
    return f"; first deploy, nothing to roll back to: scaled {', '.join(scaled)} to 0"


def _endpoint(
    opts: DeliveryOptions, spec: ReleaseSpec, env: str, block: Environment | None
) -> str | ServiceEndpoint | None:
    """Where the checks reach the released Service in this environment.

    Its `service_urls` entry, else what the Environment block says (service proxy, URL or
    cluster DNS), else None (no smoke or health requests).
    """
    if env in opts.service_urls:
        return opts.service_urls[env]
    return block.endpoint(served_by(spec)) if block else None


@flow(name="delivery")
def delivery(
    commit: Annotated[str, titled("Commit")],
    branch: Annotated[str, titled("Branch")],
    commit_time: Annotated[str, titled("Commit time")] = "",
    app: Annotated[str, titled("App")] = "kyb-platform",
    app_dir: Annotated[str, titled("App folder")] = "examples/kyb-platform",
    repository: Annotated[str, titled("Image repository")] = "kyb-platform",
    source: Annotated[str, titled("Source URL")] = "https://github.com/acme/kyb-platform",
    production_strategy: Annotated[dict[str, Any] | None, titled("Production strategy")] = None,
    templates: Annotated[list[AnalysisTemplate] | None, titled("Analysis templates")] = None,
    auto_approve: Annotated[bool, titled("Approve gates at once (demo)")] = False,
    approval_timeout: Annotated[int, titled("Approval timeout (seconds)")] = 3600,
    service_urls: Annotated[dict[str, str] | None, titled("Service URLs")] = None,
    version: Annotated[str, titled("Version")] = "",
    registry: Annotated[ContainerRegistry | None, titled("Registry")] = None,
    cluster: Annotated[KubernetesCluster | None, titled("Cluster")] = None,
    prometheus: Annotated[PrometheusServer | None, titled("Prometheus")] = None,
    environment: Annotated[Environment | None, titled("Up to environment")] = None,
    git: Annotated[GitRepository | None, titled("Git repository")] = None,
) -> dict[str, Any]:
    """Deliver one commit: CI, then each environment its branch deploys to.

    test, quality and scan (concurrently, with the image build) -> push -> for each environment the
    branch deploys to (develop: staging; main: staging then production): pre-deployment gates and
    their checklist -> human items (typed pause; approved in demo mode) -> the overlay's supporting
    objects -> the release (staging: the overlay's rolling update; production: the given strategy,
    blue-green with a manual promotion gate by default) with a post-deploy monitoring analysis that
    rolls back automatically -> integration tests (staging) and the post-deployment checklist.

    Args:
        commit: the commit's SHA.
        branch: develop (to staging) or main (through staging to production).
        commit_time: when the commit was made (ISO 8601), for DORA lead time.
        app: the Deployment's name.
        app_dir: the app's folder, with deploy/ overlays (relative to the checkout).
        repository: the repository inside the registry.
        source: the source repository's URL, for the image labels.
        production_strategy: a ReleaseSpec strategy for production (default: blue-green with a
            manual promotion gate). A post-deploy monitoring analysis is added where none is set.
        templates: analysis templates beside the built-ins.
        auto_approve: demo mode: approve promotion gates and human checklist items at once;
            refused for a branch that reaches production unless KYB_DEMO_MODE=true (the local
            platform's demo sets it).
        approval_timeout: seconds a human gate waits; no answer declines.
        service_urls: environment -> base URL where the pipeline reaches the released Service
            (e.g. an ingress, or `kubectl port-forward svc/kyb-platform 8080:80`);
            staging's smoke requests and every environment's health check go there.
        version: the version compiled into the binary (default: the commit's first 12 digits).
        registry: the KYB Container Registry to push to (unset: the block named "local").
        cluster: the KYB Kubernetes Cluster to release on, without environment (unset: the
            block named "local"); with one, each environment's own cluster is used.
        prometheus: the KYB Prometheus analyses and checks query (unset: the block named
            "local"); an environment's own Prometheus, if it names one, is used there.
        environment: the KYB Environment to deliver up to, e.g. production: the branch's
            environments up to it are released with their own blocks (cluster and credentials,
            namespace, overlay, default strategy, approval, analysis templates, check access).
            Empty: the parameters above, for every environment the branch deploys to.
        git: the KYB Git Repository to fetch `commit` from (a clean working
            directory of its own, exactly that commit; app_dir is relative to the repository).
            Empty: the worker's own checkout is built, and `commit` only names it.
    """
    envs = environments_for(branch)  # a branch that deploys nowhere fails before any work
    check_auto_approve(auto_approve, envs, _Modes().demo_mode)
    checkout = None  # the fetched commit's tree: removed when the delivery ends, however
    if git is not None:  # build exactly the pushed commit, not whatever the worker has checked out
        _inside(app_dir)  # a bad app_dir fails before the fetch
        checkout = Path(fetch_source(git, commit))
        app_path = _resolve(app_dir, checkout)
    else:
        app_path = _resolve(app_dir)
    try:
        urls = dict(service_urls or {})
        unknown = sorted(set(urls) - set(envs))
        if unknown:
            raise ConfigError(f"service_urls names {unknown}, but {branch} deploys to {envs} only")
        for url in urls.values():
            endpoint_of(url)  # a malformed URL, or a host egress forbids, fails before any work
        blocks = chain(envs, environment, app, production_strategy, templates or [])
        for block in blocks.values():  # explicit blocks must be the environments' own
            cluster_of(block, cluster)
            prometheus_of(block, prometheus)
        log = get_run_logger()
        registry = registry or ContainerRegistry.load("local")
        prometheus = prometheus or PrometheusServer.load("local")
        record.commit(commit, commit_time)
        phases = Phases()
        try:
            with phases.phase("CI"):
                ci = run_ci_stages(
                    registry,
                    repository,
                    app_path,
                    GitRef(sha=commit, branch=branch),
                    source,
                    app,
                    version=version or commit[:12],
                )
        except BaseException:
            publish(app, commit, branch, "", {}, envs, {}, phases)
            raise
        image = ci.image.reference
        coverage = f", coverage {ci.tests.coverage:.1f}%" if ci.tests.coverage is not None else ""
        summary = {
            "tests": (True, f"{len(ci.tests.packages)} packages passed{coverage}"),
            "scan": (
                not ci.security.blocking,
                f"{len(ci.security.findings)} findings, none at or above {ci.security.threshold}",
            ),
        }
        opts = DeliveryOptions(
            app=app,
            app_path=app_path,
            root=checkout or ROOT,
            cluster=(cluster or KubernetesCluster.load("local")) if not blocks else None,
            registry=registry,
            prometheus=prometheus,
            runner=runner_for(prometheus, templates or [], False),
            production_strategy=production_strategy,
            auto_approve=auto_approve,
            approval_timeout=approval_timeout,
            service_urls=urls,
            environments=blocks,
            templates=templates or [],
        )
        done: dict[str, Any] = {}
        try:
            for env in envs:
                done[env] = deliver_to(env, image, summary, opts, phases)
        finally:
            publish(app, commit, branch, image, ci.seconds, envs, done, phases)
        log.info("delivered %s (%s) to %s", app, image, ", ".join(envs))
        return {
            "app": app,
            "commit": commit,
            "commit_time": commit_time,
            "image": image,
            "environments": done,
        }
    finally:
        if checkout is not None:
            shutil.rmtree(checkout, ignore_errors=True)

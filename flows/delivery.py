"""The `delivery` flow: the seed's whole workflow for one commit, from tests to production.

test, quality and scan (concurrently, with the image build) -> push -> for each environment the
branch deploys to (develop: staging; main: staging then production): pre-deployment gates and their
checklist -> human items (typed pause; approved in demo mode) -> the overlay's supporting objects
-> the release (staging: the overlay's rolling update; production: the given strategy, blue-green
with a manual promotion gate by default) with a post-deploy monitoring analysis that rolls back
automatically -> integration tests (staging) and the post-deployment checklist.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from blocks import ContainerRegistry, KubernetesCluster, PrometheusServer
from core import layout
from core.checklist import Checklist, human_items
from core.checks import SmokeRequest
from core.ci import GitRef
from core.delivery import (
    default_production_strategy,
    environments_for,
    release_from_overlay,
    with_monitoring,
)
from core.errors import ConfigError, PipelineError
from core.spec import ReleaseSpec
from core.templates import AnalysisTemplate
from flows.release import (
    ReleaseFailed,
    analysis_runner,
    approve_promotions,
    ask_in_ui,
    perform_release,
)
from tasks import kube
from tasks.ci_pipeline import run_ci_stages
from tasks.gates import (
    confirm_human_items,
    post_deploy_checks,
    pre_deploy_gates,
    publish_checklist,
    render_overlay,
)
from tasks.health import loopback_url, smoke_test
from tasks.notify import on_release_failure

ROOT = Path(__file__).resolve().parents[1]
SMOKE = [
    SmokeRequest(name="health", path="/health", expect_json={"status": "healthy"}),
    SmokeRequest(
        name="verify", path="/api/v1/verify?business_id=smoke", expect_json={"status": "verified"}
    ),
]


class DeliveryFailed(PipelineError):
    """A stage of the delivery failed; what ran before it is kept, later stages did not run."""


def _why(checklist: Checklist) -> str:
    """The failed or declined items, and the pending ones, in one line."""
    bad = [f"{i.name}: {i.detail or i.status}" for i in checklist.failures()]
    bad += [f"{i.name}: {i.status}" for i in checklist.pending()]
    return "; ".join(bad)


def _resolve(app_dir: str) -> Path:
    path = Path(app_dir) if Path(app_dir).is_absolute() else ROOT / app_dir
    if not (path / "deploy").is_dir():
        raise ConfigError(f"{path} has no deploy/ folder with kustomize overlays: give the app's "
                          "directory", app_dir=app_dir)  # fmt: skip
    return path


def deliver_to(
    env: str,
    image: str,
    ci: dict[str, tuple[bool, str]],
    opts: dict[str, Any],
) -> dict[str, Any]:
    """Gates, release and checks of one environment; raises DeliveryFailed or ReleaseFailed."""
    log, app, app_path = get_run_logger(), opts["app"], opts["app_path"]
    cluster: KubernetesCluster = opts["cluster"]
    overlay = app_path / "deploy" / env
    strategy = (opts["production_strategy"] or default_production_strategy(app)
                if env == "production" else None)  # fmt: skip
    spec, template, others = release_from_overlay(render_overlay(overlay), app, image, strategy)
    spec = with_monitoring(spec)
    writes = [layout.workload_manifest(spec, track, image, spec.replicas, template)
              for track in layout.tracks(spec)] + layout.services(spec)  # fmt: skip
    checklist = pre_deploy_gates(cluster, app_path, overlay, ci, image, [*others, *writes])
    human = env == "production"  # the seed's human checklist guards production only
    if not human:
        checklist = Checklist(items=[i for i in checklist.items if i.kind == "machine"])
    elif not checklist.failures():
        checklist = confirm_human_items(checklist, opts["auto_approve"], opts["approval_timeout"],
                                        phase="pre")  # fmt: skip
    publish_checklist(checklist, f"{env}-{app}", f"{env} checklist for {image}")
    if not checklist.ok():
        raise DeliveryFailed(f"{env} gates failed: {_why(checklist)}", app=app)
    log.info("%s: applied %s", env, ", ".join(kube.apply_objects(cluster, others)))
    ask = approve_promotions if opts["auto_approve"] else ask_in_ui
    with opts["endpoints"](spec, env) as url:
        result = perform_release(spec, cluster, opts["runner"], template, ask=ask)
        if not result.ok:
            raise ReleaseFailed(f"{env}: {result.summary}", app=app, namespace=spec.namespace)
        smoke = smoke_test(url, SMOKE, budget_seconds=30) if url and env == "staging" else []
        post = post_deploy_checks(opts["prometheus"], url, app, spec.namespace, "stable")
    after = checklist.add(*post, *(human_items("post") if human else []))
    if human:
        after = confirm_human_items(after, opts["auto_approve"], opts["approval_timeout"],
                                    phase="post")  # fmt: skip
    publish_checklist(after, f"{env}-{app}", f"{env} checklist for {image}")
    broken = [f"{r.name}: {r.reason}" for r in smoke if not r.ok]
    broken += [] if after.ok() else [_why(after)]
    if broken:
        raise DeliveryFailed(f"{env} released, but its checks failed: {'; '.join(broken)}",
                             app=app, namespace=spec.namespace)  # fmt: skip
    log.info("%s: %s", env, result.summary)
    return {"namespace": spec.namespace, "strategy": spec.kind, "summary": result.summary,
            "seconds": sum(e.seconds or 0 for e in result.journal)}  # fmt: skip


def _endpoints(opts: dict[str, Any]):
    """A context factory yielding each release's reachable base URL: the environment's entry of
    `service_urls` (how the pipeline reaches the released Service, e.g. a port-forward), else the
    sandbox's stand-in container, else None (no smoke or health requests, metrics only)."""

    @contextlib.contextmanager
    def open_for(spec: ReleaseSpec, env: str) -> Iterator[str | None]:
        if env in opts["service_urls"]:
            yield opts["service_urls"][env]
            return
        if not opts["stand_ins"]:
            yield None
            return
        from sandbox import standin  # the sandbox only: a real cluster's pods answer themselves
        from sandbox.example import Traffic
        from sandbox.fleet import wait_traffic
        from sandbox.platform import Platform

        faults = opts["fault_error_rate"] if spec.namespace.endswith("production") else 0.0

        prometheus = Platform().prometheus
        with standin.stand_in(opts["registry"], spec.image, prometheus, spec.app,
                              spec.namespace, error_rate=faults) as inst, \
                Traffic([inst.url]):  # fmt: skip
            labels = {"service": spec.app, "namespace": spec.namespace, "track": "stable"}
            wait_traffic(prometheus, labels)  # the checks then measure served requests
            yield inst.url

    return open_for


@flow(name="delivery", on_failure=[on_release_failure], on_crashed=[on_release_failure])
def delivery(
    commit: str,
    branch: str,
    commit_time: str = "",
    app: str = "kyb-platform",
    app_dir: str = "examples/kyb-platform",
    repository: str = "kyb-platform",
    source: str = "https://github.com/acme/kyb-platform",
    production_strategy: dict[str, Any] | None = None,
    templates: list[AnalysisTemplate] | None = None,
    auto_approve: bool = False,
    approval_timeout: int = 3600,
    stand_ins: bool = False,
    fault_error_rate: float = 0.0,
    service_urls: dict[str, str] | None = None,
    version: str = "",
    registry_block: str = "local",
    cluster_block: str = "local",
    prometheus_block: str = "local",
) -> dict[str, Any]:
    """Deliver one commit: CI, then each environment its branch deploys to.

    Args:
        commit: the commit's SHA. commit_time: when it was made (ISO 8601), for DORA lead time.
        branch: develop (to staging) or main (through staging to production).
        app, app_dir, repository, source: the Deployment's name, the app's folder (with deploy/
            overlays), the registry repository and the source URL for the image labels.
        production_strategy: a ReleaseSpec strategy for production (default: blue-green with a
            manual promotion gate). A post-deploy monitoring analysis is added where none is set.
        templates: analysis templates beside the built-ins.
        auto_approve: demo mode: approve promotion gates and human checklist items at once.
        approval_timeout: seconds a human gate waits; no answer declines.
        stand_ins: sandbox only: run the released image on loopback for checks and analysis.
        fault_error_rate: sandbox only: errors injected into production's stand-ins (a version
            that passes staging and fails under production traffic: the demo of a rollback).
        service_urls: environment -> base URL where the pipeline reaches the released Service
            (loopback: e.g. `kubectl port-forward svc/kyb-platform 8080:80` on a real cluster);
            staging's smoke requests and every environment's health check go there.
        version: the version compiled into the binary (default: the commit's first 12 digits).
    """
    envs = environments_for(branch)  # a branch that deploys nowhere fails before any work
    urls = dict(service_urls or {})
    unknown = sorted(set(urls) - set(envs))
    if unknown:
        raise ConfigError(f"service_urls names {unknown}, but {branch} deploys to {envs} only")
    for url in urls.values():
        loopback_url(url)  # a non-loopback or malformed URL fails here, before any work
    log, app_path = get_run_logger(), _resolve(app_dir)
    registry = ContainerRegistry.load(registry_block)
    ci = run_ci_stages(registry, repository, app_path, GitRef(sha=commit, branch=branch), source,
                       app, version=version or commit[:12])  # fmt: skip
    image = ci.image.reference
    coverage = f", coverage {ci.tests.coverage:.1f}%" if ci.tests.coverage is not None else ""
    summary = {"tests": (True, f"{len(ci.tests.packages)} packages passed{coverage}"),
               "scan": (not ci.security.blocking, f"{len(ci.security.findings)} findings, none "
                        f"at or above {ci.security.threshold}")}  # fmt: skip
    opts: dict[str, Any] = {
        "app": app, "app_path": app_path, "cluster": KubernetesCluster.load(cluster_block),
        "registry": registry, "prometheus": PrometheusServer.load(prometheus_block),
        "runner": analysis_runner(prometheus_block, templates or [], False),
        "production_strategy": production_strategy, "auto_approve": auto_approve,
        "approval_timeout": approval_timeout, "stand_ins": stand_ins,
        "fault_error_rate": fault_error_rate, "service_urls": urls,
    }  # fmt: skip
    opts["endpoints"] = _endpoints(opts)
    done: dict[str, Any] = {}
    try:
        for env in envs:
            done[env] = deliver_to(env, image, summary, opts)
    finally:
        _report(app, commit, branch, image, ci.seconds, envs, done)
    log.info("delivered %s (%s) to %s", app, image, ", ".join(envs))
    return {"app": app, "commit": commit, "commit_time": commit_time, "image": image,
            "environments": done}  # fmt: skip


def _report(app: str, commit: str, branch: str, image: str, ci_seconds: dict[str, float],
            envs: tuple[str, ...], done: dict[str, Any]) -> None:  # fmt: skip
    """The delivery report artifact: the image, CI timings and each environment's outcome."""
    lines = [f"# Delivery of `{app}` at `{commit[:12]}` ({branch})", "", f"Image `{image}`", "",
             "| stage | seconds |", "|---|---|"]  # fmt: skip
    lines += [f"| {stage} | {secs} |" for stage, secs in ci_seconds.items()]
    lines += ["", "| environment | result | strategy | release |", "|---|---|---|---|"]
    for env in envs:
        got = done.get(env) or {"strategy": "-", "summary": "-"}
        result = "delivered" if env in done else "not delivered"
        lines.append(f"| {env} | {result} | {got['strategy']} | {got['summary']} |")
    create_markdown_artifact("\n".join(lines), key=f"delivery-{app}")

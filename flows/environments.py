"""A flow's where-to-deploy parameters settled against an Environment block, before any work.

A release names an app, an image and an environment; the environment supplies the cluster (with
its own credentials), the namespace, the overlay, the default strategy, the approval rule, the
analysis templates, Prometheus and how checks reach the Service. Explicit parameters still work
without an environment; given with one, they must agree with it (else a ConfigError says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blocks import Environment, KubernetesCluster, PrometheusServer
from core.analysis.builtins import BUILTINS
from core.analysis.judge import JudgeConfig
from core.analysis.templates import AnalysisTemplate
from core.analysis.verdict import AnalysisRunner, NoJudge
from core.delivery.environment import settle, strategy_kind
from core.delivery.overlay import release_from_overlay, with_monitoring
from core.errors import ConfigError
from core.release.spec import ReleaseSpec
from tasks import analysis_templates
from tasks.environment import load_environment
from tasks.gates import render_overlay
from tasks.prometheus import PrometheusRunner

ROOT = Path(__file__).resolve().parents[1]  # overlays are relative to the checkout


def block_name(block: Any) -> str | None:
    """The saved name of a (nested) block, or None if it was never saved."""
    return getattr(block, "_block_document_name", None)


def cluster_of(env: Environment, cluster: KubernetesCluster | None) -> KubernetesCluster:
    """The environment's cluster; an explicit cluster must be that very block.

    Raises:
        ConfigError: `cluster` is another block than the environment's.
    """
    given = (block_name(cluster) or "an unsaved cluster block") if cluster else None
    settle("cluster", given, env.name, block_name(env.cluster) or "?")
    return env.cluster


def prometheus_of(env: Environment, prometheus: PrometheusServer | None) -> PrometheusServer:
    """The environment's Prometheus, else the one given, else the block named "local".

    Raises:
        ConfigError: `prometheus` is another block than the environment's.
    """
    if env.prometheus is not None:
        given = (block_name(prometheus) or "an unsaved Prometheus block") if prometheus else None
        settle("prometheus", given, env.name, block_name(env.prometheus) or "?")
        return env.prometheus
    return prometheus or PrometheusServer.load("local")


def runner_for(
    prometheus: PrometheusServer | None, templates: Sequence[AnalysisTemplate], judge: bool
) -> AnalysisRunner:
    """The Prometheus runner with user templates over the built-ins; NoJudge without Prometheus."""
    if prometheus is None:
        return NoJudge()
    known = {**BUILTINS, **{t.key: t for t in templates}}
    given = frozenset(t.key for t in templates)
    return PrometheusRunner(prometheus, known, JudgeConfig() if judge else None, given=given)


def check_templates(
    env: Environment,
    templates: Sequence[AnalysisTemplate],
    cluster: KubernetesCluster | None = None,
) -> None:
    """Every analysis template the environment names must be known.

    Known: built in, passed in `templates`, or an AnalysisTemplate in the environment's namespace
    on `cluster` (looked up only when given).

    Raises:
        ConfigError: one is neither built in, given nor on the cluster.
    """
    known = {*BUILTINS, *(t.key for t in templates)}
    missing = [t for t in env.analysis_templates if t not in known]
    if missing and cluster is not None:
        found = analysis_templates.read_templates(cluster, env.namespace, missing)
        missing = [t for t in missing if t not in found]
    if missing:
        raise ConfigError(
            f"environment {env.name!r} names analysis templates {missing} that are neither built "
            f"in ({', '.join(sorted(BUILTINS))}), passed in `templates`, nor AnalysisTemplates "
            f"in namespace {env.namespace}",
            environment=env.name,
        )


def strategy_of(env: Environment, app: str, given: dict[str, Any] | None) -> dict[str, Any] | None:
    """The strategy: the explicit one (same kind as the environment's), else the environment's.

    Raises:
        ConfigError: the explicit strategy is of another kind than the environment's default.
    """
    default = env.strategy_for(app)
    settle("strategy", strategy_kind(given), env.name, strategy_kind(default))
    return given if given is not None else default


@dataclass(frozen=True)
class Placement:
    """A release placed in an environment: the spec (with its pod template) and overlay objects."""

    spec: ReleaseSpec
    others: list[dict[str, Any]] = field(default_factory=list)  # applied before the release
    namespaces: list[dict[str, Any]] = field(default_factory=list)  # only read, never written


def split_namespaces(objects: Sequence[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """(the Namespace objects, everything else) of an overlay."""
    spaces = [o for o in objects if o.get("kind") == "Namespace"]
    return spaces, [o for o in objects if o.get("kind") != "Namespace"]


def place(
    env: Environment,
    app: str,
    image: str,
    strategy: dict[str, Any] | None = None,
    app_dir: Path | None = None,
    root: Path = ROOT,
) -> Placement:
    """Release `image` of `app` as the environment's overlay describes it.

    A relative overlay is read from `root`, the checkout being delivered (the fetched commit's
    tree when the delivery fetched one, so its overlay and config are that commit's too).

    Raises:
        ConfigError: the overlay cannot be rendered, its namespace is not the environment's, or
            the strategy conflicts with the environment's.
    """
    overlay = env.overlay_dir(app, app_dir)
    overlay = overlay if overlay.is_absolute() else root / overlay
    spec, objects = release_from_overlay(
        render_overlay(overlay), app, image, strategy_of(env, app, strategy)
    )
    if spec.namespace != env.namespace:
        raise ConfigError(
            f"overlay {overlay} deploys to namespace {spec.namespace}, but environment "
            f"{env.name!r} is namespace {env.namespace}: fix the overlay or the environment",
            environment=env.name,
        )
    if env.analysis_templates:
        spec = with_monitoring(spec, env.analysis_templates)
    if spec.engine != env.engine:
        spec = spec.with_changes(engine=env.engine)
    namespaces, others = split_namespaces(objects)
    return Placement(spec, others, namespaces)


def check_spec(env: Environment, spec: ReleaseSpec, app: str, image: str) -> ReleaseSpec:
    """A given spec, checked against the environment and the app and image also given.

    Raises:
        ConfigError: its namespace, strategy kind, app or image conflicts.
    """
    settle("spec.namespace", spec.namespace, env.name, env.namespace)
    settle("spec.strategy", spec.kind.value, env.name, strategy_kind(env.strategy))
    for name, given, have in (("app", app, spec.app), ("image", image, spec.image)):
        if given and given != have:
            raise ConfigError(f"{name}={given!r} differs from the spec's {have!r}: give one")
    if "engine" in spec.model_fields_set:  # said in the spec: it must agree with the environment
        settle("spec.engine", spec.engine, env.name, env.engine)
    return spec if spec.engine == env.engine else spec.with_changes(engine=env.engine)


@dataclass(frozen=True)
class Stage:
    """One environment of a delivery: where it goes, what is released, who approves."""

    cluster: KubernetesCluster
    overlay: Path
    placed: Placement
    human: bool
    prometheus: PrometheusServer
    runner: AnalysisRunner
    environment: Environment | None = None


def chain(
    envs: tuple[str, ...],
    environment: Environment | None,
    app: str,
    production_strategy: dict[str, Any] | None,
    templates: Sequence[AnalysisTemplate],
) -> dict[str, Environment]:
    """The Environment blocks of the branch's environments up to `environment` (none without it).

    The ones before it are the blocks saved under their names (staging before production).

    Raises:
        ConfigError: `environment` is not one the branch deploys to, a block is missing, or
            the production strategy or templates conflict with a block (all before any work).
    """
    if environment is None:
        return {}
    last = environment.name
    if last not in envs:
        raise ConfigError(
            f"environment {last!r} is not one the branch deploys to ({' -> '.join(envs)})",
            environment=last,
        )
    blocks = {e: load_environment(e) for e in envs[: envs.index(last)]}
    blocks[last] = environment
    for name, block in blocks.items():
        check_templates(block, templates, block.cluster)
        strategy_of(block, app, production_strategy if name == "production" else None)
    return blocks


def stage_in(
    block: Environment,
    app: str,
    image: str,
    strategy: dict[str, Any] | None,
    app_dir: Path,
    prometheus: PrometheusServer,
    runner: AnalysisRunner,
    templates: Sequence[AnalysisTemplate],
    root: Path = ROOT,
) -> Stage:
    """A delivery's stage in an Environment; its Prometheus, if it names one, replaces the given.

    Raises:
        ConfigError: the overlay cannot be placed in the environment (see place).
    """
    placed = place(block, app, image, strategy, app_dir, root)
    if block.prometheus is not None:
        prometheus, runner = block.prometheus, runner_for(block.prometheus, templates, False)
    overlay = root / block.overlay_dir(app, app_dir)
    return Stage(block.cluster, overlay, placed, block.approval_required, prometheus, runner, block)

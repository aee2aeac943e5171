"""The manifest gate: render a kustomize overlay and have the apiserver dry-run every object."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from blocks.tools import find_tool
from core.errors import ConfigError
from tasks import RETRIES, is_transient
from tasks.kube import FIELD_MANAGER, api_for
from tasks.quality import run_tool

_WARNING = re.compile(r'^\d{3} \S+ "(.*)"$')


def first_lines(text: str, count: int = 5) -> str:
    """The first `count` non-blank lines of a tool's output, on one line."""
    return " | ".join([s.strip() for s in text.splitlines() if s.strip()][:count])


@task(name="render-overlay", cache_policy=NO_CACHE)
def render_overlay(overlay_dir: str | Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize <overlay_dir>` renders.

    Raises:
        ConfigError: kustomize failed (its first error lines are in the message).
    """
    proc = run_tool([find_tool("kubectl"), "kustomize", str(overlay_dir)])
    if proc.returncode != 0:
        raise ConfigError(
            f"kustomize could not render the overlay: {first_lines(proc.stderr)}",
            overlay=str(overlay_dir),
        )
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"HTTP {exc.status} {exc.reason}"


def _warnings(response: Any) -> list[str]:
    """The texts of a response's Warning headers (`299 - "text"`)."""
    found = response.headers.getlist("Warning") if response.headers else []
    return [m.group(1).replace('\\"', '"') if (m := _WARNING.match(w)) else w for w in found]


@task(name="validate-manifests", cache_policy=NO_CACHE, **RETRIES)
def validate_manifests(cluster: KubernetesCluster, objects: list[dict[str, Any]]) -> list[str]:
    """Server-side dry-run (dryRun=All, server-side apply) of every object; one line per problem.

    The overlay's own Namespace objects are applied for real first (idempotent, as the deploy
    would): a namespaced object cannot be dry-run into a namespace that does not exist, and Pod
    Security Admission reads the namespace's labels. Everything else is only dry-run. A workload
    whose pod template breaks the namespace's Pod Security level is reported as rejected (the
    apiserver admits the workload with a "would violate PodSecurity" warning, then refuses its
    pods). Transient faults are raised, so the task retries.

    Args:
        cluster: the cluster block.
        objects: the rendered overlay (see render_overlay); never modified.

    Returns:
        One line per rejected object, e.g. "Deployment kyb-production/kyb-platform: rejected by
        Pod Security Admission: ..."; empty when the apiserver accepts all of them.
    """
    dyn = DynamicClient(api_for(cluster))
    log = get_run_logger()
    first = sorted(objects, key=lambda o: o.get("kind") != "Namespace")  # stable: order kept
    problems = []
    for obj in first:
        kind, meta = obj.get("kind", "?"), obj.get("metadata") or {}
        what = f"{kind} {meta.get('name', '?')}"
        try:
            resource = dyn.resources.get(api_version=obj.get("apiVersion"), kind=kind)
        except ResourceNotFoundError:
            problems.append(
                f"{what}: {obj.get('apiVersion')}/{kind} is not served by this "
                "apiserver (is its CRD installed?)"
            )
            continue
        body = copy.deepcopy(obj)
        ns = None
        if resource.namespaced:
            ns = meta.get("namespace") or cluster.namespace
            body.setdefault("metadata", {})["namespace"] = ns
            what = f"{kind} {ns}/{meta.get('name', '?')}"
        dry = None if kind == "Namespace" else "All"
        try:
            answer = dyn.server_side_apply(
                resource,
                body=body,
                namespace=ns,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                dry_run=dry,
                serialize=False,
            )
        except ApiException as exc:
            if is_transient(exc):
                raise
            problems.append(f"{what}: rejected: {_message(exc)}")
            continue
        for warning in _warnings(answer):
            if "PodSecurity" in warning:
                problems.append(f"{what}: rejected by Pod Security Admission: {warning}")
            else:
                log.warning("%s: %s", what, warning)
    return problems

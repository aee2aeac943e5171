"""Analysis templates and their secret arguments, read from the release's cluster as Argo does.

A release names templates by `templateName` (an AnalysisTemplate in its namespace) or with
`clusterScope: true` (a ClusterAnalysisTemplate). A template passed to the flow wins; then the
cluster's; then the built-ins (success-rate, error-rate, latency-p95).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Collection
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import ValidationError

from blocks import KubernetesCluster
from core.analysis.templates import AnalysisTemplate
from core.analysis.verdict import AnalysisRunner
from core.errors import ConfigError
from core.release.spec import ReleaseSpec
from tasks import RETRIES, kube
from tasks.prometheus import PrometheusRunner

GROUP, VERSION = "argoproj.io", "v1alpha1"


def _refused(exc: ApiException, what: str) -> ConfigError:
    return ConfigError(
        f"the cluster refused to read {what} ({exc.status} {exc.reason}): grant the pipeline's "
        "ServiceAccount get on it (deploy/rbac/pipeline-rbac.yaml)"
    )


@task(name="k8s-analysis-templates", cache_policy=NO_CACHE, **RETRIES)
def read_templates(
    cluster: KubernetesCluster, namespace: str, keys: Collection[str]
) -> dict[str, AnalysisTemplate]:
    """The templates `keys` name that exist on the cluster ({key: template}); absent ones left out.

    Raises:
        ConfigError: a template exists but is not one this pipeline can run (naming it and why),
            or reading it was forbidden.
    """
    api = client.CustomObjectsApi(kube.api_for(cluster))
    found: dict[str, AnalysisTemplate] = {}
    for key in sorted(set(keys)):
        cluster_wide = key.startswith("cluster/")
        name = key.removeprefix("cluster/")
        kind = "ClusterAnalysisTemplate" if cluster_wide else "AnalysisTemplate"
        what = f"{kind} {name}" if cluster_wide else f"{kind} {namespace}/{name}"
        try:
            if cluster_wide:
                obj = api.get_cluster_custom_object(
                    GROUP, VERSION, "clusteranalysistemplates", name
                )
            else:
                obj = api.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "analysistemplates", name
                )
        except ApiException as exc:
            if exc.status == 404:
                continue
            if exc.status in (401, 403):
                raise _refused(exc, what) from None
            raise
        try:
            found[key] = AnalysisTemplate.model_validate(obj)
        except (ValidationError, ValueError) as exc:
            raise ConfigError(f"{what} cannot be run: {exc}") from None
    return found


def _decoded(data: dict[str, str] | None, key: str) -> str | None:
    raw = (data or {}).get(key)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


@task(name="k8s-analysis-secrets", cache_policy=NO_CACHE, **RETRIES)
def read_secrets(
    cluster: KubernetesCluster, namespace: str, templates: Collection[AnalysisTemplate]
) -> dict[str, dict[str, str]]:
    """The values of the templates' `valueFrom.secretKeyRef` arguments, by template key and name.

    Values are never logged; reports mask them (core/analysis/render.py).

    Raises:
        ConfigError: a Secret or key is missing, or reading it was forbidden.
    """
    core = client.CoreV1Api(kube.api_for(cluster))
    out: dict[str, dict[str, str]] = {}
    for template in templates:
        for arg in template.args:
            if arg.value_from is None:
                continue
            ref = arg.value_from.secret_key_ref
            try:
                secret = core.read_namespaced_secret(ref.name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    raise ConfigError(
                        f"template {template.name}: Secret {namespace}/{ref.name} (argument "
                        f"{arg.name!r}) does not exist"
                    ) from None
                if exc.status in (401, 403):
                    raise _refused(exc, f"Secret {namespace}/{ref.name}") from None
                raise
            value = _decoded(secret.data, ref.key)
            if value is None:
                raise ConfigError(
                    f"template {template.name}: Secret {namespace}/{ref.name} has no key "
                    f"{ref.key!r} (argument {arg.name!r})"
                )
            out.setdefault(template.key, {})[arg.name] = value
    return out


def for_release(
    runner: AnalysisRunner, cluster: KubernetesCluster, spec: ReleaseSpec
) -> AnalysisRunner:
    """The runner with the cluster's templates the release names, and their secret arguments.

    Templates passed to the flow are not looked up; a cluster template replaces a built-in of
    its name, as it would in Argo (which has no built-ins).
    """
    if not isinstance(runner, PrometheusRunner):
        return runner
    keys = {key for _, ref in spec.analysis_refs() for key in ref.names}
    wanted = keys - set(runner.given)  # none (no analysis): no task run that reads nothing
    found = read_templates(cluster, spec.namespace, wanted) if wanted else {}
    templates: dict[str, Any] = {**runner.templates, **found}
    used = [templates[k] for k in keys if k in templates]
    secrets = (
        read_secrets(cluster, spec.namespace, used)
        if any(a.value_from for t in used for a in t.args)
        else {}
    )
    return dataclasses.replace(runner, templates=templates, secrets=secrets)

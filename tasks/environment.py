"""The environment boundary: load an Environment block by name, read its Namespace as it is."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from blocks import Environment, KubernetesCluster
from core.delivery.environment import namespace_drift
from core.errors import ConfigError
from tasks import RETRIES
from tasks.kube import api_for, to_dict


def _saved_names() -> list[str]:
    slug = Environment.get_block_type_slug()
    with get_client(sync_client=True) as api:
        try:
            docs = api.read_block_documents_by_type(slug)
        except ObjectNotFound:  # the block type is not registered yet
            return []
    return sorted(str(d.name) for d in docs if d.name)


@task(name="load-environment", cache_policy=NO_CACHE)
def load_environment(name: str) -> Environment:
    """The saved Environment block called `name`.

    Raises:
        ConfigError: there is none (the message lists the saved ones).
    """
    try:
        return Environment.load(name)
    except ValueError:
        known = ", ".join(_saved_names()) or "none is saved"
        raise ConfigError(
            f"no environment {name!r} ({known}): save a KYB Environment block named {name!r}, "
            "or name one of those",
            environment=name,
        ) from None


@task(name="check-namespaces", cache_policy=NO_CACHE, **RETRIES)
def check_namespaces(cluster: KubernetesCluster, declared: list[dict[str, Any]]) -> list[str]:
    """How the live Namespaces differ from the overlay's; the pipeline only reads them.

    Args:
        cluster: the environment's cluster block (its user may `get` its own Namespace).
        declared: the overlay's Namespace objects.

    Returns:
        One line per difference (a missing Namespace, a label with another value); empty if none.

    Raises:
        ConfigError: the block's user may not read the Namespace (403: missing, or not bound).
    """
    api = api_for(cluster)
    lines = []
    for want in declared:
        name = (want.get("metadata") or {}).get("name", "")
        try:
            live = to_dict(api, client.CoreV1Api(api).read_namespace(name))
        except ApiException as exc:
            if exc.status == 403:
                raise ConfigError(
                    f"cannot read Namespace {name} (HTTP 403: it does not exist, or the "
                    "pipeline is not bound there): an administrator creates it from the overlay's "
                    "namespace.yaml and applies deploy/rbac/<environment>.yaml",
                    namespace=name,
                ) from None
            if exc.status != 404:
                raise
            live = None
        lines += namespace_drift(want, live)
    return lines

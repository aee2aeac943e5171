"""What the tests add to the administrator's RBAC steps (sandbox/rbac.py): act as a ServiceAccount.

`bind` puts an environment's RoleBindings (and its Secret role) into a test namespace;
`cluster_as_service_account` mints a token of that environment's ServiceAccount; `can_i` and
`whoami` ask the apiserver what the token's user may do and who it is.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubernetes import client

from blocks import KubernetesCluster
from sandbox.rbac import (
    ENVIRONMENTS,
    MANIFEST,
    SYSTEM_NAMESPACE,
    account,
    apply_objects,
    cluster_as,
    environment_file,
    load,
    retarget,
    unbind,
)
from tasks.kube import api_for

__all__ = [
    "ENVIRONMENTS",
    "MANIFEST",
    "SYSTEM_NAMESPACE",
    "account",
    "bind",
    "can_i",
    "cluster_as_service_account",
    "environment_file",
    "load",
    "unbind",
    "whoami",
]
ROLE = "kyb-pipeline-release"  # release and rollback
ENVIRONMENT_ROLE = "kyb-pipeline-environment"  # the delivery flow's overlay objects
SECRETS_ROLE = "kyb-pipeline-secrets"  # an environment's own generated Secrets, by name


def bind(admin: KubernetesCluster, environment: str, namespaces: Iterable[str]) -> list[str]:
    """Apply deploy/rbac/ and bind `environment`'s ServiceAccount in each namespace given.

    The namespaces get the environment file's Role and RoleBindings as they are, re-targeted.
    """
    docs = load(MANIFEST) + [d for ns in namespaces for d in retarget(environment, ns)]
    return apply_objects(admin, docs)


def cluster_as_service_account(
    admin: KubernetesCluster, environment: str, namespace: str, ttl_seconds: int = 900
) -> KubernetesCluster:
    """A block (not saved) with a fresh token of `environment`'s ServiceAccount."""
    return cluster_as(admin, account(environment), namespace, ttl_seconds)


def can_i(
    cluster: KubernetesCluster,
    verb: str,
    resource: str,
    namespace: str = "",
    group: str = "",
    name: str = "",
) -> bool:
    """Whether the block's user may do `verb` on `resource` (SelfSubjectAccessReview).

    Args:
        cluster: the block whose user asks.
        verb: e.g. "patch".
        resource: e.g. "deployments", or "deployments/scale" for a subresource.
        namespace: the namespace ("" for cluster-scoped resources).
        group: the API group ("" for core, "apps", ...).
        name: the object's name, for rules with resourceNames.
    """
    resource_name, _, sub = resource.partition("/")
    attrs = client.V1ResourceAttributes(
        verb=verb,
        resource=resource_name,
        subresource=sub or None,
        group=group,
        namespace=namespace or None,
        name=name or None,
    )
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs)
    )
    answer = client.AuthorizationV1Api(api_for(cluster)).create_self_subject_access_review(review)
    return bool(answer.status.allowed)


def whoami(cluster: KubernetesCluster) -> str:
    """The user name the API server sees for the block's credentials (SelfSubjectReview)."""
    api = client.AuthenticationV1Api(api_for(cluster))
    review = api.create_self_subject_review(client.V1SelfSubjectReview())
    return str(review.status.user_info.username)

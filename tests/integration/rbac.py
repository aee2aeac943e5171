"""Admin helpers the tests use: apply the pipeline's RBAC, bind it, act as its ServiceAccount.

These are an administrator's steps (run with an admin's cluster block, once per cluster and per
environment namespace, or by the tests), not release steps, so they are plain functions.
The manifest is `deploy/rbac/pipeline-rbac.yaml`, the same file `kubectl apply -f` takes.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from blocks import KubernetesCluster
from core.errors import ConfigError
from tasks.kube import APPLY, api_for

RBAC_DIR = Path(__file__).resolve().parents[2] / "deploy" / "rbac"
MANIFEST = RBAC_DIR / "pipeline-rbac.yaml"  # Namespace, ServiceAccount, ClusterRole
BINDINGS = RBAC_DIR / "rolebindings.yaml"  # one RoleBinding per environment namespace
SYSTEM_NAMESPACE = "kyb-system"
ACCOUNT = "kyb-pipeline"
ROLE = "kyb-pipeline-release"  # release and rollback
ENVIRONMENT_ROLE = "kyb-pipeline-environment"  # the delivery flow's overlay objects
FIELD_MANAGER = "kyb-rbac"
MIN_TTL = 600  # the apiserver refuses TokenRequests shorter than 10 minutes


def load(path: Path) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML manifest (empty documents skipped).

    Raises:
        ConfigError: the file cannot be read or is not a list of Kubernetes objects.
    """
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read manifest {path}: {exc}") from None
    for doc in docs:
        if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("metadata"):
            raise ConfigError(f"manifest {path} holds a document without kind and metadata")
    return docs


def _writers(api: client.ApiClient) -> dict[str, tuple[bool, Callable[..., Any]]]:
    """Kind -> (namespaced?, the server-side apply call) for the kinds the manifests hold."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    return {
        "Namespace": (False, core.patch_namespace),
        "ServiceAccount": (True, core.patch_namespaced_service_account),
        "ClusterRole": (False, rbac.patch_cluster_role),
        "RoleBinding": (True, rbac.patch_namespaced_role_binding),
    }


def apply_objects(admin: KubernetesCluster, objects: Iterable[dict[str, Any]]) -> list[str]:
    """Server-side apply each object (create or update, idempotent) as `kubectl apply` would.

    Returns:
        "Kind/namespace/name" (or "Kind/name") of each object applied, in order.

    Raises:
        ConfigError: an object of a kind this module does not apply, or without a namespace.
    """
    api = api_for(admin)
    writers, done = _writers(api), []
    for obj in objects:
        kind, meta = obj["kind"], obj["metadata"]
        if kind not in writers:
            raise ConfigError(f"cannot apply kind {kind!r}: only {sorted(writers)}")
        namespaced, write = writers[kind]
        args = (meta["name"], meta.get("namespace")) if namespaced else (meta["name"],)
        if namespaced and not args[1]:
            raise ConfigError(f"{kind} {meta['name']!r} needs a metadata.namespace")
        write(*args, obj, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY)
        done.append(
            "/".join(
                [kind, meta["namespace"], meta["name"]] if namespaced else [kind, meta["name"]]
            )
        )
    return done


def bindings(namespace: str) -> list[dict[str, Any]]:
    """The shipped bindings file's RoleBindings (one per role), re-targeted at `namespace`."""
    found: dict[str, dict[str, Any]] = {}
    for doc in load(BINDINGS):
        if doc["kind"] == "RoleBinding":
            found.setdefault(doc["metadata"]["name"], doc)
    if not found:
        raise ConfigError(f"{BINDINGS} holds no RoleBinding to bind the pipeline with")
    for rb in found.values():
        rb["metadata"]["namespace"] = namespace
    return list(found.values())


def apply_rbac(admin: KubernetesCluster, namespaces: Iterable[str] = ()) -> list[str]:
    """Apply the pipeline's ServiceAccount and ClusterRole, and bind the role in `namespaces`.

    Args:
        admin: a block whose user may create RBAC objects (and holds every verb it grants).
        namespaces: the environment namespaces the pipeline may release to (they must exist).

    Returns:
        "Kind/namespace/name" of each object applied.
    """
    return apply_objects(admin, [*load(MANIFEST), *(b for ns in namespaces for b in bindings(ns))])


def unbind(admin: KubernetesCluster, namespace: str) -> None:
    """Delete the pipeline's RoleBindings in `namespace` (nothing if they are not there)."""
    rbac = client.RbacAuthorizationV1Api(api_for(admin))
    for name in (ROLE, ENVIRONMENT_ROLE):
        try:
            rbac.delete_namespaced_role_binding(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise


def _kubeconfig(api: client.ApiClient, token: str, namespace: str) -> str:
    """A kubeconfig for the admin's API server (same URL and CA) with a bearer token."""
    conf = api.configuration
    cluster: dict[str, Any] = {"server": conf.host}
    if not conf.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    elif conf.ssl_ca_cert:  # a file: from the kubeconfig's CA data or the in-cluster CA
        cluster["certificate-authority-data"] = base64.b64encode(
            Path(conf.ssl_ca_cert).read_bytes()
        ).decode()
    user = f"{SYSTEM_NAMESPACE}/{ACCOUNT}"
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": ACCOUNT,
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": ACCOUNT,
                    "context": {"cluster": "cluster", "user": user, "namespace": namespace},
                }
            ],
        }
    )


def cluster_as_service_account(
    admin: KubernetesCluster,
    namespace: str,
    ttl_seconds: int = 3600,
    account: str = ACCOUNT,
    account_namespace: str = SYSTEM_NAMESPACE,
) -> KubernetesCluster:
    """A cluster block that authenticates as the pipeline's ServiceAccount.

    The token comes from the TokenRequest API: bound to the ServiceAccount, signed by the
    apiserver, expiring after `ttl_seconds`, and never stored in a Secret. The block is not saved.

    Args:
        admin: a block whose user may create tokens for the ServiceAccount.
        namespace: the block's working namespace (one the role is bound in).
        ttl_seconds: the token's lifetime, at least 600 (the apiserver's minimum).
        account: the ServiceAccount's name.
        account_namespace: its namespace.

    Raises:
        ConfigError: ttl_seconds is too short, or the ServiceAccount does not exist.
    """
    if ttl_seconds < MIN_TTL:
        raise ConfigError(f"ttl_seconds must be at least {MIN_TTL}, not {ttl_seconds}")
    api = api_for(admin)
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=ttl_seconds)
    )  # no audiences: the apiserver's own
    try:
        issued = client.CoreV1Api(api).create_namespaced_service_account_token(
            account, account_namespace, request
        )
    except ApiException as exc:
        if exc.status == 404:
            raise ConfigError(
                f"ServiceAccount {account_namespace}/{account} does not exist: apply {MANIFEST}"
            ) from None
        raise
    text = _kubeconfig(api, issued.status.token, namespace)
    return KubernetesCluster(kubeconfig=SecretStr(text), namespace=namespace)


def can_i(
    cluster: KubernetesCluster, verb: str, resource: str, namespace: str = "", group: str = ""
) -> bool:
    """Whether the block's user may do `verb` on `resource` (SelfSubjectAccessReview).

    Args:
        cluster: the block whose user asks.
        verb: e.g. "patch".
        resource: e.g. "deployments", or "deployments/scale" for a subresource.
        namespace: the namespace ("" for cluster-scoped resources).
        group: the API group ("" for core, "apps", ...).
    """
    name, _, sub = resource.partition("/")
    attrs = client.V1ResourceAttributes(
        verb=verb,
        resource=name,
        subresource=sub or None,
        group=group,
        namespace=namespace or None,
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

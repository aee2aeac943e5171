"""An administrator's steps for the pipeline's identities: namespaces, RBAC, per-environment tokens.

Run with an admin's cluster block (the platform's `local` one) when the platform saves its blocks,
and by the tests: create the environment namespaces from their overlays, apply deploy/rbac/, and
mint each environment's ServiceAccount a token for its own cluster block, and attach each
environment's HTTPRoutes to the platform's Gateway. The pipeline never does
these itself (it may not write Namespaces nor RBAC objects).
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from blocks import KubernetesCluster, PrometheusServer
from blocks.tools import find_tool
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
RBAC_DIR = ROOT / "deploy" / "rbac"
MANIFEST = RBAC_DIR / "pipeline-rbac.yaml"  # kyb-system, ServiceAccounts, ClusterRole(Binding)s
ENVIRONMENTS = ("dev", "staging", "production")  # each has deploy/rbac/<name>.yaml
OVERLAYS = ROOT / "examples" / "kyb-platform" / "deploy"  # each environment's namespace.yaml
SYSTEM_NAMESPACE = "kyb-system"
FIELD_MANAGER = "kyb-rbac"
MIN_TTL = 600  # the apiserver refuses TokenRequests shorter than 10 minutes
APPLY = "application/apply-patch+yaml"


def account(environment: str) -> str:
    """The pipeline's ServiceAccount of an environment, e.g. kyb-pipeline-staging."""
    return f"kyb-pipeline-{environment}"


def namespace_of(environment: str) -> str:
    """The example's namespace of an environment, e.g. kyb-staging."""
    return f"kyb-{environment}"


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


def environment_file(environment: str) -> Path:
    """deploy/rbac/<environment>.yaml: the environment's Secret role and RoleBindings."""
    return RBAC_DIR / f"{environment}.yaml"


def _writers(api: client.ApiClient) -> dict[str, tuple[bool, Callable[..., Any]]]:
    """Kind -> (namespaced?, the server-side apply call) for the kinds the manifests hold."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    return {
        "Namespace": (False, core.patch_namespace),
        "ServiceAccount": (True, core.patch_namespaced_service_account),
        "Secret": (True, core.patch_namespaced_secret),  # the in-cluster worker's API auth
        "Deployment": (True, client.AppsV1Api(api).patch_namespaced_deployment),
        "ClusterRole": (False, rbac.patch_cluster_role),
        "ClusterRoleBinding": (False, rbac.patch_cluster_role_binding),
        "Role": (True, rbac.patch_namespaced_role),
        "RoleBinding": (True, rbac.patch_namespaced_role_binding),
    }


def apply_objects(admin: KubernetesCluster, objects: Iterable[dict[str, Any]]) -> list[str]:
    """Server-side apply each object (create or update, idempotent) as `kubectl apply` would.

    Returns:
        "Kind/namespace/name" (or "Kind/name") of each object applied, in order.

    Raises:
        ConfigError: an object of a kind this module does not apply, or without a namespace.
    """
    done = []
    with admin.api_client() as api:
        writers = _writers(api)
        for obj in objects:
            kind, meta = obj["kind"], obj["metadata"]
            if kind not in writers:
                raise ConfigError(f"cannot apply kind {kind!r}: only {sorted(writers)}")
            namespaced, write = writers[kind]
            if namespaced and not meta.get("namespace"):
                raise ConfigError(f"{kind} {meta['name']!r} needs a metadata.namespace")
            args = (meta["name"], meta["namespace"]) if namespaced else (meta["name"],)
            write(*args, obj, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY)
            done.append("/".join([kind, *args[1:], args[0]]))
    return done


def retarget(environment: str, namespace: str) -> list[dict[str, Any]]:
    """The environment's Role and RoleBindings (deploy/rbac/<environment>.yaml) in `namespace`."""
    docs = load(environment_file(environment))
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    return docs


def rendered_namespace(environment: str) -> dict[str, Any]:
    """The Namespace object the environment's overlay renders (kubectl kustomize).

    Raises:
        ConfigError: kustomize fails, or the overlay has no Namespace.
    """
    overlay = OVERLAYS / environment
    proc = subprocess.run(
        [find_tool("kubectl"), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise ConfigError(f"kubectl kustomize {overlay} failed: {proc.stderr.strip()[:300]}")
    found = [d for d in yaml.safe_load_all(proc.stdout) if d and d.get("kind") == "Namespace"]
    if not found:
        raise ConfigError(f"overlay {overlay} has no Namespace")
    return {k: found[0][k] for k in ("apiVersion", "kind", "metadata")}


def apply_rbac(admin: KubernetesCluster, environments: Iterable[str] = ENVIRONMENTS) -> list[str]:
    """Create each environment's namespace from its overlay, then apply deploy/rbac/ for it.

    Args:
        admin: a block whose user may create Namespaces and RBAC objects (and holds every verb
            it grants).
        environments: the environments to set up (each has an overlay and a deploy/rbac file).

    Returns:
        "Kind/namespace/name" of each object applied.
    """
    envs = list(environments)
    namespaces = [rendered_namespace(env) for env in envs]
    bindings = [doc for env in envs for doc in load(environment_file(env))]
    return apply_objects(admin, [*namespaces, *load(MANIFEST), *bindings])


def route_file(environment: str) -> Path:
    """The overlay's route.yaml: the environment's HTTPRoutes.

    An administrator's, like the Namespace: not in the kustomization, so the pipeline never
    applies it (it may only move a canary route's weights).
    """
    return OVERLAYS / environment / "route.yaml"


def apply_routes(admin: KubernetesCluster, environments: Iterable[str] = ENVIRONMENTS) -> list[str]:
    """Attach each environment's HTTPRoutes (its overlay's route.yaml) to the shared Gateway.

    Returns:
        "HTTPRoute/namespace/name" of each route applied.
    """
    from sandbox.components.traefik import apply

    routes = [
        doc for env in environments if route_file(env).exists() for doc in load(route_file(env))
    ]
    with admin.api_client() as api:
        apply(api, routes)
    return [f"HTTPRoute/{r['metadata']['namespace']}/{r['metadata']['name']}" for r in routes]


def unbind(admin: KubernetesCluster, namespace: str) -> None:
    """Delete the pipeline's Role and RoleBindings in `namespace` (nothing if not there)."""
    with admin.api_client() as api:
        rbac = client.RbacAuthorizationV1Api(api)
        calls = [
            (rbac.delete_namespaced_role_binding, name)
            for name in ("kyb-pipeline-release", "kyb-pipeline-environment", "kyb-pipeline-secrets")
        ] + [(rbac.delete_namespaced_role, "kyb-pipeline-secrets")]
        for delete, name in calls:
            try:
                delete(name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise


def _kubeconfig(api: client.ApiClient, token: str, user: str, namespace: str) -> str:
    """A kubeconfig for the admin's API server (same URL and CA) with a bearer token."""
    conf = api.configuration
    cluster: dict[str, Any] = {"server": conf.host}
    if not conf.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    elif conf.ssl_ca_cert:  # a file: from the kubeconfig's CA data or the in-cluster CA
        cluster["certificate-authority-data"] = base64.b64encode(
            Path(conf.ssl_ca_cert).read_bytes()
        ).decode()
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": user,
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": user,
                    "context": {"cluster": "cluster", "user": user, "namespace": namespace},
                }
            ],
        }
    )


def cluster_as(
    admin: KubernetesCluster,
    service_account: str,
    namespace: str,
    ttl_seconds: int = 3600,
    account_namespace: str = SYSTEM_NAMESPACE,
) -> KubernetesCluster:
    """A cluster block (not saved) that authenticates as a ServiceAccount.

    The token comes from the TokenRequest API: bound to the ServiceAccount, signed by the
    apiserver, expiring after `ttl_seconds`, and never stored in a Secret.

    Args:
        admin: a block whose user may create tokens for the ServiceAccount.
        service_account: the ServiceAccount's name, e.g. kyb-pipeline-staging.
        namespace: the block's working namespace.
        ttl_seconds: the token's lifetime, at least 600 (the apiserver's minimum).
        account_namespace: the ServiceAccount's namespace.

    Raises:
        ConfigError: ttl_seconds is too short, or the ServiceAccount does not exist.
    """
    if ttl_seconds < MIN_TTL:
        raise ConfigError(f"ttl_seconds must be at least {MIN_TTL}, not {ttl_seconds}")
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=ttl_seconds)
    )  # no audiences: the apiserver's own
    with admin.api_client() as api:
        try:
            issued = client.CoreV1Api(api).create_namespaced_service_account_token(
                service_account, account_namespace, request
            )
        except ApiException as exc:
            if exc.status == 404:
                raise ConfigError(
                    f"ServiceAccount {account_namespace}/{service_account} does not exist: "
                    f"apply {MANIFEST}"
                ) from None
            raise
        user = f"{account_namespace}/{service_account}"
        text = _kubeconfig(api, issued.status.token, user, namespace)
    return KubernetesCluster(kubeconfig=SecretStr(text), namespace=namespace)


TOKEN_TTL = 7 * 24 * 3600  # the saved blocks' tokens; `sandbox up` (and each test session) renews


def save_environments(admin: KubernetesCluster, prometheus: PrometheusServer) -> list[str]:
    """Set up dev, staging and production, each with its own identity, and save their blocks.

    For each environment: its namespace (from the overlay) and deploy/rbac/ are applied, then a
    KubernetesCluster block of that name holding a token of its own ServiceAccount, and an
    Environment block of that name referencing it and `prometheus` (a saved block). Production
    is blue-green behind a person's approval, as in the seed; checks go through the service proxy.
    Call it with the Prefect API set.

    Returns:
        The names of the Environment blocks saved.
    """
    from blocks import Environment

    apply_rbac(admin, ENVIRONMENTS)
    apply_routes(admin, ENVIRONMENTS)
    for env in ENVIRONMENTS:
        namespace = namespace_of(env)
        cluster = cluster_as(admin, account(env), namespace, ttl_seconds=TOKEN_TTL)
        cluster.save(env, overwrite=True)  # referenced below, not copied: one token to rotate
        production = env == "production"
        Environment(
            name=env,
            cluster=cluster,
            namespace=namespace,
            overlay=f"examples/{{app}}/deploy/{env}",
            strategy=PRODUCTION_STRATEGY if production else None,
            approval_required=production,
            prometheus=prometheus,
        ).save(env, overwrite=True)
    return list(ENVIRONMENTS)


#: The seed's production strategy: blue-green, promoted by a person.
PRODUCTION_STRATEGY = {
    "blueGreen": {
        "activeService": "{app}",
        "previewService": "{app}-preview",
        "autoPromotionEnabled": False,
    }
}

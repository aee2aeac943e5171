"""The objects Traefik's Gateway API provider needs in the cluster (pure: no client, no I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

RBAC_FILE = Path(__file__).with_name("rbac.yaml")  # Namespace, ServiceAccount, ClusterRole(Binding)
NAMESPACE = "kyb-traefik"  # Traefik's ServiceAccount and the shared Gateway live here
SERVICE_ACCOUNT = "traefik"
GATEWAY_CLASS = "traefik"
CONTROLLER = "traefik.io/gateway-controller"  # the controllerName Traefik answers for
GATEWAY = "kyb"
LISTENER = "web"  # the Gateway listener: plain HTTP on Traefik's `web` entry point
MANAGED = {"app.kubernetes.io/managed-by": "kyb-sandbox"}


def rbac() -> list[dict[str, Any]]:
    """Traefik's Namespace, ServiceAccount, ClusterRole and ClusterRoleBinding (rbac.yaml)."""
    return [doc for doc in yaml.safe_load_all(RBAC_FILE.read_text()) if doc]


def gateway_class() -> dict[str, Any]:
    """GatewayClass `traefik`, served by Traefik's controller."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": GATEWAY_CLASS, "labels": dict(MANAGED)},
        "spec": {"controllerName": CONTROLLER},
    }


def gateway(port: int) -> dict[str, Any]:
    """The shared Gateway: one HTTP listener on `port` that routes of every namespace may use.

    Traefik binds a listener to the entry point whose address ends in the same port, so `port`
    must be the `web` entry point's port.
    """
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": GATEWAY, "namespace": NAMESPACE, "labels": dict(MANAGED)},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [
                {
                    "name": LISTENER,
                    "protocol": "HTTP",
                    "port": port,
                    "allowedRoutes": {"namespaces": {"from": "All"}},
                }
            ],
        },
    }


def parent_ref() -> dict[str, str]:
    """What an HTTPRoute puts in spec.parentRefs to attach to the shared Gateway."""
    return {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": NAMESPACE,
        "name": GATEWAY,
        "sectionName": LISTENER,
    }


def static_config(
    web: str, admin: str, apiserver: str, token_file: Path, ca_file: Path
) -> dict[str, Any]:
    """Traefik's static configuration: two loopback entry points, the Gateway API provider.

    Args:
        web: host:port of the `web` entry point, where routed traffic comes in.
        admin: host:port of the `traefik` entry point: /ping and the read-only API.
        apiserver: the apiserver's URL.
        token_file: the ServiceAccount token (Traefik reads the file; it is never in the config).
        ca_file: the apiserver's CA certificate.
    """
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},  # nothing dials out
        "entryPoints": {"web": {"address": web}, "traefik": {"address": admin}},
        "ping": {"entryPoint": "traefik"},
        "api": {"insecure": True, "dashboard": False},  # on the loopback admin entry point
        "log": {"level": "INFO", "noColor": True},
        "providers": {
            # route changes apply within ~0.2 s instead of Traefik's default 2 s
            "providersThrottleDuration": "200ms",
            "kubernetesGateway": {
                "endpoint": apiserver,
                "token": str(token_file),
                "certAuthFilePath": str(ca_file),
                "statusAddress": {"ip": web.rsplit(":", 1)[0]},
            },
        },
    }

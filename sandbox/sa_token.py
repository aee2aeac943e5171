"""Bound ServiceAccount tokens for the platform's own daemons (Traefik, Prometheus).

Minted with the TokenRequest API (never a long-lived Secret), kept in a 0600 file the daemon
reads, and renewed by `sandbox up` when half spent or refused (a rebuilt cluster signs with new
keys).
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx

from sandbox.files import write_file
from sandbox.rbac import TOKEN_TTL


def apiserver(kubeconfig: Path) -> tuple[str, bytes]:
    """The cluster's apiserver URL and CA certificate (PEM), from its kubeconfig."""
    from kubernetes import config

    with config.new_client_from_config(str(kubeconfig)) as api:
        conf = api.configuration
        return conf.host, Path(conf.ssl_ca_cert).read_bytes()


def accepted(kubeconfig: Path, token_file: Path, probe: str) -> bool:
    """The saved token may GET `probe` (an API path its account is allowed to read)."""
    host, ca = apiserver(kubeconfig)
    try:
        resp = httpx.get(
            f"{host}{probe}",
            headers={"Authorization": f"Bearer {token_file.read_text()}"},
            verify=ssl.create_default_context(cadata=ca.decode()),
            timeout=5,
            trust_env=False,  # the caller's proxy settings never apply to the platform's apiserver
        )
    except (httpx.HTTPError, OSError):
        return False
    return resp.status_code == 200


def ensure_token(
    kubeconfig: Path, token_file: Path, namespace: str, account: str, probe: str
) -> None:
    """Mint a token for namespace/account into `token_file` when missing, half spent or refused."""
    from kubernetes import client, config

    fresh = token_file.exists() and time.time() - token_file.stat().st_mtime < TOKEN_TTL / 2
    if fresh and accepted(kubeconfig, token_file, probe):
        return
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_TTL)
    )
    with config.new_client_from_config(str(kubeconfig)) as api:
        issued = client.CoreV1Api(api).create_namespaced_service_account_token(
            account, namespace, request, _request_timeout=30
        )
    write_file(token_file, issued.status.token)

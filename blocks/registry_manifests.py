"""Read a manifest's digest through a registry's v2 API, with the block's credentials."""

from __future__ import annotations

import hashlib
import json

import httpx

from blocks.registry import ContainerRegistry
from blocks.registry_auth import read_limited, registry_auth, transport_failure
from core.ci.challenge import repository_scope
from core.errors import ConfigError, CredentialsError, TransientError

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


MANIFEST_LIMIT = 4 * 1024 * 1024  # bytes: distribution refuses manifests larger than 4 MiB


def manifest_digest(
    registry: ContainerRegistry, repository: str, reference: str, timeout: float = 30
) -> str | None:
    """The digest of a manifest, read through the registry's v2 API with the block's credentials.

    HEAD with the OCI and Docker manifest types in Accept; a registry that answers HEAD without
    Docker-Content-Digest is asked with GET and the digest is the sha256 of the body. A 401 is
    answered with Basic auth or a token for `repository:<repository>:pull` (RegistryAuth).

    Args:
        registry: The registry block.
        repository: The repository, e.g. "kyb/api".
        reference: A tag or a digest.
        timeout: Seconds for each request (the registry's and its token service's).

    Returns:
        The digest ("sha256:..."), or None when the registry has no such tag.

    Raises:
        CredentialsError: Credentials refused, missing, or without pull access to the repository.
        TransientError: 429/5xx, or no answer (refused, timed out).
        ConfigError: TLS failed, or another answer.
    """
    url = f"{registry.url}/v2/{repository}/manifests/{reference}"
    what = f"registry {registry.address}"
    auth = registry_auth(registry, repository_scope(repository), timeout)
    headers = {"Accept": MANIFEST_TYPES}
    try:
        with httpx.Client(verify=registry.verify_tls, timeout=timeout, auth=auth) as client:
            resp = client.head(url, headers=headers)
            digest = resp.headers.get("Docker-Content-Digest", "")
            if resp.status_code == 200 and not digest.startswith("sha256:"):
                with client.stream("GET", url, headers=headers) as resp:
                    body = read_limited(resp, MANIFEST_LIMIT, f"{what} (manifest)")
                digest = resp.headers.get("Docker-Content-Digest", "")
                if not digest.startswith("sha256:"):
                    digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
    except httpx.TransportError as exc:
        fix = f"set insecure=True if it serves plain HTTP, or verify_tls=False, in {auth.where}"
        raise transport_failure(exc, what, fix) from None
    status = resp.status_code
    if status == 200:
        return digest
    if status == 404:
        return None
    if status in (401, 403):
        raise CredentialsError(
            f"registry {registry.address} refused user {registry.username!r} (HTTP {status}) "
            f"reading {repository}:{reference}: check the credentials in {auth.where}"
        )
    if status == 429 or status >= 500:
        raise TransientError(f"registry {registry.address} answered HTTP {status}", url=url)
    raise ConfigError(f"registry {registry.address} answered HTTP {status} without a digest")


_INDEXES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def image_labels(
    registry: ContainerRegistry, repository: str, reference: str, timeout: float = 30
) -> dict[str, str] | None:
    """The labels of an image in the registry (its config's Labels), or None when it is absent.

    Reads the manifest (the first platform's, for an index), then the config blob it names;
    a blob redirect (to the registry's storage) is followed without the credentials.

    Raises:
        CredentialsError, TransientError, ConfigError: as manifest_digest.
    """
    base = f"{registry.url}/v2/{repository}"
    what = f"registry {registry.address}"
    auth = registry_auth(registry, repository_scope(repository), timeout)
    try:
        with httpx.Client(
            verify=registry.verify_tls, timeout=timeout, auth=auth, follow_redirects=True
        ) as client:
            manifest = _json(client, f"{base}/manifests/{reference}", what, auth.where)
            if manifest is None:
                return None
            if manifest.get("mediaType") in _INDEXES or "manifests" in manifest:
                first = (manifest.get("manifests") or [{}])[0].get("digest", "")
                manifest = _json(client, f"{base}/manifests/{first}", what, auth.where) or {}
            config_digest = (manifest.get("config") or {}).get("digest", "")
            config = _json(client, f"{base}/blobs/{config_digest}", what, auth.where) or {}
    except httpx.TransportError as exc:
        fix = f"set insecure=True if it serves plain HTTP, or verify_tls=False, in {auth.where}"
        raise transport_failure(exc, what, fix) from None
    labels = (config.get("config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def _json(client: httpx.Client, url: str, what: str, where: str) -> dict | None:
    """GET a manifest or blob as JSON (bounded); None on 404."""
    with client.stream("GET", url, headers={"Accept": MANIFEST_TYPES}) as resp:
        if resp.status_code == 404:
            return None
        if resp.status_code in (401, 403):
            raise CredentialsError(
                f"{what} refused the credentials (HTTP {resp.status_code}) in {where}"
            )
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientError(f"{what} answered HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise ConfigError(
                f"{what} answered HTTP {resp.status_code} for {url.rsplit('/v2/', 1)[-1]}"
            )
        body = read_limited(resp, MANIFEST_LIMIT, what)
    try:
        data = json.loads(body)
    except ValueError:
        raise ConfigError(f"{what} answered {url.rsplit('/v2/', 1)[-1]} with no JSON") from None
    return data if isinstance(data, dict) else None

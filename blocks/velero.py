"""ObjectStore and VeleroInstall blocks: where backups are kept, and the Velero that makes them."""

from __future__ import annotations

import re
import ssl
import time
from urllib.parse import urlsplit

import httpx
from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

from blocks._http import tls_cause
from blocks.cluster import KubernetesCluster
from core.errors import ConfigError, TransientError
from core.names import is_dns_label, is_dns_subdomain
from core.recovery.stored import refused, tls_failed, too_large

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3 bucket naming rules
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024  # the largest file read back from the object store
DOWNLOAD_TIMEOUT_SECONDS = 300.0  # the longest one such read may take, start to end
CONNECT_TIMEOUT_SECONDS = 30.0  # an object store that does not accept a connection by then is down


def _http_url(field: str, value: str, example: str) -> str:
    """Check value is http(s)://host[:port][/path] without credentials, query or fragment."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        ok = ok and (parts.port is None or parts.port > 0)
    except ValueError:  # bad port or IPv6 brackets
        ok = False
    if not ok:
        raise ValueError(f"{field} {value!r} must be http(s)://host[:port], e.g. {example}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(
            f"{field} must not carry a user, password, query or fragment: give scheme, host, port"
        )
    return value.rstrip("/")


class ObjectStore(Block):
    """An S3-compatible bucket (endpoint, bucket, region) and its access keys (secret)."""

    model_config = ConfigDict(hide_input_in_errors=True)  # never echo a key in errors

    _block_type_name = "KYB Object Store"
    _block_type_slug = "kyb-object-store"
    _logo_url = "https://raw.githubusercontent.com/PrefectHQ/prefect/420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/filesystem.png"
    _documentation_url = "https://docs.aws.amazon.com/AmazonS3/latest/API/Welcome.html"
    _description = "The S3-compatible bucket backups are kept in; its access keys are secrets."
    _code_example = """
    ```python
    from blocks import ObjectStore

    store = ObjectStore.load("BLOCK_NAME")
    print(store.bucket_url)  # http://127.0.0.1:39000/kyb-backups (path-style)
    ```
    """

    endpoint: str = Field(description="The S3 API's base URL, e.g. http://127.0.0.1:39000.")
    bucket: str = Field(description="The bucket backups are written to.")
    region: str = Field(default="us-east-1", description="The bucket's region.")
    access_key_id: SecretStr = Field(description="The access key id.")
    secret_access_key: SecretStr = Field(description="The secret access key.")

    @field_validator("endpoint")
    @classmethod
    def _valid_endpoint(cls, value: str) -> str:
        return _http_url("endpoint", value, "http://127.0.0.1:39000 or https://s3.amazonaws.com")

    @field_validator("bucket")
    @classmethod
    def _valid_bucket(cls, value: str) -> str:
        if not _BUCKET.fullmatch(value) or ".." in value:
            raise ValueError(
                f"bucket {value!r} is not an S3 bucket name: use 3 to 63 lowercase letters, "
                "digits, '.' and '-', starting and ending with a letter or digit"
            )
        return value

    @field_validator("region")
    @classmethod
    def _valid_region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError(f"region {value!r} is not a region name, e.g. us-east-1")
        return value

    @field_validator("access_key_id", "secret_access_key")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("access_key_id / secret_access_key: give both keys, not empty text")
        return value

    @property
    def bucket_url(self) -> str:
        """The bucket's path-style URL (no keys in it)."""
        return f"{self.endpoint}/{self.bucket}"


class VeleroInstall(Block):
    """A Velero server's cluster, namespace and backup storage location."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the nested kubeconfig is secret

    _block_type_name = "KYB Velero"
    _block_type_slug = "kyb-velero"
    _logo_url = "https://raw.githubusercontent.com/vmware-tanzu/velero/main/site/static/img/heroes/velero.svg"
    _documentation_url = "https://velero.io/docs/v1.18/api-types/"
    _description = "A Velero install: the cluster it runs for, its namespace and storage location."
    _code_example = """
    ```python
    from blocks import VeleroInstall
    from kubernetes.client import CustomObjectsApi

    velero = VeleroInstall.load("BLOCK_NAME")
    with velero.cluster.api_client() as api:
        CustomObjectsApi(api).list_namespaced_custom_object(
            "velero.io", "v1", velero.namespace, "backups"
        )
    ```
    """

    cluster: KubernetesCluster = Field(description="The cluster Velero backs up or restores to.")
    namespace: str = Field(default="velero", description="The namespace Velero works in.")
    storage_location: str = Field(
        default="default", description="The BackupStorageLocation backups go to."
    )
    metrics_url: str | None = Field(
        default=None, description="The server's Prometheus metrics URL, if reachable."
    )
    ca_cert: str | None = Field(
        default=None,
        description=(
            "PEM bundle of the CA that signed the object store's TLS certificate (the storage "
            "location's caCert), trusted besides the system's CAs when reading what Velero "
            "stored. Empty: the system's CAs only."
        ),
    )
    max_download_bytes: int = Field(
        default=MAX_DOWNLOAD_BYTES,
        gt=0,
        description=(
            "The largest file read back from the object store (a backup's contents tarball, "
            "logs, results); a larger one is refused, never cut short."
        ),
    )
    download_timeout_seconds: float = Field(
        default=DOWNLOAD_TIMEOUT_SECONDS,
        gt=0,
        description="The longest one read from the object store may take, start to end.",
    )

    @field_validator("namespace")
    @classmethod
    def _valid_namespace(cls, value: str) -> str:
        if not is_dns_label(value):
            raise ValueError(
                f"namespace {value!r} is not a DNS-1123 label: use at most 63 lowercase letters, "
                "digits and '-', starting and ending with a letter or digit"
            )
        return value

    @field_validator("storage_location")
    @classmethod
    def _valid_location(cls, value: str) -> str:
        if not is_dns_subdomain(value):
            raise ValueError(
                f"storage_location {value!r} is not a Kubernetes object name: use lowercase "
                "letters, digits, '-' and '.', e.g. default"
            )
        return value

    @field_validator("metrics_url")
    @classmethod
    def _valid_metrics_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _http_url("metrics_url", value, "http://127.0.0.1:38085/metrics")

    @field_validator("ca_cert")
    @classmethod
    def _valid_ca_cert(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if "PRIVATE KEY" in value:
            raise ValueError("ca_cert holds a private key: give only the CA's certificate(s)")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=value)
        except (ssl.SSLError, ValueError):
            raise ValueError(
                "ca_cert is not a PEM CA bundle: paste the -----BEGIN CERTIFICATE----- blocks of "
                "the CA that signed the object store's certificate"
            ) from None
        return value.strip() + "\n"

    def ssl_context(self) -> ssl.SSLContext:
        """How the object store's certificate is verified: httpx's CAs, plus ca_cert if set."""
        context = httpx.create_ssl_context()
        if self.ca_cert:
            context.load_verify_locations(cadata=self.ca_cert)
        return context

    def read_stored(self, url: str, what: str) -> bytes | None:
        """GET one file Velero stored, from the pre-signed URL Velero gave; None if absent (404).

        Any scheme and host Velero's plugin signs (path-style or virtual-hosted, http or https).
        Streamed: a file over max_download_bytes is refused as soon as the store announces its
        size or the bytes read pass the bound, never cut short; the whole read must end within
        download_timeout_seconds. Errors name the host only: the URL's query is a signature.

        Args:
            url: the URL from a processed DownloadRequest.
            what: the file, as messages name it ("BackupContents of nightly-20250101").

        Raises:
            ConfigError: too large, or TLS failed (the message says to set ca_cert).
            CredentialsError: the store refused the signature (401/403).
            TransientError: the store did not answer, was too slow, or answered 408/429/5xx.
        """
        host = urlsplit(url).netloc.rpartition("@")[2] or "(no host)"
        limit, seconds = self.max_download_bytes, self.download_timeout_seconds
        deadline = time.monotonic() + seconds
        timeout = httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_SECONDS))
        chunks: list[bytes] = []
        try:
            with (
                httpx.Client(verify=self.ssl_context(), timeout=timeout, trust_env=False) as http,
                http.stream("GET", url) as resp,
            ):
                if resp.status_code == 404:
                    return None
                if resp.status_code >= 400:
                    raise refused(resp.status_code, host, what)
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise too_large(what, limit, int(declared))
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise too_large(what, limit)
                    if time.monotonic() > deadline:
                        raise TransientError(f"reading {what} from {host} took over {seconds:.0f}s")
                    chunks.append(chunk)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise ConfigError(f"Velero gave no http(s) URL for {what} (host {host})") from None
        except httpx.TransportError as exc:
            err = tls_cause(exc)
            if err is not None:
                verify = isinstance(err, ssl.SSLCertVerificationError)
                reason = (err.verify_message if verify else err.reason) or str(err)
                raise tls_failed(
                    host, what, reason, verify=verify, has_ca=bool(self.ca_cert)
                ) from None
            name = type(exc).__name__
            raise TransientError(
                f"the object store {host} did not answer for {what}: {name}"
            ) from None
        return b"".join(chunks)

"""ObjectStore and VeleroInstall blocks: where backups are kept, and the Velero that makes them."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

from blocks.cluster import KubernetesCluster
from core.names import is_dns_label, is_dns_subdomain

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3 bucket naming rules
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


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

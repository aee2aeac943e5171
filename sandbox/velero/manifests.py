"""The objects an out-of-cluster Velero server needs in its cluster (pure: no client, no I/O)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

NAMESPACE = "velero"
SECRET = "cloud-credentials"
SECRET_KEY = "cloud"  # the key in SECRET that holds the credentials file
LOCATION = "default"
PROVIDER = "aws"  # velero.io/aws, served by velero-plugin-for-aws


def credentials_file(access_key_id: SecretStr, secret_access_key: SecretStr) -> str:
    """Return an AWS shared-credentials file with one [default] profile."""
    return (
        "[default]\n"
        f"aws_access_key_id={access_key_id.get_secret_value()}\n"
        f"aws_secret_access_key={secret_access_key.get_secret_value()}\n"
    )


def namespace(name: str = NAMESPACE) -> dict[str, Any]:
    """The namespace Velero's objects live in."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"component": "velero"}},
    }


def credentials_secret(
    access_key_id: SecretStr, secret_access_key: SecretStr, ns: str = NAMESPACE
) -> dict[str, Any]:
    """The Secret the storage location's credential points at (holds the keys: never log it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": ns, "labels": {"component": "velero"}},
        "type": "Opaque",
        "stringData": {SECRET_KEY: credentials_file(access_key_id, secret_access_key)},
    }


def storage_location(
    endpoint: str, bucket: str, region: str, ns: str = NAMESPACE, name: str = LOCATION
) -> dict[str, Any]:
    """The default, read-write BackupStorageLocation on an S3-compatible store at endpoint.

    Path-style addressing (the bucket is no DNS name here), and checksumAlgorithm "" turns off
    the plugin's default CRC32 upload checksums, which S3 work-alikes often do not support.
    """
    return {
        "apiVersion": "velero.io/v1",
        "kind": "BackupStorageLocation",
        "metadata": {"name": name, "namespace": ns, "labels": {"component": "velero"}},
        "spec": {
            "provider": PROVIDER,
            "objectStorage": {"bucket": bucket},
            "config": {
                "region": region,
                "s3ForcePathStyle": "true",
                "s3Url": endpoint,
                "checksumAlgorithm": "",
            },
            "credential": {"name": SECRET, "key": SECRET_KEY},
            "default": True,
            "accessMode": "ReadWrite",
        },
    }


def server_deployment(version: str, ns: str = NAMESPACE) -> dict[str, Any]:
    """A Deployment named `velero` with no replicas: the server runs out of cluster.

    Velero looks up its own Deployment to learn its image (the pod-volume restore action reads
    it when a restore starts and fails the restore with `deployments.apps "velero" not found`
    without it). Zero replicas: nothing is scheduled, the image is never pulled.
    """
    labels = {"component": "velero", "deploy": "velero"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "velero", "namespace": ns, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "velero", "image": f"velero/velero:v{version}"}]},
            },
        },
    }

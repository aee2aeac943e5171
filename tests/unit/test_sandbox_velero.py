"""The objects the sandbox gives each Velero server: Secret and BackupStorageLocation (pure)."""

from __future__ import annotations

import configparser

from pydantic import SecretStr

from sandbox.velero import manifests

KEY, SECRET = SecretStr("AKEXAMPLE"), SecretStr("s3cr3t-value")


def test_credentials_secret_is_an_aws_shared_credentials_file() -> None:
    secret = manifests.credentials_secret(KEY, SECRET)
    assert secret["metadata"] == {
        "name": "cloud-credentials",
        "namespace": "velero",
        "labels": {"component": "velero"},
    }
    parser = configparser.ConfigParser()
    parser.read_string(secret["stringData"]["cloud"])
    assert dict(parser["default"]) == {
        "aws_access_key_id": "AKEXAMPLE",
        "aws_secret_access_key": "s3cr3t-value",
    }


def test_storage_location_points_at_the_store_path_style_without_checksums() -> None:
    bsl = manifests.storage_location("http://127.0.0.1:39000", "kyb-backups", "us-east-1")
    assert bsl["apiVersion"] == "velero.io/v1" and bsl["kind"] == "BackupStorageLocation"
    assert bsl["metadata"]["name"] == "default" and bsl["metadata"]["namespace"] == "velero"
    assert bsl["spec"] == {
        "provider": "aws",
        "objectStorage": {"bucket": "kyb-backups"},
        "config": {
            "region": "us-east-1",
            "s3ForcePathStyle": "true",
            "s3Url": "http://127.0.0.1:39000",
            "checksumAlgorithm": "",
        },
        "credential": {"name": "cloud-credentials", "key": "cloud"},
        "default": True,
        "accessMode": "ReadWrite",
    }
    assert "s3cr3t" not in str(bsl)  # the location names the Secret, never holds the keys

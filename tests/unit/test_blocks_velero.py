"""ObjectStore and VeleroInstall blocks: validation with clear messages, nested cluster block."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from blocks import KubernetesCluster, ObjectStore, VeleroInstall
from tests.unit.test_blocks import make_kubeconfig


def store(**kwargs: Any) -> ObjectStore:
    defaults = {
        "endpoint": "http://127.0.0.1:39000",
        "bucket": "kyb-backups",
        "access_key_id": "AKEXAMPLE",
        "secret_access_key": "s3cr3t",
    }
    return ObjectStore(**{**defaults, **kwargs})


def velero(**kwargs: Any) -> VeleroInstall:
    return VeleroInstall(**{"cluster": KubernetesCluster(kubeconfig=make_kubeconfig()), **kwargs})


def test_object_store_defaults_and_bucket_url() -> None:
    block = store(endpoint="http://127.0.0.1:39000/")
    assert block.endpoint == "http://127.0.0.1:39000"
    assert block.region == "us-east-1"
    assert block.bucket_url == "http://127.0.0.1:39000/kyb-backups"


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"endpoint": "127.0.0.1:39000"}, "endpoint '127.0.0.1:39000' must be http(s)://"),
        ({"endpoint": "s3://bucket"}, "e.g. http://127.0.0.1:39000"),
        ({"endpoint": "http://127.0.0.1:0"}, "must be http(s)://"),
        ({"endpoint": "http://k:s@127.0.0.1:39000"}, "must not carry a user, password"),
        ({"endpoint": "http://127.0.0.1:39000?x=1"}, "must not carry a user, password, query"),
        ({"bucket": "Kyb_Backups"}, "is not an S3 bucket name"),
        ({"bucket": "ab"}, "3 to 63 lowercase letters"),
        ({"bucket": "a..b"}, "is not an S3 bucket name"),
        ({"region": "US East"}, "e.g. us-east-1"),
        ({"secret_access_key": " "}, "give both keys"),
    ],
)
def test_object_store_rejects_bad_fields_with_a_fix(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValidationError) as info:
        store(**kwargs)
    assert fix in str(info.value)


def test_velero_install_defaults() -> None:
    block = velero()
    assert (block.namespace, block.storage_location, block.metrics_url) == (
        "velero",
        "default",
        None,
    )
    assert block.cluster.server() == "https://127.0.0.1:1"


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"namespace": "Velero"}, "is not a DNS-1123 label"),
        ({"storage_location": "Default"}, "is not a Kubernetes object name"),
        ({"metrics_url": "127.0.0.1:38085"}, "metrics_url '127.0.0.1:38085' must be http(s)://"),
    ],
)
def test_velero_install_rejects_bad_fields_with_a_fix(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValidationError) as info:
        velero(**kwargs)
    assert fix in str(info.value)


def test_velero_install_validates_the_nested_cluster() -> None:
    with pytest.raises(ValidationError, match="context 'nope' is not in the kubeconfig"):
        VeleroInstall(cluster={"kubeconfig": make_kubeconfig(), "context": "nope"})


def test_velero_install_keeps_metrics_url_path() -> None:
    assert velero(metrics_url="http://127.0.0.1:38085/metrics/").metrics_url == (
        "http://127.0.0.1:38085/metrics"
    )

"""KubernetesCluster block: validation table, in-memory client, server URL, check() mapping."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient, Configuration
from kubernetes.config import incluster_config, kube_config
from pydantic import ValidationError

from blocks import KubernetesCluster
from core.errors import ConfigError, CredentialsError, TransientError
from tests.unit.test_blocks import CLOSED, TOKEN, StubServer, make_kubeconfig, serving

VERSION = {"gitVersion": "v1.31.0", "major": "1", "minor": "31"}


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with serving() as server:
        yield server


@pytest.mark.parametrize(
    ("kwargs", "field", "fix"),
    [
        ({}, "kubeconfig / in_cluster", "set exactly one"),
        ({"kubeconfig": make_kubeconfig(), "in_cluster": True}, "in_cluster", "exactly one"),
        ({"kubeconfig": "clusters: [unclosed"}, "kubeconfig", "not valid YAML at line 1"),
        ({"kubeconfig": "just text"}, "kubeconfig", "clusters/contexts/users"),
        ({"kubeconfig": "clusters: []\ncontexts: []"}, "kubeconfig", "no users list"),
        ({"kubeconfig": make_kubeconfig(), "context": "prod"}, "context 'prod'", "'sbx', 'other'"),
        (
            {"kubeconfig": make_kubeconfig(**{"current-context": None})},
            "no current-context",
            "set context to one of: 'sbx', 'other'",
        ),
        (
            {"kubeconfig": make_kubeconfig(clusters=[{"name": "x", "cluster": {"server": "s"}}])},
            "cluster 'local'",
            "defined clusters: 'x'",
        ),
        (
            {"kubeconfig": make_kubeconfig(server="127.0.0.1:6443")},
            "cluster 'local'",
            "http(s) server URL",
        ),
        (
            {"kubeconfig": make_kubeconfig(users=[{"name": "bob", "user": {}}])},
            "user 'admin'",
            "defined users: 'bob'",
        ),
        ({"in_cluster": True, "context": "sbx"}, "context", "unset it when in_cluster=True"),
        ({"in_cluster": True, "namespace": "Team_A"}, "namespace", "DNS-1123 label"),
        ({"in_cluster": True, "namespace": "-a"}, "namespace", "starting and ending"),
        ({"in_cluster": True, "namespace": "a" * 64}, "namespace", "at most 63"),
    ],
)
def test_invalid_input_names_field_and_fix(kwargs: dict[str, Any], field: str, fix: str) -> None:
    with pytest.raises(ValidationError) as info:
        KubernetesCluster(**kwargs)
    assert field in str(info.value)
    assert fix in str(info.value)


@pytest.mark.parametrize("namespace", ["default", "kyb-staging", "a", "a" * 63, "0ns"])
def test_valid_namespaces(namespace: str) -> None:
    assert KubernetesCluster(in_cluster=True, namespace=namespace).namespace == namespace


def test_api_client_built_in_memory_without_touching_global_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_disk(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the kubeconfig must not be written to or read from disk")

    monkeypatch.setattr(tempfile, "mkstemp", no_disk)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_disk)
    monkeypatch.setattr(kube_config, "KubeConfigMerger", no_disk)
    default_before = Configuration._default
    block = KubernetesCluster(kubeconfig=make_kubeconfig(), context="other")

    with block.api_client() as client:
        assert isinstance(client, ApiClient)
        assert client.configuration.host == f"https://{CLOSED}"
        assert client.configuration.api_key["BearerToken"] == f"Bearer {TOKEN}"
    assert Configuration._default is default_before
    assert block.server() == f"https://{CLOSED}"


def test_check_on_closed_port_is_transient_naming_server_not_token() -> None:
    block = KubernetesCluster(kubeconfig=make_kubeconfig())
    with pytest.raises(TransientError) as info:
        block.check(timeout=5)
    assert f"https://{CLOSED}" in str(info.value)
    assert TOKEN not in str(info.value)
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (401, CredentialsError, "refused the credentials (HTTP 401)"),
        (403, CredentialsError, "HTTP 403"),
        (429, TransientError, "HTTP 429"),
        (503, TransientError, "HTTP 503"),
        (404, ConfigError, "did not answer /version like a Kubernetes API server"),
    ],
)
def test_check_maps_http_status(
    stub: StubServer, status: int, error: type[Exception], text: str
) -> None:
    stub.route("/version/", status, {})
    block = KubernetesCluster(kubeconfig=make_kubeconfig(server=f"http://{stub.address}"))
    with pytest.raises(error) as info:
        block.check()
    assert text in str(info.value) and stub.address in str(info.value)
    assert type(info.value) is error


def test_check_returns_git_version_and_sends_the_token(stub: StubServer) -> None:
    stub.route("/version/", 200, VERSION)
    block = KubernetesCluster(kubeconfig=make_kubeconfig(server=f"http://{stub.address}/"))
    assert block.check() == "v1.31.0"
    headers = {k.lower(): v for k, v in stub.requests[-1]["headers"].items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert block.server() == f"http://{stub.address}"


def test_check_tls_failure_is_a_config_error(stub: StubServer) -> None:
    block = KubernetesCluster(kubeconfig=make_kubeconfig(server=f"https://{stub.address}"))
    with pytest.raises(ConfigError, match="certificate-authority-data") as info:
        block.check()
    assert not isinstance(info.value, TransientError)


def test_in_cluster_uses_service_account_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file, ca_file = tmp_path / "token", tmp_path / "ca.crt"
    token_file.write_text(TOKEN)
    ca_file.write_text("not used: the TCP connect fails before TLS starts")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token_file))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca_file))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "1")
    default_before = Configuration._default
    block = KubernetesCluster(in_cluster=True, namespace="kyb")

    assert block.server() == f"https://{CLOSED}"
    with block.api_client() as client:
        assert client.configuration.host == f"https://{CLOSED}"
        assert client.configuration.api_key["BearerToken"] == f"bearer {TOKEN}"
    assert Configuration._default is default_before
    with pytest.raises(TransientError) as info:
        block.check(timeout=5)
    assert CLOSED in str(info.value) and TOKEN not in str(info.value)


def test_in_cluster_outside_a_pod_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    block = KubernetesCluster(in_cluster=True)
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        block.server()
    with pytest.raises(ConfigError, match="in_cluster"):
        block.api_client()


def test_client_build_errors_are_redacted(tmp_path: Path) -> None:
    user = {"client-certificate": str(tmp_path / f"{TOKEN}.crt"), "client-key": "x.key"}
    kubeconfig = make_kubeconfig(users=[{"name": "admin", "user": user}])
    block = KubernetesCluster(kubeconfig=kubeconfig)
    with pytest.raises(ConfigError, match=r"File does not exist: \*\*\*") as info:
        block.api_client()  # the library's message quotes the path, which holds the "secret"
    assert TOKEN not in str(info.value)


def test_from_kubeconfig_file_inlines_referenced_files(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"CA-PEM")
    (tmp_path / "token").write_text(TOKEN + "\n")
    config = yaml.safe_load(make_kubeconfig())
    config["clusters"][0]["cluster"]["certificate-authority"] = "ca.crt"
    config["users"][0]["user"] = {"tokenFile": "token"}
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))

    block = KubernetesCluster.from_kubeconfig_file(path, context="other", namespace="kyb")
    assert (block.context, block.namespace) == ("other", "kyb")
    assert block.kubeconfig is not None
    stored = yaml.safe_load(block.kubeconfig.get_secret_value())
    cluster = stored["clusters"][0]["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"CA-PEM"
    assert "certificate-authority" not in cluster
    assert stored["users"][0]["user"] == {"token": TOKEN}


def test_from_kubeconfig_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        KubernetesCluster.from_kubeconfig_file(tmp_path / "nope")
    config = yaml.safe_load(make_kubeconfig())
    config["users"][0]["user"] = {"client-key": "gone.key"}
    (tmp_path / "config").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"gone\.key: No such file"):
        KubernetesCluster.from_kubeconfig_file(tmp_path / "config")
    (tmp_path / "config").write_text(make_kubeconfig())
    with pytest.raises(ValidationError, match="'sbx', 'other'"):
        KubernetesCluster.from_kubeconfig_file(tmp_path / "config", context="prod")


def test_every_call_gets_the_block_timeout_and_a_watch_its_own_plus_that() -> None:
    block = KubernetesCluster(kubeconfig=make_kubeconfig(), request_timeout=7)
    rest = block.api_client().rest_client
    base = "https://127.0.0.1:6443/api/v1/namespaces/x/configmaps"
    assert rest._default(base) == (7, 7)
    assert rest._default(f"{base}?watch=true&timeoutSeconds=60") == (7, 67)
    assert rest._default(f"{base}?watch=true") == (7, 1807)  # the apiserver's longest watch
    with pytest.raises(ValidationError, match="request_timeout"):
        KubernetesCluster(kubeconfig=make_kubeconfig(), request_timeout=0)

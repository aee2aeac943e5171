"""Blocks: Prefect's standard block suite, registration, and the secret-leak tests of all three.

Also home of the helpers the other test_blocks_*.py files import: a tiny HTTP server on
127.0.0.1 (`StubServer`) and a throwaway kubeconfig. Nothing here talks to a non-loopback address.
"""

from __future__ import annotations

import contextlib
import http.server
import inspect
import json
import logging
import threading
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest
import yaml
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import ValidationError

import blocks
from blocks import (
    ContainerRegistry,
    Environment,
    GitRepository,
    KubernetesCluster,
    ObjectStore,
    PrometheusServer,
    VeleroInstall,
)
from core.errors import ConfigError, CredentialsError, PipelineError, TransientError

TOKEN = "very-secret-token-123"
PASSWORD = "pw-Zq81-leakcheck"
CLOSED = "127.0.0.1:1"  # loopback port nobody listens on: connection refused


class StubServer:
    """An HTTP server on 127.0.0.1 in a thread: canned answers per path, records requests.

    A test double for the *far end* only (API server, registry, Prometheus, Docker daemon);
    it echoes the request's headers and body in every JSON answer, so a message that quoted a
    response would also quote the secret and fail the leak tests.
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                stub.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                status, payload = stub.routes.get(self.path.split("?")[0], (404, {}))
                if callable(payload):  # build the answer from the request body
                    payload = payload(body)
                if isinstance(payload, dict):
                    payload = {"echo": [dict(self.headers), body], **payload}
                    data = json.dumps(payload).encode()
                else:
                    data = str(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer  # noqa: N815 (http.server's names)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def route(self, path: str, status: int, payload: Any = None) -> None:
        self.routes[path] = (status, {} if payload is None else payload)


@contextlib.contextmanager
def serving() -> Iterator[StubServer]:
    """Run a StubServer for the duration of the block."""
    server = StubServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with serving() as server:
        yield server


def make_kubeconfig(server: str = f"https://{CLOSED}", **overrides: Any) -> str:
    """A throwaway kubeconfig: contexts 'sbx' (current) and 'other', user token TOKEN."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sbx",
        "clusters": [{"name": "local", "cluster": {"server": server}}],
        "contexts": [
            {"name": "sbx", "context": {"cluster": "local", "user": "admin"}},
            {"name": "other", "context": {"cluster": "local", "user": "admin"}},
        ],
        "users": [{"name": "admin", "user": {"token": TOKEN}}],
    }
    config.update(overrides)
    return yaml.safe_dump(config)


# --- Prefect's standard block suite -----------------------------------------------------------


class _OfflineSuite(BlockStandardTestSuite):
    def test_has_a_valid_image(self, block: type[Block]) -> None:
        """Upstream downloads the logo; unit tests stay offline, so only check it is https."""
        assert str(block._logo_url).startswith("https://")


class TestKubernetesClusterStandard(_OfflineSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return KubernetesCluster


class TestContainerRegistryStandard(_OfflineSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ContainerRegistry


class TestPrometheusServerStandard(_OfflineSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return PrometheusServer


class TestObjectStoreStandard(_OfflineSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ObjectStore


class TestVeleroInstallStandard(_OfflineSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return VeleroInstall


# --- registration -------------------------------------------------------------------------------


def test_package_exports_exactly_the_seven_blocks_with_fixed_slugs() -> None:
    found = {
        cls.get_block_type_slug(): cls.get_block_type_name()
        for _, cls in inspect.getmembers(blocks)
        if Block.is_block_class(cls)
    }
    assert found == {
        "kyb-kubernetes-cluster": "KYB Kubernetes Cluster",
        "kyb-container-registry": "KYB Container Registry",
        "kyb-prometheus": "KYB Prometheus",
        "kyb-object-store": "KYB Object Store",
        "kyb-velero": "KYB Velero",
        "kyb-environment": "KYB Environment",
        "kyb-git-repository": "KYB Git Repository",
    }


@pytest.mark.parametrize(
    ("cls", "secret_fields"),
    [
        (KubernetesCluster, ["kubeconfig"]),
        (ContainerRegistry, ["password"]),
        (GitRepository, ["token"]),
        (PrometheusServer, ["bearer_token", "password"]),
        (ObjectStore, ["access_key_id", "secret_access_key"]),
        (VeleroInstall, ["cluster.kubeconfig"]),
        (Environment, ["cluster.kubeconfig", "prometheus.bearer_token", "prometheus.password"]),
    ],
)
def test_schema_marks_secret_fields(cls: type[Block], secret_fields: list[str]) -> None:
    assert sorted(cls._to_block_schema(block_type_id=uuid.uuid4()).fields["secret_fields"]) == (
        secret_fields
    )


# --- secrets never leak ---------------------------------------------------------------------------


def _secret_blocks() -> list[tuple[Block, str]]:
    return [
        (KubernetesCluster(kubeconfig=make_kubeconfig()), TOKEN),
        (ContainerRegistry(address=CLOSED, username="ci", password=PASSWORD), PASSWORD),
        (GitRepository(url="https://git.example.com/a/b.git", token=PASSWORD), PASSWORD),
        (PrometheusServer(url=f"http://{CLOSED}", bearer_token=TOKEN), TOKEN),
        (PrometheusServer(url=f"http://{CLOSED}", username="ci", password=PASSWORD), PASSWORD),
        (
            ObjectStore(
                endpoint=f"http://{CLOSED}",
                bucket="b-1",
                access_key_id="AK",
                secret_access_key=TOKEN,
            ),
            TOKEN,
        ),
        (VeleroInstall(cluster=KubernetesCluster(kubeconfig=make_kubeconfig())), TOKEN),
    ]


@pytest.mark.parametrize(("block", "secret"), _secret_blocks(), ids=lambda v: type(v).__name__)
def test_secret_absent_from_every_serialisation(block: Block, secret: str) -> None:
    document = block._to_block_document(
        name="leak-test", block_schema_id=uuid.uuid4(), block_type_id=uuid.uuid4()
    )
    texts = [
        repr(block),
        str(block),
        f"{block}",
        block.model_dump_json(),
        json.dumps(block.model_dump(mode="json")),
        str(block.model_dump()),
        str(document.data),
        document.model_dump_json(),
    ]
    for text in texts:
        assert secret not in text
    # ...while the secret itself is intact for the code that needs it
    dumped = block.model_dump(context={"include_secrets": True}, mode="json")
    assert secret in json.dumps(dumped)


@pytest.mark.parametrize(("block", "secret"), _secret_blocks(), ids=lambda v: type(v).__name__)
def test_block_document_round_trip_keeps_secret_and_validates(block: Block, secret: str) -> None:
    """What save() sends (include_secrets=True) validates back into the same block.

    load() runs the same model_validate; `_from_block_document` itself is not called because it
    emits an event, which would start an ephemeral Prefect server.
    """
    document = block._to_block_document(
        name="round-trip",
        block_schema_id=uuid.uuid4(),
        block_type_id=uuid.uuid4(),
        include_secrets=True,
    )
    assert secret in json.dumps(document.data)
    loaded = type(block).model_validate(document.data)
    dump = {"mode": "json", "context": {"include_secrets": True}}
    assert loaded.model_dump(**dump) == block.model_dump(**dump)
    assert secret not in repr(loaded)
    assert type(block)._to_block_type().slug == type(block).get_block_type_slug()


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (KubernetesCluster, {"kubeconfig": f"token: [{TOKEN}"}),  # broken YAML around the token
        (KubernetesCluster, {"kubeconfig": make_kubeconfig(), "context": "nope"}),
        (KubernetesCluster, {"kubeconfig": make_kubeconfig(), "namespace": "Bad_NS"}),
        (ContainerRegistry, {"address": "http://x", "username": "u", "password": PASSWORD}),
        (ContainerRegistry, {"address": "127.0.0.1:5000", "password": PASSWORD}),
        (PrometheusServer, {"url": "ftp://x", "bearer_token": TOKEN}),
        (PrometheusServer, {"url": "http://x:9090", "bearer_token": TOKEN, "username": "u"}),
        (
            ObjectStore,
            {"endpoint": "s3", "bucket": "b-1", "access_key_id": "AK", "secret_access_key": TOKEN},
        ),
        (ObjectStore, {"endpoint": "http://s3", "bucket": "B!", "secret_access_key": PASSWORD}),
        (VeleroInstall, {"cluster": {"kubeconfig": make_kubeconfig(), "context": "nope"}}),
        (VeleroInstall, {"cluster": {"kubeconfig": make_kubeconfig()}, "namespace": "Bad_NS"}),
    ],
)
def test_validation_errors_do_not_echo_secrets(cls: type[Block], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        cls(**kwargs)
    secret = TOKEN if TOKEN in json.dumps(kwargs) else PASSWORD
    assert secret not in str(info.value)
    assert secret not in repr(info.value)


def _failures(stub: StubServer) -> list[tuple[type[PipelineError], Any]]:
    """(expected error, zero-argument call) for every failing call the leak test exercises."""
    kube = make_kubeconfig
    registry = {"username": "ci", "password": PASSWORD}
    local = f"http://{stub.address}"
    daemon = docker.DockerClient(base_url=f"tcp://{stub.address}", version="1.43")
    closed_daemon = docker.DockerClient(base_url=f"tcp://{CLOSED}", version="1.43")
    return [
        (TransientError, KubernetesCluster(kubeconfig=kube()).check),
        (CredentialsError, KubernetesCluster(kubeconfig=kube(server=f"{local}/401")).check),
        (TransientError, KubernetesCluster(kubeconfig=kube(server=f"{local}/503")).check),
        (ConfigError, KubernetesCluster(kubeconfig=kube(server=f"https://{stub.address}")).check),
        (TransientError, ContainerRegistry(address=CLOSED, **registry).check),
        (
            CredentialsError,
            ContainerRegistry(address=stub.address, insecure=True, **registry).check,
        ),
        (ConfigError, ContainerRegistry(address=stub.address, **registry).check),  # TLS to HTTP
        (
            TransientError,
            lambda: ContainerRegistry(address=CLOSED, **registry).login(closed_daemon),
        ),
        (CredentialsError, lambda: ContainerRegistry(address="r:1", **registry).login(daemon)),
        (TransientError, PrometheusServer(url=f"http://{CLOSED}", bearer_token=TOKEN).check),
        (CredentialsError, PrometheusServer(url=local, bearer_token=TOKEN).check),
        (CredentialsError, PrometheusServer(url=local, **registry).check),
        (TransientError, PrometheusServer(url=f"{local}/503", bearer_token=TOKEN).check),
    ]


def test_secrets_absent_from_errors_and_logs(
    stub: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stub.route("/401/version/", 401, {"message": "Unauthorized"})
    stub.route("/503/version/", 503, {"message": "down"})
    stub.route("/v2/", 401, {"errors": [{"code": "UNAUTHORIZED"}]})
    stub.route("/v1.43/auth", 401, lambda body: {"message": f"unauthorized: {body} refused"})
    stub.route("/api/v1/status/buildinfo", 401, {"error": "Unauthorized"})
    stub.route("/503/api/v1/status/buildinfo", 503, {"error": "Service Unavailable"})

    for expected, call in _failures(stub):
        with pytest.raises(expected) as info:
            call()
        text = "".join(traceback.format_exception(info.value)) + repr(info.value)
        assert TOKEN not in text and PASSWORD not in text, text
    # the stub really received the secrets, so their absence above is meaningful
    sent = json.dumps(stub.requests)
    assert TOKEN in sent and "Basic " in sent
    assert TOKEN not in caplog.text and PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"url": "github.com/acme/kyb"}, "is not a clone URL"),
        ({"url": "https://bot:tok@github.com/acme/kyb.git"}, "set username and token"),
        ({"url": "https:///acme/kyb.git"}, "has no host"),
        ({"url": "git@github.com:acme/kyb.git", "token": "t"}, "over HTTPS only"),
    ],
)
def test_git_repository_input_names_the_fix(kwargs: dict, fix: str) -> None:
    with pytest.raises(ValidationError, match=fix) as caught:
        GitRepository(**kwargs)
    assert "bot:tok" not in str(caught.value)  # the token is never echoed

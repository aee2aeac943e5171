"""ContainerRegistry block: validation, image references, check() and login() error mapping."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from pydantic import ValidationError

from blocks import ContainerRegistry
from core.errors import ConfigError, CredentialsError, TransientError
from tests.unit.test_blocks import CLOSED, PASSWORD, StubServer, serving

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with serving() as server:
        yield server


def registry(**kwargs: Any) -> ContainerRegistry:
    return ContainerRegistry(**{"address": "127.0.0.1:5000", **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "field", "fix"),
    [
        ({"address": "http://127.0.0.1:5000"}, "address", "set insecure=True"),
        ({"address": "https://r.example"}, "address", "must not have a scheme"),
        ({"address": "127.0.0.1:5000/kyb"}, "address", "is not host[:port]"),
        ({"address": "user@r.example"}, "address", "no user, path"),
        ({"address": "r.example:0"}, "address", "port 1-65535"),
        ({"address": "r.example:70000"}, "address", "port 1-65535"),
        ({"address": "r.example:"}, "address", "e.g. 127.0.0.1:5000"),
        ({"address": ""}, "address", "is not host[:port]"),
        ({"address": "a b"}, "address", "no user, path or spaces"),
        ({"username": "ci"}, "username / password", "set both of them, or neither"),
        ({"password": PASSWORD}, "username / password", "set both of them, or neither"),
    ],
)
def test_invalid_input_names_field_and_fix(kwargs: dict[str, Any], field: str, fix: str) -> None:
    with pytest.raises(ValidationError) as info:
        registry(**kwargs)
    assert field in str(info.value)
    assert fix in str(info.value)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("address", "insecure", "url"),
    [
        ("127.0.0.1:5000", True, "http://127.0.0.1:5000"),
        ("registry.example.com", False, "https://registry.example.com"),
        ("[::1]:5000", False, "https://[::1]:5000"),
        ("localhost", True, "http://localhost"),
    ],
)
def test_url(address: str, insecure: bool, url: str) -> None:
    assert registry(address=address, insecure=insecure).url == url


@pytest.mark.parametrize(
    ("repository", "ref", "expected"),
    [
        ("kyb/api", "1.4.2", "127.0.0.1:5000/kyb/api:1.4.2"),
        ("kyb/api", DIGEST, f"127.0.0.1:5000/kyb/api@{DIGEST}"),
        ("a.b_c__d-e--f/g", "Latest_1", "127.0.0.1:5000/a.b_c__d-e--f/g:Latest_1"),
        ("api", "_x", "127.0.0.1:5000/api:_x"),
    ],
)
def test_image_reference(repository: str, ref: str, expected: str) -> None:
    assert registry().image(repository, ref) == expected


@pytest.mark.parametrize(
    ("repository", "ref", "fix"),
    [
        ("Kyb/api", "1", "use lowercase path components"),
        ("kyb//api", "1", "joined by '/'"),
        ("kyb/api/", "1", "repository 'kyb/api/' is invalid"),
        ("-kyb", "1", "is invalid"),
        ("kyb_-api", "1", "is invalid"),
        ("127.0.0.1:5000/kyb/api", "1", "leave out the registry address"),
        ("kyb/api", ".hidden", "not starting with '.' or '-'"),
        ("kyb/api", "t" * 129, "up to 128"),
        ("kyb/api", "a/b", "tag 'a/b' is invalid"),
        ("kyb/api", "sha256:abc", "64 lowercase hex"),
        ("kyb/api", "sha256:" + "AB" * 32, "64 lowercase hex"),
        ("kyb/api", "@" + DIGEST, "is invalid"),
        ("x" * 250, "1", "longer than 255"),
    ],
)
def test_image_reference_rejects(repository: str, ref: str, fix: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid|address|longer") as info:
        registry().image(repository, ref)
    assert fix in str(info.value)


def test_check_sends_basic_auth_only_when_challenged(stub: StubServer) -> None:
    stub.route("/v2/", 200, {})
    registry(address=stub.address, insecure=True, username="ci", password=PASSWORD).check()
    assert "Authorization" not in stub.requests[-1]["headers"]  # not asked: not sent
    stub.route("/v2/", 401, {})  # a 401 without WWW-Authenticate gets Basic, once
    with pytest.raises(CredentialsError):
        registry(address=stub.address, insecure=True, username="ci", password=PASSWORD).check()
    expected = base64.b64encode(f"ci:{PASSWORD}".encode()).decode()
    assert "Authorization" not in stub.requests[-2]["headers"]
    assert stub.requests[-1]["headers"]["Authorization"] == f"Basic {expected}"


def test_check_anonymous_registry_passes(stub: StubServer) -> None:
    stub.route("/v2/", 200, {})
    registry(address=stub.address, insecure=True).check()
    assert "Authorization" not in stub.requests[-1]["headers"]


@pytest.mark.parametrize(
    ("status", "creds", "error", "text"),
    [
        (401, True, CredentialsError, "refused the credentials of user 'ci'"),
        (403, True, CredentialsError, "check the username and password in block"),
        (401, False, CredentialsError, "requires credentials (HTTP 401)"),
        (429, True, TransientError, "HTTP 429"),
        (500, True, TransientError, "HTTP 500"),
        (503, False, TransientError, "HTTP 503"),
        (404, True, ConfigError, "Docker Registry v2"),
        (400, True, ConfigError, "check address and insecure"),
    ],
)
def test_check_maps_http_status(
    stub: StubServer, status: int, creds: bool, error: type[Exception], text: str
) -> None:
    stub.route("/v2/", status, {"errors": []})
    auth = {"username": "ci", "password": PASSWORD} if creds else {}
    block = registry(address=stub.address, insecure=True, **auth)
    with pytest.raises(error) as info:
        block.check()
    assert type(info.value) is error
    assert text in str(info.value) and stub.address in str(info.value)


def test_check_closed_port_is_transient() -> None:
    with pytest.raises(TransientError, match=f"http://{CLOSED}"):
        registry(address=CLOSED, insecure=True, username="ci", password=PASSWORD).check()


def test_check_https_against_plain_http_is_a_config_error(stub: StubServer) -> None:
    block = registry(address=stub.address, username="ci", password=PASSWORD)
    with pytest.raises(ConfigError, match="set insecure=True") as info:
        block.check()
    assert not isinstance(info.value, TransientError)


def test_login_on_closed_daemon_is_transient() -> None:
    client = docker.DockerClient(base_url=f"tcp://{CLOSED}", version="1.43")
    with pytest.raises(TransientError, match="Docker daemon") as info:
        registry(username="ci", password=PASSWORD).login(client)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("status", "message", "error", "text"),
    [
        (401, "login attempt failed with status: 401 Unauthorized", CredentialsError, "user 'ci'"),
        (500, "Get https://r/v2/: unauthorized: incorrect password", CredentialsError, "'ci'"),
        (
            500,
            'Get "https://r/v2/": http: server gave HTTP response to HTTPS client',
            ConfigError,
            "insecure-registries",
        ),
        (500, "dial tcp 127.0.0.1:5000: connect: connection refused", TransientError, "HTTP 500"),
    ],
)
def test_login_maps_daemon_answers(
    stub: StubServer, status: int, message: str, error: type[Exception], text: str
) -> None:
    """The stub stands in for the Docker daemon's /auth endpoint (real logins: integration)."""
    stub.route("/v1.43/auth", status, lambda body: {"message": f"{message} ({body})"})
    client = docker.DockerClient(base_url=f"tcp://{stub.address}", version="1.43")
    block = registry(username="ci", password=PASSWORD)
    with pytest.raises(error) as info:
        block.login(client)
    assert type(info.value) is error
    assert text in str(info.value) and PASSWORD not in str(info.value)
    sent = stub.requests[-1]  # the daemon got the password and quoted it back: it was redacted
    assert sent["path"] == "/v1.43/auth"
    assert json.loads(sent["body"])["password"] == PASSWORD


def test_login_success_and_no_credentials(stub: StubServer) -> None:
    stub.route("/v1.43/auth", 200, {"Status": "Login Succeeded"})
    client = docker.DockerClient(base_url=f"tcp://{stub.address}", version="1.43")
    registry(username="ci", password=PASSWORD).login(client)
    assert len(stub.requests) == 1
    registry().login(client)  # anonymous registry: nothing to log in with
    assert len(stub.requests) == 1


def test_errors_name_the_saved_block(stub: StubServer) -> None:
    stub.route("/v2/", 401, {})
    block = registry(address=stub.address, insecure=True, username="x", password=PASSWORD)
    block._block_document_name = "prod"  # what load() sets
    with pytest.raises(CredentialsError) as info:
        block.check()
    assert str(info.value) == (
        f"registry {stub.address} refused the credentials of user 'x' (HTTP 401): "
        "check the username and password in block 'kyb-container-registry/prod'"
    )

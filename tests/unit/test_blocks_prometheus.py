"""PrometheusServer block: validation, auth headers, connect() and check() error mapping."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from blocks import PrometheusServer
from core.errors import ConfigError, CredentialsError, TransientError
from tests.unit.test_blocks import CLOSED, PASSWORD, TOKEN, StubServer, serving

BUILDINFO = "/api/v1/status/buildinfo"


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with serving() as server:
        yield server


def prometheus(**kwargs: Any) -> PrometheusServer:
    return PrometheusServer(**{"url": "http://127.0.0.1:9090", **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "field", "fix"),
    [
        ({"url": "127.0.0.1:9090"}, "url", "must be http(s)://host[:port][/path]"),
        ({"url": "ftp://prom"}, "url", "e.g. http://127.0.0.1:9090"),
        ({"url": "http://"}, "url", "must be http(s)://"),
        ({"url": "http://prom:notaport"}, "url", "must be http(s)://"),
        ({"url": "http://prom:0"}, "url", "must be http(s)://"),
        ({"url": "http://[::1"}, "url", "must be http(s)://"),
        ({"url": "http://u:p@prom:9090"}, "url", "put credentials in username/password"),
        ({"url": "http://prom:9090/?x=1"}, "url", "must not carry a user, password, query"),
        ({"username": "ci"}, "username / password", "set both of them, or neither"),
        ({"password": PASSWORD}, "username / password", "set both of them, or neither"),
        (
            {"bearer_token": TOKEN, "username": "ci", "password": PASSWORD},
            "bearer_token / username+password",
            "use one kind of auth",
        ),
    ],
)
def test_invalid_input_names_field_and_fix(kwargs: dict[str, Any], field: str, fix: str) -> None:
    with pytest.raises(ValidationError) as info:
        prometheus(**kwargs)
    assert field in str(info.value)
    assert fix in str(info.value)
    assert TOKEN not in str(info.value) and PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("http://127.0.0.1:9090/", "http://127.0.0.1:9090"),
        ("https://prom.example/prometheus", "https://prom.example/prometheus"),
        ("http://[::1]:9090", "http://[::1]:9090"),
    ],
)
def test_valid_urls(url: str, normalised: str) -> None:
    assert prometheus(url=url).url == normalised


def test_headers() -> None:
    assert prometheus().headers() == {}
    assert prometheus(bearer_token=TOKEN).headers() == {"Authorization": f"Bearer {TOKEN}"}
    basic = base64.b64encode(f"ci:{PASSWORD}".encode()).decode()
    assert prometheus(username="ci", password=PASSWORD).headers() == {
        "Authorization": f"Basic {basic}"
    }


def test_connect_carries_auth_and_tls_setting(stub: StubServer) -> None:
    stub.route("/", 200, {})
    block = prometheus(url=f"http://{stub.address}", bearer_token=TOKEN, verify_tls=False)
    with block.connect() as connection:
        assert connection.url == block.url
        assert connection._session.verify is False
        assert connection.check_prometheus_connection()
    assert stub.requests[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert prometheus().connect()._session.verify is True


def test_check_returns_version_and_sends_basic_auth(stub: StubServer) -> None:
    stub.route(f"/prom{BUILDINFO}", 200, {"status": "success", "data": {"version": "2.42.0"}})
    block = prometheus(url=f"http://{stub.address}/prom/", username="ci", password=PASSWORD)
    assert block.check() == "2.42.0"
    basic = base64.b64encode(f"ci:{PASSWORD}".encode()).decode()
    assert stub.requests[-1]["headers"]["Authorization"] == f"Basic {basic}"


@pytest.mark.parametrize(
    ("status", "auth", "error", "text"),
    [
        (401, {"bearer_token": TOKEN}, CredentialsError, "check the bearer token in block"),
        (403, {"username": "ci", "password": PASSWORD}, CredentialsError, "check the basic auth"),
        (401, {}, CredentialsError, "set bearer_token or username and password"),
        (429, {}, TransientError, "HTTP 429"),
        (502, {"bearer_token": TOKEN}, TransientError, "HTTP 502"),
        (503, {}, TransientError, "HTTP 503"),
        (404, {}, ConfigError, "without a Prometheus build info"),
    ],
)
def test_check_maps_http_status(
    stub: StubServer, status: int, auth: dict[str, str], error: type[Exception], text: str
) -> None:
    stub.route(BUILDINFO, status, {})
    with pytest.raises(error) as info:
        prometheus(url=f"http://{stub.address}", **auth).check()
    assert type(info.value) is error
    assert text in str(info.value) and stub.address in str(info.value)


@pytest.mark.parametrize("payload", ["not json", {"status": "success"}, {"data": []}])
def test_check_non_prometheus_answer_is_a_config_error(stub: StubServer, payload: Any) -> None:
    stub.route(BUILDINFO, 200, payload)
    with pytest.raises(ConfigError, match="check the url"):
        prometheus(url=f"http://{stub.address}").check()


def test_check_closed_port_is_transient() -> None:
    with pytest.raises(TransientError, match=f"http://{CLOSED}"):
        prometheus(url=f"http://{CLOSED}", bearer_token=TOKEN).check()


def test_check_https_against_plain_http_is_a_config_error(stub: StubServer) -> None:
    with pytest.raises(ConfigError, match="TLS") as info:
        prometheus(url=f"https://{stub.address}").check()
    assert not isinstance(info.value, TransientError)

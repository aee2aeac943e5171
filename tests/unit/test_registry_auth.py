"""RegistryAuth and manifest_digest against registry behaviours the platform's registries lack.

The real flows (Basic on :5001, Bearer on :5002) are tested in tests/integration. The loopback
stub here stands in for other registries' far ends only: a token service that answers 5xx or
too much, an OAuth2-style `access_token` answer (GAR, ACR), and a registry that answers HEAD
without Docker-Content-Digest (some proxies and older registries).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from blocks import ContainerRegistry
from blocks.registry_auth import MAX_TOKEN_ANSWER, RegistryAuth
from core.errors import ConfigError, TransientError
from tasks.images import manifest_digest

PASSWORD = "pw-Zq81-tokenleak"
Answer = tuple[int, dict[str, str], bytes]


class Far:
    """A loopback HTTP server: (method, path) -> answer function; records what it was sent."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Callable[[BaseHTTPRequestHandler], Answer]] = {}
        self.seen: list[tuple[str, str, str]] = []  # method, path with query, Authorization
        far = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                far.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
                route = far.routes.get((self.command, self.path.split("?")[0]))
                status, headers, body = route(self) if route else (404, {}, b"{}")
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _answer  # noqa: N815 (http.server's names)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def bearer(self, path: str, token_answer: Callable[[], Answer]) -> None:
        """`path` wants a Bearer token from /token (and accepts any); /token answers so."""
        challenge = f'Bearer realm="http://{self.address}/token",service="far"'

        def guarded(handler: BaseHTTPRequestHandler) -> Answer:
            if handler.headers.get("Authorization", "").startswith("Bearer "):
                return self.routes[("GET", "/ok")](handler)
            return 401, {"WWW-Authenticate": challenge}, b"{}"

        self.routes[("GET", path)] = self.routes[("HEAD", path)] = guarded
        self.routes[("GET", "/token")] = lambda _h: token_answer()


@pytest.fixture
def far() -> Iterator[Far]:
    server = Far()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def _block(far: Far, **kwargs: Any) -> ContainerRegistry:
    settings = {"insecure": True, "username": "ci", "password": SecretStr(PASSWORD)}
    return ContainerRegistry(address=far.address, **{**settings, **kwargs})


def _json(data: dict[str, Any], status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def test_access_token_answer_is_used_and_cached(far: Far) -> None:
    far.routes[("GET", "/ok")] = lambda _h: _json({})
    far.bearer("/v2/", lambda: _json({"access_token": "oauth-style-token", "expires_in": 300}))
    block = _block(far)
    block.check()
    block.check()
    tokens = [s for s in far.seen if s[1].startswith("/token")]
    assert len(tokens) == 1 and "service=far" in tokens[0][1] and tokens[0][2].startswith("Basic ")
    assert far.seen[-1][2] == "Bearer oauth-style-token"


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (lambda: _json({"errors": []}, 503), TransientError, "answered HTTP 503"),
        (lambda: _json({"errors": []}, 429), TransientError, "answered HTTP 429"),
        (lambda: _json({"errors": []}, 404), ConfigError, "answered HTTP 404 to a token request"),
        (lambda: (200, {}, b"x" * (MAX_TOKEN_ANSWER + 1)), ConfigError, "more than"),
        (lambda: _json({"no": "token"}), ConfigError, "without a token"),
    ],
)
def test_token_service_failures(far: Far, answer, error: type[Exception], text: str) -> None:
    far.routes[("GET", "/ok")] = lambda _h: _json({})
    far.bearer("/v2/", answer)
    with pytest.raises(error, match=text) as info:
        _block(far).check()
    assert type(info.value) is error
    assert f"token service http://{far.address}/token" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_plain_http_realm_of_an_https_registry_gets_no_credentials(far: Far) -> None:
    far.bearer("/v2/", lambda: _json({"token": "t"}))
    request = httpx.Request("GET", "https://registry.example/v2/")
    auth = RegistryAuth("registry.example", "ci", SecretStr(PASSWORD), where="block x")
    flow = auth.auth_flow(request)
    next(flow)
    challenge = f'Bearer realm="http://{far.address}/token",service="far"'
    with pytest.raises(ConfigError, match="clear text"):
        flow.send(httpx.Response(401, headers={"WWW-Authenticate": challenge}, request=request))
    assert not [s for s in far.seen if s[1].startswith("/token")]
    assert PASSWORD not in repr(auth)


def test_digest_from_get_when_head_has_none(far: Far) -> None:
    manifest = json.dumps({"schemaVersion": 2, "layers": []}).encode()
    far.routes[("GET", "/ok")] = lambda h: (200, {}, b"" if h.command == "HEAD" else manifest)
    far.bearer("/v2/kyb/api/manifests/v1", lambda: _json({"token": "t", "expires_in": 60}))
    digest = manifest_digest(_block(far), "kyb/api", "v1")
    assert digest == f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    methods = [s[0] for s in far.seen if s[1].startswith("/v2/")]
    assert methods == ["HEAD", "HEAD", "GET"]  # challenged, HEAD with token, GET with token
    token_ask = next(s[1] for s in far.seen if s[1].startswith("/token"))
    assert "scope=repository%3Akyb%2Fapi%3Apull" in token_ask


def test_manifest_closed_port_is_transient() -> None:
    block = ContainerRegistry(address="127.0.0.1:1", insecure=True)
    with pytest.raises(TransientError, match=r"cannot reach registry 127\.0\.0\.1:1"):
        manifest_digest(block, "kyb/api", "v1", timeout=2)


def test_manifest_https_against_plain_http_is_a_config_error(far: Far) -> None:
    with pytest.raises(ConfigError, match="TLS with registry") as info:
        manifest_digest(_block(far, insecure=False), "kyb/api", "v1", timeout=2)
    assert not isinstance(info.value, TransientError)

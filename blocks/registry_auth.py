"""httpx auth for any OCI registry: answers a 401's Basic or Bearer (token service) challenge.

The Bearer flow is distribution's token authentication: the registry answers 401 with
`WWW-Authenticate: Bearer realm=...,service=...,scope=...`; the client GETs the realm with
`service` and `scope` (Basic credentials when it has them, none when anonymous), reads `token`
(or `access_token`) from the JSON answer and sends the request again with
`Authorization: Bearer <token>`. Tokens are kept in memory per (credentials, realm, service,
scope) until shortly before they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Generator
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr

from blocks._http import _is_tls_error
from core.ci.challenge import Challenge, parse_challenges, parse_token_answer, preferred
from core.errors import ConfigError, CredentialsError, PipelineError, TransientError

if TYPE_CHECKING:
    from blocks.registry import ContainerRegistry

logger = logging.getLogger(__name__)

MAX_TOKEN_ANSWER = 256 * 1024  # bytes: a token answer is a few KiB; more is not a token service
_CACHE_SIZE = 256
_tokens: dict[tuple[str, str, str, str], tuple[str, float]] = {}  # key -> (token, expires at)
_lock = threading.Lock()
_salt = secrets.token_bytes(16)  # cache keys carry an HMAC of the credentials, never them


def read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    """Read a streamed response's body, refusing more than `limit` bytes.

    Args:
        response: A response opened with `client.stream(...)` or `send(..., stream=True)`.
        limit: The most bytes to read.
        what: What answered, for the message.

    Returns:
        The body.

    Raises:
        ConfigError: The body is larger than `limit`.
    """
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise ConfigError(f"{what} answered more than {limit} bytes: not what was asked for")
    return bytes(body)


def transport_failure(exc: httpx.TransportError, what: str, tls_fix: str) -> PipelineError:
    """The error for a request that got no answer: TLS is a setting to fix, the rest passes.

    Args:
        exc: The httpx transport error.
        what: The server as messages name it, e.g. "registry ghcr.io".
        tls_fix: What to change when TLS failed.

    Returns:
        ConfigError for TLS failures, else TransientError (refused, reset, timed out).
    """
    if _is_tls_error(exc):
        return ConfigError(f"TLS with {what} failed: {tls_fix}")
    return TransientError(f"cannot reach {what}: {type(exc).__name__} (is it running?)")


class RegistryAuth(httpx.Auth):
    """Answers a registry's 401 challenge: Basic with the credentials, Bearer via a token.

    Anonymous (no credentials) works with registries that give anonymous tokens. Errors say what
    to fix in the block `where` names; the password and tokens never appear in them.
    """

    def __init__(
        self,
        address: str,
        username: str | None = None,
        password: SecretStr | None = None,
        *,
        where: str,
        scope: str | None = None,
        verify: bool = True,
        timeout: float = 10.0,
    ) -> None:
        """Auth for one registry and, optionally, one scope.

        Args:
            address: The registry's host[:port], for messages.
            username: The user, or None for anonymous access.
            password: The user's password or access token.
            where: Where the credentials are configured, e.g. "block 'kyb-container-registry/x'".
            scope: The token scope to ask for, e.g. "repository:kyb/api:pull"; None for the
                registry itself (GET /v2/). Scopes the registry's challenge names are added.
            verify: Verify the token service's TLS certificate.
            timeout: Seconds the token service may take.
        """
        self.address, self.username, self.where, self.scope = address, username, where, scope
        self._password = password if username is not None else None
        self.verify, self.timeout = verify, timeout
        self._answer: tuple[str, tuple | None] | None = None  # (Authorization, token cache key)

    def __repr__(self) -> str:
        return f"RegistryAuth({self.address!r}, user={self.username!r}, scope={self.scope!r})"

    @property
    def _anonymous(self) -> bool:
        return self.username is None or self._password is None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send the request; on 401 answer the challenge once and send it again.

        Raises:
            CredentialsError: The registry or its token service refused the credentials, or
                the registry wants credentials and the block has none.
            TransientError: The token service cannot be reached or answered 429/5xx.
            ConfigError: TLS with the token service failed, or its answer is no token.
        """
        if self._answer is not None:  # what the registry took last time, sent at once
            request.headers["Authorization"] = self._answer[0]
        response = yield request
        if response.status_code != 401:
            return
        if self._answer is not None:  # no longer good (expired): forget it, answer anew
            with _lock:
                _tokens.pop(self._answer[1], None)
            self._answer = None
        challenge = preferred(parse_challenges(response.headers.get_list("www-authenticate")))
        if challenge is None or challenge.scheme == "basic":
            if self._anonymous or self._password is None:
                raise self._needs_credentials("HTTP 401")
            pair = f"{self.username}:{self._password.get_secret_value()}".encode()
            header, key = f"Basic {base64.b64encode(pair).decode()}", None
            request.headers["Authorization"] = header
            response = yield request
            if response.status_code == 401:
                raise self._refused("HTTP 401")
        else:
            scopes = list(dict.fromkeys([*([self.scope] if self.scope else []), *challenge.scopes]))
            key, token = self._token(challenge, scopes, request.url.scheme)
            header = f"Bearer {token}"
            request.headers["Authorization"] = header
            response = yield request
            if response.status_code == 401:
                with _lock:
                    _tokens.pop(key, None)
                raise self._scope_refused(scopes, challenge.realm)
        self._answer = (header, key)

    def _token(self, challenge: Challenge, scopes: list[str], scheme: str) -> tuple[tuple, str]:
        """A token for the scopes: from the cache, else from the challenge's token service."""
        realm = challenge.realm
        if not realm.startswith(("https://", "http://")):
            raise ConfigError(
                f"registry {self.address} asked for a token without a valid realm URL "
                f"({realm[:100]!r}): is it a registry?"
            )
        if scheme == "https" and realm.startswith("http://") and not self._anonymous:
            raise ConfigError(
                f"registry {self.address} (HTTPS) sends token requests to {realm} over plain "
                "HTTP: refusing to send the credentials in clear text; fix the registry's realm"
            )
        key = (self._identity(), realm, challenge.service, " ".join(scopes))
        now = time.monotonic()
        with _lock:
            cached = _tokens.get(key)
        if cached and cached[1] > now:
            return key, cached[0]
        params = [("service", challenge.service)] if challenge.service else []
        params += [("scope", scope) for scope in scopes]
        token, expires_in = parse_token_answer(self._ask(realm, params), realm)
        with _lock:
            if len(_tokens) >= _CACHE_SIZE:
                _tokens.clear()
            _tokens[key] = (token, now + expires_in * 0.8)
        return key, token

    def _ask(self, realm: str, params: list[tuple[str, str]]) -> bytes:
        """GET the token service; its body (bounded) on 200, else the error it stands for."""
        auth = None
        if not self._anonymous and self._password is not None:
            auth = httpx.BasicAuth(self.username or "", self._password.get_secret_value())
        what = f"the token service {realm} of registry {self.address}"
        logger.debug(
            "asking %s for %s as %r", what, [v for k, v in params if k == "scope"], self.username
        )
        try:
            with (
                httpx.Client(verify=self.verify, timeout=self.timeout) as client,
                client.stream("GET", realm, params=params, auth=auth) as answer,
            ):
                status = answer.status_code
                body = read_limited(answer, MAX_TOKEN_ANSWER, what) if status == 200 else b""
        except httpx.TransportError as exc:
            fix = f"set verify_tls=False or trust its CA in {self.where}"
            raise transport_failure(exc, what, fix) from None
        if status == 200:
            return body
        if status in (401, 403) and auth is None:
            raise self._needs_credentials(f"{what} refused an anonymous token (HTTP {status})")
        if status in (401, 403):
            raise CredentialsError(
                f"{what} refused the credentials of user {self.username!r} (HTTP {status}): "
                f"check the username and password in {self.where}"
            )
        if status == 429 or status >= 500:
            raise TransientError(f"{what} answered HTTP {status}")
        raise ConfigError(f"{what} answered HTTP {status} to a token request")

    def _identity(self) -> str:
        if self._anonymous or self._password is None:
            return "anonymous"
        pair = f"{self.username}\0{self._password.get_secret_value()}".encode()
        return hmac.new(_salt, pair, hashlib.sha256).hexdigest()

    def _needs_credentials(self, why: str) -> CredentialsError:
        return CredentialsError(
            f"registry {self.address} requires credentials ({why}): "
            f"set username and password in {self.where}"
        )

    def _refused(self, why: str) -> CredentialsError:
        return CredentialsError(
            f"registry {self.address} refused the credentials of user {self.username!r} "
            f"({why}): check the username and password in {self.where}"
        )

    def _scope_refused(self, scopes: list[str], realm: str) -> CredentialsError:
        if not scopes:
            return self._refused(f"HTTP 401 with a token from {realm}")
        asked = " ".join(scopes)
        if self._anonymous:
            return self._needs_credentials(f"an anonymous token for {asked} was refused")
        return CredentialsError(
            f"registry {self.address} refused user {self.username!r} the scope {asked} "
            f"(HTTP 401 with a token from {realm}): give that user this access in the "
            f"registry, or set another user in {self.where}"
        )


def registry_auth(
    registry: ContainerRegistry, scope: str | None = None, timeout: float = 10.0
) -> RegistryAuth:
    """The RegistryAuth of a ContainerRegistry block.

    Args:
        registry: The block (address, credentials, verify_tls).
        scope: The token scope, e.g. "repository:kyb/api:pull"; None for /v2/.
        timeout: Seconds the token service may take.

    Returns:
        An httpx.Auth for requests to that registry.
    """
    return RegistryAuth(
        registry.address,
        registry.username,
        registry.password,
        where=f"block {registry._label()}",
        scope=scope,
        verify=registry.verify_tls,
        timeout=timeout,
    )

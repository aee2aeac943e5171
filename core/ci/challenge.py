"""Registry auth's pure parts: WWW-Authenticate challenges (RFC 7235) and token answers.

An OCI registry answers 401 with `WWW-Authenticate: Basic realm="..."` or, for token auth
(Docker Hub, GHCR, Harbor, GAR, distribution's `auth: token`),
`Bearer realm="https://auth/token",service="registry",scope="repository:app:pull"`; the client
then GETs the realm for a token (distribution's token authentication specification).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.errors import ConfigError

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # RFC 7230 tchar+
_SCHEME = re.compile(rf"\s*({_TOKEN})")
_PARAM = re.compile(rf'[\s,]*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))')
_TOKEN68 = re.compile(r"\s+[A-Za-z0-9._~+/-]+=*\s*(?:,|$)")
_ESCAPE = re.compile(r"\\(.)")
DEFAULT_EXPIRES_IN = 60  # seconds, when a token answer leaves expires_in out (token spec)


@dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: its scheme (lowercase) and parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        """The realm: for Bearer, the URL of the token service."""
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        """The service the token is for (the registry's name at its token service)."""
        return self.params.get("service", "")

    @property
    def scopes(self) -> list[str]:
        """The scopes the registry asked for (space-separated in the header)."""
        return self.params.get("scope", "").split()


def parse_challenges(values: str | Iterable[str]) -> list[Challenge]:
    """Parse WWW-Authenticate header values into challenges.

    Args:
        values: One header value or several (a response may repeat the header); each may hold
            several comma-separated challenges, e.g. `Basic realm="r", Bearer realm="t"`.

    Returns:
        The challenges in order; scheme and parameter names lowercased, quoted values unescaped.
        Text that is no challenge is skipped.
    """
    found: list[Challenge] = []
    for value in [values] if isinstance(values, str) else values:
        pos = 0
        while pos < len(value):
            if value[pos] in ", \t":
                pos += 1
                continue
            scheme = _SCHEME.match(value, pos)
            if not scheme:
                pos = _next_comma(value, pos)
                continue
            pos, params = scheme.end(), {}
            token68 = _TOKEN68.match(value, pos)
            if token68 and not _PARAM.match(value, pos):
                pos = token68.end()  # `Scheme token68`: no parameters to read
            while param := _PARAM.match(value, pos):
                quoted, plain = param.group(2), param.group(3)
                text = _ESCAPE.sub(r"\1", quoted) if quoted is not None else plain
                params[param.group(1).lower()] = text
                pos = param.end()
            found.append(Challenge(scheme.group(1).lower(), params))
    return found


def _next_comma(value: str, pos: int) -> int:
    comma = value.find(",", pos)
    return len(value) if comma < 0 else comma + 1


def preferred(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge to answer: Bearer (token) before Basic; None when neither is offered."""
    by_scheme = {c.scheme: c for c in reversed(list(challenges))}
    return by_scheme.get("bearer") or by_scheme.get("basic")


def repository_scope(repository: str, actions: str = "pull") -> str:
    """The token scope for a repository, e.g. `repository:kyb/api:pull`."""
    return f"repository:{repository}:{actions}"


def parse_token_answer(body: bytes, realm: str) -> tuple[str, int]:
    """Read a token service's JSON answer.

    Args:
        body: The answer's body.
        realm: The token service's URL, for messages.

    Returns:
        (token, expires_in seconds): `token`, else `access_token` (OAuth2 name); expires_in
        defaults to 60 seconds.

    Raises:
        ConfigError: The answer is not JSON or holds no token.
    """
    try:
        data = json.loads(body)
    except ValueError:
        raise ConfigError(f"token service {realm} answered something that is not JSON") from None
    token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
    if not isinstance(token, str) or not token or any(c.isspace() for c in token):
        raise ConfigError(
            f"token service {realm} answered without a token (no 'token' or 'access_token')"
        )
    expires_in = data.get("expires_in")
    valid = isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0
    return token, expires_in if valid else DEFAULT_EXPIRES_IN

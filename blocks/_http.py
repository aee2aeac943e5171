"""One GET for the blocks' reachability checks: transport failures mapped onto the error tree."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from core.errors import ConfigError, TransientError


def tls_cause(exc: BaseException | None) -> ssl.SSLError | None:
    """The ssl error under an httpx transport error (httpx wraps httpcore, which wraps ssl)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ssl.SSLError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _is_tls_error(exc: BaseException | None) -> bool:
    """Whether an httpx transport error was caused by TLS (a setting to fix, not a retry)."""
    return tls_cause(exc) is not None


def probe(url: str, *, verify: bool, timeout: float, what: str, tls_fix: str, **kw: Any):
    """GET url; TLS failures raise ConfigError (with tls_fix), other transport ones TransientError.

    Args:
        url: The URL to GET.
        verify: Whether to verify the server's TLS certificate.
        timeout: Seconds to wait.
        what: The service as the messages name it, e.g. "registry 127.0.0.1:5001".
        tls_fix: What to change when TLS fails.
        **kw: Passed to httpx (headers, auth).

    Returns:
        The httpx.Response, whatever its status.
    """
    try:
        with httpx.Client(verify=verify, timeout=timeout) as client:
            return client.get(url, **kw)
    except httpx.TransportError as exc:
        if _is_tls_error(exc):
            raise ConfigError(f"TLS with {what} failed: {tls_fix}") from None
        raise TransientError(
            f"cannot reach {what}: {type(exc).__name__} (is it running?)"
        ) from None

"""How the receiver is served: uvicorn with deadlines, a connection cap, TLS and a bounded stop."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from deployments.webhook_settings import WebhookSettings


class DeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers.

    uvicorn times out idle keep-alive connections, but a client that sends half of its headers
    and then nothing would hold a connection (and one of `max_connections`) for good. Here the
    connection is closed when a request's headers are not complete `header_timeout` seconds
    after the connection opened or the previous response ended.
    """

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Take uvicorn's arguments unchanged."""
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:  # still waiting for headers
            self.logger.info("headers not received within %gs: closing", self.header_timeout)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the headers' deadline with the connection."""
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        """Stop the deadline once a request's headers are in (the body has its own, in the app)."""
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()

    def on_response_complete(self) -> None:
        """The next request on this connection gets its own deadline."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """No deadline outlives its connection."""
        self._disarm()
        super().connection_lost(exc)


def server_config(app: Any, settings: WebhookSettings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration the receiver runs with (tests serve the same one).

    Args:
        app: the receiver's ASGI app (deployments.webhook.create_app).
        settings: deadlines, connection cap, TLS files, address.
        **overrides: other uvicorn.Config arguments (log_level, ...).
    """
    protocol = type(
        "ReceiverProtocol", (DeadlineProtocol,), {"header_timeout": settings.header_timeout_seconds}
    )
    tls: dict[str, Any] = {}
    if settings.tls_certfile:
        tls = {"ssl_certfile": settings.tls_certfile, "ssl_keyfile": settings.tls_keyfile}
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=settings.shutdown_seconds,
        **tls,
        **overrides,
    )

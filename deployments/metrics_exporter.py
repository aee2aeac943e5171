"""The pipeline's Prometheus exporter: serves deployments.metrics over HTTP on a loopback port."""

from __future__ import annotations

import gzip
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import ThreadingWSGIServer, choose_encoder

from core.errors import ConfigError
from deployments.metrics import DEFAULT_CACHE_SECONDS, DEFAULT_DAYS, pipeline_registry

DEFAULT_PORT = 9108
DEFAULT_HOST = "127.0.0.1"


class Exposition:
    """A WSGI app serving `registry`, rendered at most once every `seconds` per format.

    The collector reads the Prefect API at most every few seconds, but prometheus_client renders
    every scrape anew: with a few thousand series (an environment, strategy and result each) that
    was most of the exporter's CPU under a 2 s scrape. Within `seconds`, a scrape gets the bytes
    (and their gzip) rendered for the one before.
    """

    def __init__(self, registry: CollectorRegistry, seconds: float) -> None:
        self.registry, self.seconds = registry, seconds
        self._lock = threading.Lock()
        self._rendered: dict[tuple[str, bool], tuple[float, bytes]] = {}  # (type, gzip) -> body

    def body(self, accept: str, gzipped: bool) -> tuple[str, bytes]:
        """The content type the Accept header asks for, and the exposition in it."""
        encoder, content_type = choose_encoder(accept)
        with self._lock:
            at, data = self._rendered.get((content_type, gzipped), (-float("inf"), b""))
            if time.monotonic() - at >= self.seconds:
                data = encoder(self.registry)
                data = gzip.compress(data, compresslevel=6) if gzipped else data
                self._rendered[(content_type, gzipped)] = (time.monotonic(), data)
        return content_type, data

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Answer a scrape of / or /metrics (gzipped when asked); 404 anything else."""
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only /metrics is served\n"]
        gzipped = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
        content_type, data = self.body(environ.get("HTTP_ACCEPT", ""), gzipped)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [data]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape."""


def serve(
    registry: CollectorRegistry,
    port: int,
    host: str = DEFAULT_HOST,
    render_seconds: float = DEFAULT_CACHE_SECONDS,
) -> tuple[WSGIServer, threading.Thread]:
    """Serve `registry` at http://host:port/metrics from a daemon thread.

    A scrape within `render_seconds` of the last gets what that one rendered (see Exposition).

    Run it next to the webhook receiver, pointed at the Prefect server the runs go to:

        PREFECT_API_URL=http://127.0.0.1:4200/api uv run python -m deployments.metrics_exporter

    Settings: KYB_METRICS_PORT (default 9108), KYB_METRICS_HOST (default 127.0.0.1),
    KYB_METRICS_DAYS (lookback window, default 30), KYB_METRICS_CACHE_SECONDS (default 10).

    Have Prometheus scrape it with a static target, e.g. in prometheus.yml
        scrape_configs:
          - job_name: kyb-pipeline
            scrape_interval: 30s
            static_configs: [{targets: ["127.0.0.1:9108"]}]

    or, on the local platform, through its file-based discovery:

        from sandbox.platform import Platform
        Platform().prometheus.add_target("kyb-pipeline", "127.0.0.1:9108", {"job": "kyb-pipeline"})

    Returns:
        The server (call `shutdown()` then `server_close()` to stop it) and its thread.
    """
    server = make_server(
        host, port, Exposition(registry, render_seconds), ThreadingWSGIServer, handler_class=_Quiet
    )
    thread = threading.Thread(target=server.serve_forever, name="kyb-metrics", daemon=True)
    thread.start()
    return server, thread


def _number(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    try:
        return float(text) if text else default
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number: set it to e.g. {default:g}") from None


def main() -> None:
    """Serve the pipeline metrics until interrupted, settings from KYB_METRICS_* (see above).

    Raises:
        ConfigError: PREFECT_API_URL is not set (the exporter never starts a throwaway server),
            or a KYB_METRICS_* value is not a number.
    """
    from prefect.settings import get_current_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not get_current_settings().api.url:
        raise ConfigError("set PREFECT_API_URL to the Prefect server whose runs are measured")
    port = int(_number("KYB_METRICS_PORT", DEFAULT_PORT))
    host = os.environ.get("KYB_METRICS_HOST", DEFAULT_HOST)
    days = _number("KYB_METRICS_DAYS", DEFAULT_DAYS)
    cache = _number("KYB_METRICS_CACHE_SECONDS", DEFAULT_CACHE_SECONDS)
    server, thread = serve(pipeline_registry(days, cache), port, host, cache)
    print(f"serving kyb_* metrics (last {days:g} days) at http://{host}:{port}/metrics", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()

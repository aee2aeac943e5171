"""The pipeline's Prometheus exporter: serves deployments.metrics over HTTP on a loopback port."""

from __future__ import annotations

import logging
import os
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from core.errors import ConfigError
from deployments.metrics import DEFAULT_CACHE_SECONDS, DEFAULT_DAYS, pipeline_registry

DEFAULT_PORT = 9108
DEFAULT_HOST = "127.0.0.1"


def serve(
    registry: CollectorRegistry, port: int, host: str = DEFAULT_HOST
) -> tuple[WSGIServer, threading.Thread]:
    """Serve `registry` at http://host:port/metrics from a daemon thread.

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
    return start_http_server(port, addr=host, registry=registry)


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
    registry = pipeline_registry(days, _number("KYB_METRICS_CACHE_SECONDS", DEFAULT_CACHE_SECONDS))
    server, thread = serve(registry, port, host)
    print(f"serving kyb_* metrics (last {days:g} days) at http://{host}:{port}/metrics", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()

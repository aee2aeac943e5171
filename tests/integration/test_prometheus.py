"""Prometheus really scrapes a loopback target, and prometheus-api-client reads the series back."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from blocks import PrometheusServer
from sandbox.platform import BLOCK_NAME, Platform


class _Metrics(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body if self.path == "/metrics" else b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def target() -> Iterator[tuple[str, str]]:
    """An exporter on 127.0.0.1 serving one gauge with a unique value; yields (address, run id)."""
    run_id = uuid.uuid4().hex[:8]
    handler = type("H", (_Metrics,), {"body": f'sandbox_probe{{run="{run_id}"}} 42\n'.encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", run_id
    server.shutdown()


def test_scrapes_loopback_target_and_client_reads_series(platform: Platform, target) -> None:
    address, run_id = target
    name = f"probe-{run_id}"
    platform.prometheus.add_target(name, address, {"track": "stable", "revision": "r1"})
    prom = PrometheusServer.load(BLOCK_NAME)
    assert prom.check()  # version string of the real server
    conn = prom.connect()
    query = f'sandbox_probe{{run="{run_id}"}}'
    result: list = []
    deadline = time.monotonic() + 60  # file_sd refresh (5 s) + scrape interval (2 s), with margin
    try:
        while time.monotonic() < deadline and not result:
            result = conn.custom_query(query)
            if not result:
                time.sleep(1)  # bounded by the deadline: waiting for the next scrape
    finally:
        platform.prometheus.remove_target(name)
    assert result, f"Prometheus never scraped {address}"
    series = result[0]
    assert float(series["value"][1]) == 42.0
    assert series["metric"]["track"] == "stable"
    assert series["metric"]["revision"] == "r1"
    assert series["metric"]["instance"] == address


def test_only_loopback_targets_are_accepted(platform: Platform) -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="loopback"):
        platform.prometheus.add_target("elsewhere", "10.0.0.7:8080")

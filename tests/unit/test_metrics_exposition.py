"""The exporter's HTTP answer: rendered once per interval, gzip when asked, only /metrics.

A real server on a free loopback port, scraped with httpx as Prometheus would scrape it.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterable, Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from deployments.metrics_exporter import Exposition, serve


class Counting(Collector):
    """A collector that says how many times it was collected."""

    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> Iterable[Metric]:
        self.calls += 1
        gauge = GaugeMetricFamily("kyb_test_collects", "Collections so far.")
        gauge.add_metric([], self.calls)
        yield gauge


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served() -> Iterator[tuple[str, Counting]]:
    collector, registry = Counting(), CollectorRegistry(auto_describe=False)
    registry.register(collector)
    port = _free_port()
    server, _ = serve(registry, port, render_seconds=60)
    yield f"http://127.0.0.1:{port}", collector
    server.shutdown()
    server.server_close()


def _value(text: str) -> float:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return families["kyb_test_collects"].samples[0].value


def test_scrapes_within_the_interval_share_one_rendering(served) -> None:
    url, collector = served
    first = httpx.get(f"{url}/metrics", timeout=10)
    again = httpx.get(f"{url}/metrics", timeout=10)
    assert first.status_code == again.status_code == 200
    assert first.headers["content-encoding"] == "gzip"  # httpx asks for it, and decodes it
    assert _value(first.text) == _value(again.text) == 1 and collector.calls == 1


def test_each_encoding_is_rendered_for_what_was_asked(served) -> None:
    url, _ = served
    plain = httpx.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"}, timeout=10)
    assert "content-encoding" not in plain.headers and _value(plain.text) == 1
    packed = httpx.get(url, headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert packed.headers["content-encoding"] == "gzip" and _value(packed.text) == 2
    assert httpx.get(f"{url}/other", timeout=10).status_code == 404


def test_a_new_rendering_after_the_interval() -> None:
    collector, registry = Counting(), CollectorRegistry(auto_describe=False)
    registry.register(collector)
    app = Exposition(registry, seconds=0)
    assert _value(app.body("", gzipped=False)[1].decode()) == 1
    content_type, data = app.body("", gzipped=True)
    assert content_type.startswith("text/plain") and _value(gzip.decompress(data).decode()) == 2

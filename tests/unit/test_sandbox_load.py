"""The platform's load generator: loopback only, bounded, answers counted by serving version."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox.errors import PlatformError
from sandbox.load import Load


class _Version(BaseHTTPRequestHandler):
    """Answers v1 for Host a.test, 500 for Host b.test (a server stand-in for a route's pods)."""

    def do_GET(self) -> None:
        if self.headers["Host"] == "b.test":
            self.send_response(500)
            self.end_headers()
            return
        body = json.dumps({"status": "verified", "version": "v1"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Version)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("where", ["http://10.0.0.7:80", "http://example.com", "http://0.0.0.0:1"])
def test_an_address_outside_loopback_is_refused_before_anything_is_sent(where: str) -> None:
    with pytest.raises(PlatformError, match=r"only sends to 127\.0\.0\.0/8"):
        Load([where])


def test_answers_are_counted_by_version_or_status_per_host(url: str) -> None:
    good, bad = Load([url], host="a.test"), Load([url], host="b.test")
    assert good.send(30) == {"v1": 30}
    assert bad.send(10) == {"500": 10}
    assert good.share("v1") == 1.0 and bad.share("v1") == 0.0
    assert Load(["http://127.0.0.1:9"]).send(2) == {"error": 2}  # nobody listens: no answer


def test_the_request_count_bounds_every_mode(url: str) -> None:
    load = Load([url], host="a.test", max_requests=25)
    assert sum(load.send(100).values()) == 25
    with Load([url], host="a.test", per_second=500, max_requests=40) as background:
        time.sleep(1)
    assert background.sent == 40


def test_the_time_limit_bounds_the_background_load(url: str) -> None:
    with Load([url], host="a.test", per_second=50, max_seconds=0.5) as load:
        time.sleep(1.5)
        stopped_at = load.sent
        time.sleep(0.3)
        assert load.sent == stopped_at  # nothing after the limit, though the block goes on
    assert 5 <= stopped_at <= 30
    first, last = load.timeline[0][0], load.timeline[-1][0]
    assert last - first < 0.6

"""The receiver as served: deadlines for headers and body, a connection cap, TLS, a bounded stop."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from pydantic import SecretStr

from deployments.webhook import PATH, create_app
from deployments.webhook_server import server_config
from deployments.webhook_settings import WebhookSettings
from sandbox.pki import PlatformCA
from sandbox.settings import HOST, Settings

SECRET = "s3cret-for-server-tests"
ROOT = Path(__file__).resolve().parents[2]


def _settings(**kw: object) -> WebhookSettings:
    return WebhookSettings(secret=SecretStr(SECRET), repositories=("acme/kyb",), **kw)


@contextmanager
def served(settings: WebhookSettings) -> Iterator[int]:
    """The receiver under uvicorn with the product's server_config, on a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((HOST, 0))
    config = server_config(create_app(settings), settings, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded by the deadline
    try:
        assert server.started, "uvicorn did not start"
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def _closed_within(conn: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `conn` (None if it did not within `seconds`)."""
    started = time.monotonic()
    conn.settimeout(seconds)
    try:
        while conn.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_a_request_whose_headers_never_end_is_cut_off() -> None:
    with served(_settings(header_timeout_seconds=1)) as port:
        with socket.create_connection((HOST, port), timeout=5) as conn:
            conn.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n")  # and no more
            took = _closed_within(conn, 10)
        assert took is not None and took < 5, took
        assert httpx.get(f"http://{HOST}:{port}/healthz", timeout=5).status_code == 200


def test_a_body_that_never_ends_gets_408() -> None:
    with served(_settings(body_timeout_seconds=1)) as port:
        with socket.create_connection((HOST, port), timeout=10) as conn:
            conn.sendall(
                b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n0123456789"
            )
            answer = conn.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]


def test_connections_over_the_cap_get_503() -> None:
    with served(_settings(max_connections=2, header_timeout_seconds=30)) as port:
        held = [socket.create_connection((HOST, port), timeout=5) for _ in range(2)]
        try:
            for conn in held:
                conn.sendall(b"GET /healthz HTTP/1.1\r\n")  # half a request each
            time.sleep(0.5)  # let the server register both connections
            assert httpx.get(f"http://{HOST}:{port}/healthz", timeout=5).status_code == 503
        finally:
            for conn in held:
                conn.close()
        deadline = time.monotonic() + 5
        while (status := httpx.get(f"http://{HOST}:{port}/healthz", timeout=5).status_code) != 200:
            assert time.monotonic() < deadline, "the cap was not freed when connections closed"
            time.sleep(0.1)  # bounded by the deadline: the server notices the closes at once
        assert status == 200


def test_https_with_a_given_certificate(tmp_path: Path) -> None:
    cert = PlatformCA(Settings(home=tmp_path)).server_cert("webhook", [HOST])
    settings = _settings(tls_certfile=str(cert.cert), tls_keyfile=str(cert.key))
    with served(settings) as port:
        trust = ssl.create_default_context(cafile=str(cert.ca))
        answer = httpx.get(f"https://{HOST}:{port}/healthz", verify=trust, timeout=5)
        assert answer.status_code == 200
        try:
            httpx.get(f"http://{HOST}:{port}/healthz", timeout=5)
            plain = "answered"
        except httpx.HTTPError:
            plain = "refused"
        assert plain == "refused"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def test_sigterm_stops_the_receiver_while_a_request_hangs() -> None:
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "PREFECT_API_URL": f"http://{HOST}:9/api",  # never called: no push completes
        "KYB_WEBHOOK_SECRET": SECRET,
        "KYB_WEBHOOK_REPOSITORIES": "acme/kyb",
        "KYB_WEBHOOK_PORT": str(port),
        "KYB_WEBHOOK_BODY_TIMEOUT_SECONDS": "120",
        "KYB_WEBHOOK_SHUTDOWN_SECONDS": "2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployments.webhook"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)  # bounded by the deadline: the receiver is starting
        with socket.create_connection((HOST, port), timeout=5) as conn:
            conn.sendall(
                b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 1048576\r\n\r\n{"
            )
            time.sleep(0.5)  # the request is now in the app, waiting for its body
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
            took = time.monotonic() - started
        # uvicorn ends by re-raising the signal once shut down: -15 is its clean stop
        assert code in (0, -signal.SIGTERM), proc.stderr.read().decode()[-2000:]
        assert took < 10, took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)

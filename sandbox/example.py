"""The example KYB service as loopback processes: built once from its Go source, run with faults."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from sandbox.errors import PlatformError
from sandbox.install import go_build
from sandbox.settings import HOST, Settings

SOURCE = Path(__file__).resolve().parents[1] / "examples" / "kyb-platform"


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in [*sorted(SOURCE.glob("*.go")), SOURCE / "go.mod", SOURCE / "go.sum"]:
        if not path.name.endswith("_test.go"):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def binary(settings: Settings | None = None) -> Path:
    """The example service's binary, built into the cache on first use (keyed by its source)."""
    out = (settings or Settings()).cache / f"kyb-platform-{_source_hash()}"
    exe = out / "kyb-platform"
    if not exe.exists():
        go_build("example", SOURCE, ["."], out)
    return exe


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Instance:
    """One running instance: its base URL, listen address and process."""

    url: str
    address: str
    process: subprocess.Popen


@contextlib.contextmanager
def run(
    *,
    error_rate: float = 0.0,
    latency_ms: int = 0,
    unhealthy: str = "",
    version: str = "v1.0.0",
    settings: Settings | None = None,
    port: int | None = None,
) -> Iterator[Instance]:
    """Run one instance on a free loopback port until the block ends; yield it once it answers.

    Args:
        error_rate: fraction of /api/v1/verify requests answering 500.
        latency_ms: milliseconds added to each /api/v1/verify request.
        unhealthy: comma-separated dependencies /health reports unhealthy.
        version: the version /health and /api/v1/verify report.
        settings: the platform's settings (where the binary is built); the defaults if None.
        port: the loopback port to listen on; a free one by default.
    """
    exe, port = binary(settings), port or free_port()
    address = f"{HOST}:{port}"
    args = [
        str(exe),
        "--listen",
        address,
        "--error-rate",
        str(error_rate),
        "--latency-ms",
        str(latency_ms),
        "--unhealthy",
        unhealthy,
        "--version",
        version,
        "--shutdown-timeout",
        "2s",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://{address}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{url}/metrics", timeout=1)
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
                fix = "run `go build` in examples/kyb-platform to see why"
                raise PlatformError("example", f"no answer on {address}: {err}", fix)
            time.sleep(0.1)
        yield Instance(url, address, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def go_available() -> bool:
    """True if the Go toolchain is installed (building the example needs it)."""
    return bool(shutil.which("go") or os.path.exists("/usr/local/go/bin/go"))

"""Stand-ins: the released image itself, run on loopback, answering for an environment's pods.

The local cluster's pods are simulated (kwok): nothing listens behind them and Prometheus cannot
scrape them. For the demo and the delivery tests, the pipeline runs the very image it released
(by digest, pulled from the registry with the registry block) as a host-network container on a
free loopback port, and asks Prometheus to scrape it with the labels a pod of that release would
carry (`service`, `namespace`, `track`). Integration tests, smoke tests and analyses then hit real
code of the released version. On a real cluster none of this runs: the pods are the endpoints.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import docker
import httpx

from blocks import ContainerRegistry
from core.errors import PlatformError
from sandbox.components.prometheus import Prometheus
from sandbox.example import free_port
from sandbox.fleet import wait_scraped
from sandbox.settings import HOST

TRACKS = ("stable", "canary", "preview")  # one container answers for every track of a release


@dataclass
class StandIn:
    """A running stand-in: its base URL and the container."""

    url: str
    container: object


def _wait_answering(url: str, container, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{url}/metrics", timeout=1)
            return
        container.reload()
        if container.status == "exited":
            break
        time.sleep(0.2)
    logs = container.logs(tail=20).decode(errors="replace")
    raise PlatformError("stand-in", f"the image did not answer on {url}: {logs}",
                        "run the image by hand with --listen 127.0.0.1:PORT")  # fmt: skip


@contextlib.contextmanager
def stand_in(
    registry: ContainerRegistry,
    image: str,
    prometheus: Prometheus,
    app: str,
    namespace: str,
    tracks: Sequence[str] = TRACKS,
    error_rate: float = 0.0,
    latency_ms: int = 0,
) -> Iterator[StandIn]:
    """Run `image` on loopback, scraped under `tracks`, until the block ends.

    Args:
        error_rate, latency_ms: faults injected into the business endpoint (demo and tests).
    """
    client = docker.from_env()
    registry.login(client)
    client.images.pull(image)
    port = free_port()
    env = {"KYB_ERROR_RATE": str(error_rate), "KYB_LATENCY_MS": str(latency_ms)}
    container = client.containers.run(image, ["--listen", f"{HOST}:{port}"], environment=env,
                                      network_mode="host", detach=True)  # fmt: skip
    url, names = f"http://{HOST}:{port}", []
    try:
        _wait_answering(url, container)
        for track in tracks:
            name = re.sub(r"[^a-z0-9-]+", "-", f"standin-{namespace}-{app}-{track}".lower())
            labels = {"service": app, "namespace": namespace, "track": track}
            prometheus.add_target(name, f"{HOST}:{port}", labels)
            names.append(name)
        for track in tracks:
            wait_scraped(prometheus, {"service": app, "namespace": namespace, "track": track})
        yield StandIn(url, container)
    finally:
        for name in names:
            prometheus.remove_target(name)
        container.remove(force=True)

"""Stand-ins: the released image itself, run on loopback, answering for an environment's pods."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import httpx

from blocks import ContainerRegistry
from core.release.spec import ReleaseSpec
from sandbox.components.prometheus import Prometheus
from sandbox.errors import PlatformError
from sandbox.example import Traffic, free_port
from sandbox.fleet import wait_scraped, wait_traffic
from sandbox.platform import Platform
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
    raise PlatformError(
        "stand-in",
        f"the image did not answer on {url}: {logs}",
        "run the image by hand with --listen 127.0.0.1:PORT",
    )


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
        registry: the registry block the image is pulled with.
        image: the released image, by digest.
        prometheus: the platform's Prometheus, told to scrape the stand-in.
        app: the release's app (the `service` label).
        namespace: the release's namespace (the `namespace` label).
        tracks: the `track` labels the one stand-in answers for.
        error_rate: the fraction of business requests that fail (demo and tests).
        latency_ms: milliseconds added to each business request (demo and tests).
    """
    client = docker.from_env()
    registry.login(client)
    client.images.pull(image)
    port = free_port()
    env = {"KYB_ERROR_RATE": str(error_rate), "KYB_LATENCY_MS": str(latency_ms)}
    container = client.containers.run(
        image, ["--listen", f"{HOST}:{port}"], environment=env, network_mode="host", detach=True
    )
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


@contextlib.contextmanager
def endpoints(
    spec: ReleaseSpec, environment: str, registry: ContainerRegistry, options: dict[str, Any]
) -> Iterator[str]:
    """The delivery's endpoint provider `sandbox-stand-ins` (entry point).

    a stand-in of the released image, scraped as the release's pods would be, with traffic flowing
    to it.

    Options: `fault_error_rate` (production only: errors the stand-in injects, the demo's faulty
    version that passes staging and fails under production traffic).
    """
    faults = float(options.get("fault_error_rate", 0.0)) if environment == "production" else 0.0
    prometheus = Platform().prometheus
    labels = {"service": spec.app, "namespace": spec.namespace, "track": "stable"}
    with (
        stand_in(
            registry, spec.image, prometheus, spec.app, spec.namespace, error_rate=faults
        ) as inst,
        Traffic([inst.url]),
    ):
        wait_traffic(prometheus, labels)  # the checks then measure served requests
        yield inst.url

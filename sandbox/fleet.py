"""Example-service instances that the local Prometheus scrapes, labelled like release tracks."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator

import httpx

from sandbox import example
from sandbox.components.prometheus import Prometheus
from sandbox.errors import PlatformError

SEEN_TIMEOUT_SECONDS = 60  # file_sd refresh (5 s) plus a scrape (2 s), with a wide margin


def _wait_for(prometheus: Prometheus, query: str, why: str) -> float:
    """Poll an instant query until it returns a series.

    the seconds it took. Bounded by SEEN_TIMEOUT_SECONDS: the wait is for Prometheus' next scrapes,
    which no API announces.
    """
    start = time.monotonic()
    while time.monotonic() - start < SEEN_TIMEOUT_SECONDS:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            resp = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=5)
            if resp.json()["data"]["result"]:
                return time.monotonic() - start
        time.sleep(0.5)
    raise PlatformError(
        "prometheus",
        f"{why} within {SEEN_TIMEOUT_SECONDS}s",
        "check `sandbox status`, and that the instance answers",
    )


def _matchers(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


def wait_scraped(prometheus: Prometheus, labels: dict[str, str]) -> float:
    """Wait until Prometheus has scraped a target with `labels`; return the seconds it took."""
    matchers = _matchers(labels)
    return _wait_for(prometheus, f"up{{{matchers}}} == 1", f"no scrape of a target with {matchers}")


@contextlib.contextmanager
def scraped(
    prometheus: Prometheus, labels: dict[str, str], **faults: float | int | str
) -> Iterator[example.Instance]:
    """Run one example instance (faults as in example.run), scraped with `labels`, until the end.

    Yields once Prometheus has scraped it at least once.
    """
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(labels.values()).lower()).strip("-")[:60]
    with example.run(**faults) as inst:  # type: ignore[arg-type]
        prometheus.add_target(name, inst.address, labels)
        try:
            wait_scraped(prometheus, labels)
            yield inst
        finally:
            prometheus.remove_target(name)


def wait_traffic(prometheus: Prometheus, labels: dict[str, str]) -> float:
    """Wait until Prometheus sees requests served by a target with `labels`.

    return the seconds it took. The latency histogram is what appears last (its series are born with
    the first request, and a rate needs two scrapes of them), so its count is what is waited for.
    """
    matchers = _matchers(labels)
    query = f"sum(rate(http_request_duration_seconds_count{{{matchers}}}[30s])) > 0"
    return _wait_for(prometheus, query, f"no requests seen for {matchers}")

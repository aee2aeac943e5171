"""A bounded load generator for the platform: GET requests to loopback addresses, counted by answer.

It plays the users of a released service: through Traefik's entry point with a route's host
name, or straight at instances. Every generator is bounded twice, by a request count and by a
time limit, and refuses any address outside 127.0.0.0/8 before it sends anything.

Each answer is counted under the version that served it (the example service's JSON `version`)
when it succeeded, else under its status code, or "error" when no answer came; with timestamps, so
a benchmark can find the first second after an abort in which no request reached the canary.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from sandbox.errors import PlatformError

VERIFY = "/api/v1/verify?business_id=load"  # the example service's business request
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def check_loopback(url: str) -> str:
    """`url` if its host is a loopback IP address (or localhost); PlatformError otherwise."""
    host = urlsplit(url).hostname or ""
    try:
        inside = host == "localhost" or ipaddress.ip_address(host) in LOOPBACK
    except ValueError:
        inside = False
    if not inside:
        raise PlatformError(
            "load",
            f"{url!r} is not a loopback address: the load generator only sends to 127.0.0.0/8",
            "give the entry point or instance as http://127.x.y.z:PORT",
        )
    return url.rstrip("/")


def answer_of(resp: httpx.Response) -> str:
    """What a response counts as: the serving version when it succeeded, else its status code."""
    if resp.is_success:
        try:
            return str(resp.json()["version"])
        except (ValueError, KeyError, TypeError):
            return str(resp.status_code)
    return str(resp.status_code)


@dataclass
class Load:
    """GET load on some base URLs (round robin), bounded by `max_requests` and `max_seconds`.

    `send(n)` sends n requests now and returns their tally; as a context manager it sends
    `per_second` requests a second from a background thread until the block ends or a bound is
    reached.

    Args:
        urls: base URLs, each on a loopback address.
        host: the Host header (a route's host name); empty: the URL's own.
        path: the request path and query.
        per_second: the background rate.
        max_requests: no more requests than this, in all.
        max_seconds: no request after this many seconds from the first.
        timeout: each request's timeout in seconds.
    """

    urls: list[str]
    host: str = ""
    path: str = VERIFY
    per_second: float = 20.0
    max_requests: int = 100_000
    max_seconds: float = 3600.0
    timeout: float = 5.0
    tally: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, answer)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float | None = None
    _next: int = 0

    def __post_init__(self) -> None:
        if not self.urls:
            raise PlatformError("load", "no URL to send to", "give at least one base URL")
        self.urls = [check_loopback(u) for u in self.urls]
        self._lock = threading.Lock()  # send() may run beside the background thread
        self._client = httpx.Client(
            timeout=self.timeout,
            headers={"Host": self.host} if self.host else {},
            trust_env=False,  # never through a proxy: straight to loopback
        )

    @property
    def sent(self) -> int:
        """Requests sent so far."""
        return len(self.timeline)

    def _bounded(self) -> bool:
        if self._started is None:
            self._started = time.monotonic()
        elapsed = time.monotonic() - self._started
        return self.sent >= self.max_requests or elapsed >= self.max_seconds

    def _one(self) -> str:
        with self._lock:
            url = self.urls[self._next % len(self.urls)]
            self._next += 1
        try:
            answer = answer_of(self._client.get(f"{url}{self.path}"))
        except httpx.HTTPError:
            answer = "error"
        with self._lock:
            self.tally[answer] += 1
            self.timeline.append((time.monotonic(), answer))
        return answer

    def send(self, count: int) -> Counter[str]:
        """Send `count` requests one after another (within the bounds); their answers."""
        seen: Counter[str] = Counter()
        for _ in range(count):
            if self._bounded():
                break
            seen[self._one()] += 1
        return seen

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._loop, name="load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the background thread (if any) and close the connections."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.timeout + 5)
        self._client.close()

    def _loop(self) -> None:
        gap = 1.0 / self.per_second
        while not self._stop.is_set() and not self._bounded():
            self._one()
            self._stop.wait(gap)

    def share(self, answer: str) -> float:
        """The fraction of all answers so far that were `answer`."""
        total = sum(self.tally.values())
        return self.tally[answer] / total if total else 0.0

"""Webhook benchmark: signed pushes through the real receiver, each timed to its flow run.

uv run python -m benchmarks.webhook [--requests 200] [--api-url http://127.0.0.1:4310/api]

One run prints:
- webhook received -> flow run created: each signed push POSTed to the receiver
  (deployments.webhook.create_app served by uvicorn on a free loopback port, with its real
  PrefectRunStarter) and timed to the 202 carrying the run id; p50/p95/max over --requests.
- the baseline: the same run created straight through the API (Prefect client, the same
  parameters, idempotency key, name and tags as the receiver sends), one after each push so both
  meet the same server load; and the ratio of the two.
- how often the Prefect client retried after a 503. On SQLite the server answers 503 when a
  write meets "database is locked", and the client sleeps 2 s, then 4 s, ... before retrying:
  those sleeps are the seconds-long tail.
- git push -> delivery running (benchmarks/webhook_push.py): commits pushed to the platform's
  git server, whose hook calls the receiver; timed until the run exists and until a real worker
  has it Running.

Without --api-url it talks to the platform's server with the platform's client settings (URL
and auth from its 0600 profiles file); --api-url points it at another server (e.g. a private one
without auth; give PREFECT_API_AUTH_STRING in the environment if that one needs auth).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

GOAL_P95_MS = 500.0  # issue 15's goal for webhook received -> flow run created


def configure(api_url: str | None) -> str:
    """Point this process (and its children) at the API before prefect is imported; its URL."""
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url.rstrip("/")
        for name in ("PREFECT_PROFILES_PATH", "PREFECT_PROFILE"):
            os.environ.pop(name, None)  # the platform's profile would add its auth and URL
    else:
        from sandbox.components.prefect_server import client_env

        os.environ.update(client_env(os.environ))
    return os.environ["PREFECT_API_URL"]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


def summary(ms: list[float]) -> str:
    """p50, p95 and max of milliseconds."""
    return (
        f"p50 {statistics.median(ms):.1f} ms  p95 {percentile(ms, 95):.1f} ms  max {max(ms):.1f} ms"
    )


class Retries(logging.Handler):
    """Counts the Prefect client's retries after a retryable answer (503, 502, 429).

    Counted apart for the baseline's threads (marked in `baseline`) and the receiver's.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.baseline = threading.local()
        self.counts = {"receiver": 0, "baseline": 0}

    def emit(self, record: logging.LogRecord) -> None:
        """Count a record that announces a retry."""
        if "retryable" not in record.getMessage():
            return
        side = "baseline" if getattr(self.baseline, "on", False) else "receiver"
        self.counts[side] += 1  # under the handler's own lock (logging.Handler.handle)

    def install(self) -> None:
        """Listen to prefect.client at DEBUG; its warnings still reach stderr, nothing else."""
        log = logging.getLogger("prefect.client")
        log.setLevel(logging.DEBUG)
        log.propagate = False
        loud = logging.StreamHandler(sys.stderr)
        loud.setLevel(logging.WARNING)
        log.addHandler(loud)
        log.addHandler(self)


def existing_runs(ids: list[str]) -> int:
    """How many of these flow run ids the Prefect API knows."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    found = 0
    with get_client(sync_client=True) as client:
        for start in range(0, len(ids), 200):
            batch = ids[start : start + 200]
            flt = FlowRunFilter(id=FlowRunFilterId(any_=batch))
            found += len(client.read_flow_runs(flow_run_filter=flt, limit=200))
    return found


def direct_create(deployment_id: Any, body: bytes, retries: Retries) -> Callable[[Any], float]:
    """A function creating, with a given client, the run the receiver creates for `body`.

    Returns its latency in seconds.
    """
    from deployments.webhook_github import body_digest, parse_push, run_parameters
    from deployments.webhook_runs import RunRequest

    push = parse_push(body)
    env = "staging" if push.branch == "develop" else "production"
    params = run_parameters(push, env, "127.0.0.1:5001/kyb-platform")
    # the receiver's own key, name and tags, under a fresh digest so both create a new run
    request = RunRequest(f"{time.time_ns()}", "", params, "api-" + body_digest(body))

    def create(client: Any) -> float:
        retries.baseline.on = True
        t0 = time.perf_counter()
        client.create_flow_run_from_deployment(
            deployment_id,
            parameters=params,
            name=request.run_name,
            idempotency_key=request.idempotency_key,
            tags=["github", f"env:{env}"],
        )
        return time.perf_counter() - t0

    return create


def bench(requests: int, concurrency: int, deadline_s: float, baseline: bool) -> dict[str, Any]:
    """Send the pushes (each followed by its baseline create) until done or the deadline."""
    from prefect.client.orchestration import get_client
    from pydantic import SecretStr

    from deployments.webhook import PATH, create_app
    from deployments.webhook_settings import WebhookSettings
    from tests.integration.test_webhook import (
        REPOS,
        SECRET,
        drop_deployment,
        make_deployment,
        serving,
        signed_push,
    )

    retries = Retries()
    retries.install()
    deployment = make_deployment()
    settings = WebhookSettings(secret=SecretStr(SECRET), repositories=REPOS, deployment=deployment)
    hook: list[float] = []
    api: list[float] = []
    run_ids: list[str] = []
    failures: list[str] = []
    clients = threading.local()
    opened: list[Any] = []  # the baseline's clients, one per thread
    stop = time.monotonic() + deadline_s
    try:
        with get_client(sync_client=True) as client:
            deployment_id = client.read_deployment_by_name(deployment).id
        with serving(create_app(settings)) as url, httpx.Client(timeout=30) as http:

            def one(i: int) -> None:
                if time.monotonic() > stop:
                    return
                body, headers = signed_push("develop" if i % 2 else "main")
                t0 = time.perf_counter()
                answer = http.post(url + PATH, content=body, headers=headers)
                elapsed = time.perf_counter() - t0
                if answer.status_code == 202 and answer.json().get("flow_run_id"):
                    hook.append(elapsed * 1000)
                    run_ids.append(answer.json()["flow_run_id"])
                else:
                    failures.append(f"{answer.status_code} {answer.text[:120]}")
                if baseline:
                    if not hasattr(clients, "api"):
                        clients.api = get_client(sync_client=True).__enter__()
                        opened.append(clients.api)
                    api.append(direct_create(deployment_id, body, retries)(clients.api) * 1000)

            t_start = time.monotonic()
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                list(pool.map(one, range(requests)))
            wall = time.monotonic() - t_start
            counts = dict(retries.counts)  # not the clean-up's
        confirmed = existing_runs(run_ids)
    finally:
        for client in opened:
            client.__exit__(None, None, None)
        drop_deployment(deployment)
    return {
        "hook": hook,
        "api": api,
        "failures": failures,
        "confirmed": confirmed,
        "wall": wall,
        "retries": counts,
    }


def report(api_url: str, args: argparse.Namespace, got: dict[str, Any]) -> None:
    """Print the request figures."""
    hook, api, failures = got["hook"], got["api"], got["failures"]
    if not hook:
        sys.exit(f"no run was created; failures: {failures[:3]}")
    print(f"Prefect API {api_url}")
    print(
        f"webhook received -> flow run created ({len(hook)}/{args.requests} signed pushes through "
        f"the receiver, concurrency {args.concurrency}, {got['wall']:.1f} s wall):"
    )
    p95 = percentile(hook, 95)
    verdict = "met" if p95 < GOAL_P95_MS else "NOT met"
    print(f"  {summary(hook)}   (goal p95 < {GOAL_P95_MS:.0f} ms: {verdict})")
    print(
        f"  runs confirmed through the API: {got['confirmed']}/{len(hook)}; failed requests: "
        f"{len(failures)}{' e.g. ' + failures[0] if failures else ''}"
    )
    if api:
        print(f"baseline, {len(api)} runs created straight through the API: {summary(api)}")
        print(
            f"ratio receiver/API: p50 {statistics.median(hook) / statistics.median(api):.2f}x  "
            f"p95 {p95 / percentile(api, 95):.2f}x  max {max(hook) / max(api):.2f}x"
        )
    counts = got["retries"]
    print(
        "Prefect client retries after a 503 (SQLite 'database is locked'; each sleeps 2 s, "
        f"4 s, ...): receiver {counts['receiver']}, baseline {counts['baseline']}"
    )


def main() -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", help="Prefect API to use (default: the platform's)")
    parser.add_argument("--requests", type=int, default=200, help="signed pushes to send")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=600, help="seconds for all requests")
    parser.add_argument("--no-baseline", action="store_true", help="skip the direct API creates")
    parser.add_argument("--pushes", type=int, default=3, help="git pushes (0: none)")
    parser.add_argument(
        "--worker-poll",
        type=float,
        default=10,
        help="the benchmark worker's PREFECT_WORKER_QUERY_SECONDS (Prefect's default: 10)",
    )
    parser.add_argument(
        "--no-worker", action="store_true", help="time pushes only until the run exists"
    )
    args = parser.parse_args()
    api_url = configure(args.api_url)
    httpx.get(f"{api_url}/health", timeout=10).raise_for_status()
    got = bench(args.requests, args.concurrency, args.deadline, not args.no_baseline)
    report(api_url, args, got)
    if args.pushes > 0:
        from benchmarks.webhook_push import push_to_running

        push_to_running(args.pushes, None if args.no_worker else args.worker_poll)


if __name__ == "__main__":
    main()

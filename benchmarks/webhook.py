"""Webhook benchmark: signed pushes to the receiver, each timed to the 202 carrying its run id."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

# Before prefect is imported: talk to the platform's server, start no ephemeral one, no analytics.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_API_URL", "http://127.0.0.1:4200/api")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from pydantic import SecretStr

from deployments.webhook import PATH, create_app
from deployments.webhook_github import parse_push, run_parameters
from deployments.webhook_settings import WebhookSettings
from tests.integration.test_webhook import (
    REPOS,
    SECRET,
    drop_deployment,
    make_deployment,
    serving,
    signed_push,
)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


def existing_runs(ids: list[str]) -> int:
    """How many of these flow run ids the Prefect API knows."""
    found = 0
    with get_client(sync_client=True) as client:
        for start in range(0, len(ids), 200):
            batch = ids[start : start + 200]
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=batch)), limit=200
            )
            found += len(runs)
    return found


def direct_creates(deployment: str, count: int, deadline_s: float = 60) -> list[float]:
    """Baseline.

    seconds per flow run created straight through the API (no receiver), as many of `count` as fit
    in the deadline.
    """
    times: list[float] = []
    stop = time.monotonic() + deadline_s
    params = run_parameters(parse_push(signed_push()[0]), "staging", "127.0.0.1:5001/kyb-platform")
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        while len(times) < count and time.monotonic() < stop:
            t0 = time.perf_counter()
            client.create_flow_run_from_deployment(deployment_id, parameters=params)
            times.append(time.perf_counter() - t0)
    return times


def summary(ms: list[float]) -> str:
    """p50, p95 and max of milliseconds."""
    p50, p95 = statistics.median(ms), percentile(ms, 95)
    return f"p50 {p50:.1f} ms  p95 {p95:.1f} ms  max {max(ms):.1f} ms"


def bench(requests: int, concurrency: int, deadline_s: float, baseline: int) -> None:
    """Send the requests (stopping at the deadline) and print the latency figures."""
    httpx.get(f"{os.environ['PREFECT_API_URL']}/health", timeout=10).raise_for_status()
    deployment = make_deployment()
    settings = WebhookSettings(secret=SecretStr(SECRET), repositories=REPOS, deployment=deployment)
    latencies: list[float] = []
    run_ids: list[str] = []
    failures: list[str] = []
    stop = time.monotonic() + deadline_s
    try:
        with serving(create_app(settings)) as url, httpx.Client(timeout=15) as http:

            def one(i: int) -> None:
                if time.monotonic() > stop:
                    return
                body, headers = signed_push("develop" if i % 2 else "main")
                t0 = time.perf_counter()
                answer = http.post(url + PATH, content=body, headers=headers)
                elapsed = time.perf_counter() - t0
                if answer.status_code == 202 and answer.json().get("flow_run_id"):
                    latencies.append(elapsed)
                    run_ids.append(answer.json()["flow_run_id"])
                else:
                    failures.append(f"{answer.status_code} {answer.text[:120]}")

            t_start = time.monotonic()
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                list(pool.map(one, range(requests)))
            wall = time.monotonic() - t_start
        confirmed = existing_runs(run_ids)
        direct = [x * 1000 for x in direct_creates(deployment, baseline)] if baseline else []
    finally:
        drop_deployment(deployment)
    if not latencies:
        sys.exit(f"no run was created; failures: {failures[:3]}")
    ms = [x * 1000 for x in latencies]
    print(
        f"webhook request -> flow run created ({len(ms)}/{requests} requests, "
        f"concurrency {concurrency}, {wall:.1f}s wall, {len(ms) / wall:.1f} req/s):"
    )
    print(f"  {summary(ms)}")
    print(
        f"  runs confirmed through the API: {confirmed}/{len(run_ids)}; failed requests: "
        f"{len(failures)}{' e.g. ' + failures[0] if failures else ''}"
    )
    if direct:
        print(f"baseline, {len(direct)} runs created straight through the API: {summary(direct)}")


def main() -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=120, help="seconds for all requests")
    parser.add_argument("--baseline", type=int, default=20, help="direct API creates to compare")
    args = parser.parse_args()
    bench(args.requests, args.concurrency, args.deadline, args.baseline)


if __name__ == "__main__":
    main()

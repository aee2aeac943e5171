"""Analysis benchmarks on the local platform (run `uv run sandbox up` first)."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
import uuid

from sandbox.components.prefect_server import client_env

# Before prefect is imported: every thread talks to the platform's server, nothing phones home.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.update(client_env(os.environ))  # the platform's API and auth (0600 profiles)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from prefect import flow

from blocks import PrometheusServer
from core.analysis.builtins import BUILTINS
from core.analysis.judge import JudgeConfig
from core.analysis.templates import AnalysisTemplate, rescheduled
from core.analysis.verdict import Verdict
from core.release.actions import AnalysisPhase
from core.release.spec import AnalysisRef, ReleaseSpec
from sandbox.components.prometheus import SCRAPE_INTERVAL
from sandbox.fleet import scraped
from sandbox.load import Load
from sandbox.platform import BLOCK_NAME, Platform
from tasks.prometheus import PrometheusRunner

SCRAPE = float(SCRAPE_INTERVAL.rstrip("s"))
NS = "bench-analysis"


def _template(name: str, **schedule: float) -> AnalysisTemplate:
    return rescheduled(BUILTINS[name], **schedule)


def _spec(app: str) -> ReleaseSpec:
    return ReleaseSpec.model_validate(
        {
            "app": app,
            "namespace": NS,
            "image": "127.0.0.1:5001/x@sha256:" + "b" * 64,
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        }
    )


def _ref(*names: str) -> AnalysisRef:
    return AnalysisRef.model_validate({"templates": [{"templateName": n} for n in names]})


@flow(name="analysis-benchmark")
def _analyse(runner: PrometheusRunner, names: tuple[str, ...], app: str) -> Verdict:
    return runner.run(_ref(*names), AnalysisPhase.STEP, _spec(app), "bench")


def time_to_failed(plat: Platform, prom: PrometheusServer, interval: float) -> float:
    """Seconds from moving traffic onto a faulty instance to the analysis's Failed verdict."""
    app = f"bench-{uuid.uuid4().hex[:6]}"
    labels = {"service": app, "namespace": NS, "track": "canary"}
    template = _template(
        "error-rate",
        interval=interval,
        count=1000,
        failure_limit=0,
        inconclusive_limit=1000,
        initial_delay=2 * SCRAPE,
    )
    runner = PrometheusRunner(prom, {"error-rate": template})
    result: dict[str, object] = {}

    def work() -> None:
        result["verdict"] = _analyse(runner, ("error-rate",), app)
        result["at"] = time.monotonic()

    faulty = scraped(plat.prometheus, labels, error_rate=0.3)
    with (
        scraped(plat.prometheus, labels) as good,
        faulty as bad,
        Load([good.url], per_second=20) as traffic,
    ):
        time.sleep(3 * SCRAPE)  # healthy rates exist before the analysis starts
        thread = threading.Thread(target=work)
        thread.start()
        time.sleep(2 * interval + random.uniform(0, interval))  # anywhere in the schedule
        switched = time.monotonic()
        traffic.urls[:] = [bad.url]
        thread.join(timeout=20 * interval + 60)
    verdict = result.get("verdict")
    if not isinstance(verdict, Verdict) or verdict.outcome != "Failed":
        raise SystemExit(f"expected a Failed verdict, got {verdict}")
    return float(result["at"]) - switched  # type: ignore[arg-type]


def queries_per_step(plat: Platform, prom: PrometheusServer, judge: bool) -> tuple[int, int]:
    """(queries, measurement rounds) of one 3-metric analysis of a healthy canary."""
    app = f"bench-{uuid.uuid4().hex[:6]}"
    schedule = {"interval": 2, "count": 3, "initial_delay": 4}
    templates = {name: _template(name, **schedule) for name in BUILTINS}
    runner = PrometheusRunner(prom, templates, JudgeConfig(min_samples=2) if judge else None)
    canary = {"service": app, "namespace": NS, "track": "canary"}
    with (
        scraped(plat.prometheus, canary) as inst,
        scraped(plat.prometheus, {**canary, "track": "stable"}) as stable,
        Load([inst.url, stable.url]),
    ):
        _analyse(runner, tuple(BUILTINS), app)
    return runner.queries, 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=float, nargs="+", default=[4.0, 8.0, 16.0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    plat = Platform()
    plat.up(["prometheus", "prefect"])
    prom = PrometheusServer.load(BLOCK_NAME)
    print(f"scrape interval {SCRAPE:g}s; faults: 30% errors; error-rate threshold <= 0.05")
    print("1. faults start -> Failed verdict")
    for interval in args.intervals:
        times = [time_to_failed(plat, prom, interval) for _ in range(args.trials)]
        goal = interval + SCRAPE
        worst = max(times)
        print(
            f"   interval {interval:g}s: median {statistics.median(times):.1f}s "
            f"({statistics.median(times) / interval:.2f} intervals), worst {worst:.1f}s "
            f"({worst / interval:.2f} intervals); goal <= {goal:g}s "
            f"({goal / interval:.2f}): {'met' if worst <= goal else 'NOT met'}  "
            f"[{', '.join(f'{t:.1f}' for t in times)}]"
        )
    print("2. Prometheus queries per analysis step (3 metrics)")
    plain, rounds = queries_per_step(plat, prom, judge=False)
    judged, _ = queries_per_step(plat, prom, judge=True)
    print(
        f"   thresholds only: {plain} instant queries for {rounds} steps = {plain / rounds:.1f} "
        f"per step (one per metric)"
    )
    print(
        f"   with the judge: {judged - plain} range queries more, once at the end "
        f"(canary and stable per deciding metric)"
    )


if __name__ == "__main__":
    main()

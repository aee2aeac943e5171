"""Releases at once through a worker, with the seed's readiness: wall time and CPU per release.

Run `uv run sandbox up` first. Every release is a separate flow run of the `release` flow, run by a
process worker of a pool of this benchmark's own with prefect.yaml's concurrency limit, as in
production. Pods turn Ready 10 s after they start (the seed's readinessProbe
initialDelaySeconds, through the KWOK stage `sandbox.kyb.dev/readiness=probe`), so a rolling
update of 3 replicas (maxSurge 1, maxUnavailable 0) takes about 30 s of real waiting.

  1. setup: the first release of N apps, all at once (a burst of first deploys)
  2. one update alone, 20 updates at once, N updates at once: wall time, failures
  3. CPU per run, server (Prefect and PostgreSQL) plus client (the worker and its flow-run
     processes), against empty flow runs the same way; and in one process, the marginal cost

The worker polls every second (PREFECT_WORKER_QUERY_SECONDS=1, default 10) so that the poll
interval does not decide the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox.components.prefect_server import client_env

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.update(client_env(os.environ))  # the platform's API and auth (0600 profiles)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from kubernetes import client
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from benchmarks.cpu import CpuMeter, Reading, quiet, tree
from benchmarks.empty_flow import empty
from blocks import KubernetesCluster, PrometheusServer, block_ref
from sandbox.platform import BLOCK_NAME
from tasks import kube
from tests.integration.workers import release_limit

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
REPO = "127.0.0.1:5001/kyb-platform@sha256:"
READY_AFTER = 10  # the seed's readinessProbe initialDelaySeconds
WAIT = 1800  # no batch takes this long unless releases hang


def image(version: int) -> str:
    """A digest reference (nothing is pulled for KWOK pods)."""
    return REPO + f"{version:064x}"


def spec(ns: str, app: str, version: int) -> dict[str, Any]:
    """A rolling release of 3 replicas whose pods are Ready 10 s after they start."""
    probe = {
        "httpGet": {"path": "/health", "port": 8080},
        "initialDelaySeconds": READY_AFTER,
        "periodSeconds": 5,
    }
    labels = {"app": app, "sandbox.kyb.dev/readiness": "probe"}
    container = {"name": app, "image": image(version), "readinessProbe": probe}
    return {
        "app": app,
        "namespace": ns,
        "image": image(version),
        "replicas": 3,
        "strategy": {"rolling": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        "firstDeploy": {"analysis": False},
    }


@contextmanager
def worker_pool() -> Iterator[tuple[str, dict[str, Any], subprocess.Popen]]:
    """A process pool of our own with the release and empty flows deployed, and its worker."""
    name = f"bench-{uuid.uuid4().hex[:6]}"
    limit = release_limit()
    with get_client(sync_client=True) as api:
        api.create_work_pool(WorkPoolCreate(name=name, type="process"))
    deployments = {
        "release": flow.from_source(str(ROOT), "flows/release/flow.py:release").deploy(
            name=name,
            work_pool_name=name,
            concurrency_limit=limit,
            print_next_steps=False,
        ),
        "empty": flow.from_source(str(ROOT), "benchmarks/empty_flow.py:empty").deploy(
            name=name, work_pool_name=name, print_next_steps=False
        ),
    }
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", name],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield name, deployments, worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:  # it waits on its runs' processes: the figures are in
            worker.kill()
            worker.wait(timeout=30)
        with get_client(sync_client=True) as api:
            for deployment_id in deployments.values():
                api.delete_deployment(deployment_id)
            api.delete_work_pool(name)


def settle(worker: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until the worker has no flow-run process left (their CPU then sits in its counters)."""
    deadline = time.monotonic() + timeout
    while len(tree(worker.pid)) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)  # /proc has no watch: poll until the last child has been reaped


def idle_rate(meter: CpuMeter, seconds: float = 20) -> float:
    """Server CPU seconds per second with the worker polling and nothing to run."""
    quiet(meter)
    before = meter.read()
    time.sleep(seconds)  # the baseline is what the server spends over this idle window
    used = meter.read() - before
    return used.server / used.wall


def batch(
    meter: CpuMeter,
    worker: subprocess.Popen,
    deployment: Any,
    runs: list[dict[str, Any]],
    idle: float = 0.0,
) -> dict[str, Any]:
    """Start `runs` flow runs at once and wait for all to end: wall, states, CPU per run."""
    settle(worker)
    quiet(meter)  # the server's backlog from the batch before (events, triggers) is not ours
    before = meter.read()
    started = time.time()
    with get_client(sync_client=True) as api, ThreadPoolExecutor(max_workers=10) as pool:
        create = lambda p: api.create_flow_run_from_deployment(deployment, parameters=p)  # noqa: E731
        ids = [run.id for run in pool.map(create, runs)]
        deadline = time.monotonic() + WAIT
        while True:
            found = api.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
            )
            if all(r.state and r.state.is_final() for r in found) and len(found) == len(ids):
                break
            if time.monotonic() > deadline:
                sys.exit(f"runs not done after {WAIT}s: {[r.state_name for r in found]}")
            time.sleep(0.5)  # the API has no wait-for-many: poll the runs' states
    settle(worker)
    quiet(meter)  # and this batch's backlog is
    used: Reading = meter.read() - before
    ends = [r.end_time.timestamp() for r in found if r.end_time]
    durations = [r.total_run_time.total_seconds() for r in found]
    return {
        "n": len(ids),
        "wall": max(ends) - started,
        "failed": sorted(r.state_name for r in found if not r.state.is_completed()),
        "run_median": statistics.median(durations),
        "run_max": max(durations),
        # net of the server's idle cost (its services, the worker's 1 s polls) over the batch
        "server": max(0.0, used.server - idle * used.wall) / len(ids),
        "client": used.client / len(ids),
    }


def show(label: str, b: dict[str, Any], alone: dict[str, Any] | None = None) -> None:
    ratio = f", {b['wall'] / alone['wall']:.2f}x alone" if alone else ""
    bad = f"{len(b['failed'])} failed {b['failed']}" if b["failed"] else "0 failed"
    print(
        f"{label:<26} wall {b['wall']:6.1f}s{ratio}; each run {b['run_median']:.1f}s median, "
        f"{b['run_max']:.1f}s max; {bad}; CPU per run {b['server']:.2f}s server + "
        f"{b['client']:.2f}s client = {b['server'] + b['client']:.2f}s",
        flush=True,
    )


def in_process(ns: str, count: int) -> None:
    """The marginal Prefect cost: empty runs vs releases in this process, after a warm-up."""
    from flows.release.flow import release

    cluster, prometheus = KubernetesCluster.load(BLOCK_NAME), PrometheusServer.load(BLOCK_NAME)
    meter = CpuMeter()  # the server, and this process

    def one(i: int, version: int) -> None:
        s = spec(ns, f"inproc-{i}", version)
        s["template"]["metadata"]["labels"].pop("sandbox.kyb.dev/readiness")  # CPU, not waits
        release(spec=s, cluster=cluster, prometheus=prometheus)

    empty()
    one(count, 1)
    rows = {}
    for label, work in (("empty", lambda i: empty()), ("release", lambda i: one(i, 1))):
        before = meter.read()
        for i in range(count):
            work(i)
        rows[label] = meter.read() - before
    e, r = rows["empty"], rows["release"]
    print(
        f"in one process, {count} each: empty run {e.server / count:.3f}s server + "
        f"{e.client / count:.3f}s client; release {r.server / count:.3f}s + "
        f"{r.client / count:.3f}s: {(r.server + r.client) / (e.server + e.client):.2f}x",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--many", type=int, default=50, help="the big burst (default 50)")
    parser.add_argument("--some", type=int, default=20, help="the middle one (default 20)")
    parser.add_argument("--in-process", type=int, default=10, help="releases for the margin")
    parser.add_argument("--only-in-process", action="store_true", help="just the margin")
    args = parser.parse_args()
    cluster = KubernetesCluster.load(BLOCK_NAME)
    core = client.CoreV1Api(kube.api_for(cluster))
    ns = f"bench-conc-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    refs = {
        "cluster": block_ref(KubernetesCluster, BLOCK_NAME),
        "prometheus": block_ref(PrometheusServer, BLOCK_NAME),
    }
    apps = [f"app-{i}" for i in range(args.many)]
    print(f"release concurrency limit (prefect.yaml): {release_limit()!r}", flush=True)
    try:
        if args.only_in_process:
            in_process(ns, args.in_process)
            return
        with worker_pool() as (_, deployments, worker):
            meter = CpuMeter()
            meter.client_roots = [worker.pid]
            idle = idle_rate(meter)
            print(f"server CPU with the worker polling idle: {idle:.3f}s/s (subtracted)")

            def releases(names: list[str], version: int) -> list[dict[str, Any]]:
                return [{"spec": spec(ns, a, version), **refs} for a in names]

            show("warm-up: 1 empty run", batch(meter, worker, deployments["empty"], [{}], idle))
            first = batch(meter, worker, deployments["release"], releases(apps, 1), idle)
            show(f"{args.many} first deploys at once", first)
            alone = batch(meter, worker, deployments["release"], releases(apps[:1], 2), idle)
            show("1 update alone", alone)
            middle = releases(apps[1 : 1 + args.some], 2)
            some = batch(meter, worker, deployments["release"], middle, idle)
            show(f"{args.some} updates at once", some, alone)
            many = batch(meter, worker, deployments["release"], releases(apps, 3), idle)
            show(f"{args.many} updates at once", many, alone)
            empties = {}
            for n in (1, args.some, args.many):
                empties[n] = batch(meter, worker, deployments["empty"], [{}] * n, idle)
                show(f"{n} empty runs at once", empties[n], empties[1] if n > 1 else None)
            per = lambda b: b["server"] + b["client"]  # noqa: E731
            print(
                f"CPU per release vs per empty run, through the worker: alone "
                f"{per(alone) / per(empties[1]):.2f}x, {args.some} at once "
                f"{per(some) / per(empties[args.some]):.2f}x, {args.many} at once "
                f"{per(many) / per(empties[args.many]):.2f}x (goal <= 2x)",
                flush=True,
            )
            failed = sum(len(b["failed"]) for b in (first, alone, some, many))
            print(
                f"{args.some} at once vs alone: {some['wall'] / alone['wall']:.2f}x (goal <= "
                f"1.3x); {args.many} at once: {many['wall'] / alone['wall']:.2f}x; "
                f"failed releases: {failed} (goal 0)",
                flush=True,
            )
        in_process(ns, args.in_process)
    finally:
        core.delete_namespace(ns)


if __name__ == "__main__":
    main()

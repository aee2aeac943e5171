"""Release benchmarks on the local platform (run `uv run sandbox up` first)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sandbox.components.prefect_server import client_env

# Before prefect is imported: every thread (not just this one) talks to the platform's server,
# and nothing starts an ephemeral server or phones home.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.update(client_env(os.environ))  # the platform's API and auth (0600 profiles)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from kubernetes import client
from prefect import flow

from blocks import KubernetesCluster
from core.release.observed import Outcome
from sandbox.platform import BLOCK_NAME, Platform
from tasks import kube
from tests.integration.release_helpers import Scripted, release_flow, spec

REPO = "127.0.0.1:5001/kyb-platform@sha256:"
ROLLING = {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}
FAILING_CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 40},
            {"analysis": {"templates": [{"templateName": "success-rate"}]}},
        ]
    }
}


def _image(i: int) -> str:
    return REPO + f"{i:064x}"


def watch_vs_kubectl(cluster: KubernetesCluster, plat: Platform, ns: str, rounds: int) -> None:
    """Time both observers on the same rolling updates."""
    api = kube.api_for(cluster)
    apps = client.AppsV1Api(api)
    assert release_flow(spec(ns, _image(1), ROLLING, replicas=5), Scripted()).ok
    kubectl = [
        str(plat.settings.k8s_bin / "kubectl"),
        "--kubeconfig",
        str(plat.settings.kubeconfig),
        "-n",
        ns,
        "rollout",
        "status",
        "deployment/web",
        "--timeout=120s",
    ]
    ours, theirs = [], []
    for r in range(rounds):
        image = _image(100 + r)
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}}
        done: dict[str, float] = {}

        def ours_watch(done: dict[str, float] = done) -> None:
            kube.wait_for_rollout(api, ns, "web", 120)
            done["ours"] = time.monotonic()

        apps.patch_namespaced_deployment("web", ns, patch)
        t0 = time.monotonic()
        watcher = threading.Thread(target=ours_watch)
        watcher.start()
        subprocess.run(kubectl, check=True, capture_output=True)
        done["kubectl"] = time.monotonic()
        watcher.join()
        ours.append(done["ours"] - t0)
        theirs.append(done["kubectl"] - t0)
    o, k = statistics.median(ours), statistics.median(theirs)
    print(
        f"1. rolling update seen complete (median of {rounds}): pipeline {o:.2f}s, "
        f"kubectl rollout status {k:.2f}s, ratio {o / k:.2f} (goal < 1.1)"
    )


def verdict_to_stable(ns: str) -> None:
    """A canary whose analysis fails: time from the verdict to stable serving alone."""
    assert release_flow(spec(ns, _image(1), FAILING_CANARY, replicas=5), Scripted()).ok
    result = release_flow(
        spec(ns, _image(2), FAILING_CANARY, replicas=5), Scripted({"success-rate": Outcome.FAILED})
    )
    analysis = next(e for e in result.journal if e.action.startswith("run step analysis"))
    verdict_at = analysis.started + analysis.seconds
    back_at = result.journal[-1].started  # Fail: stable at full size and ready, canary at 0
    print(f"2. Failed verdict to all traffic on stable: {back_at - verdict_at:.2f}s (goal < 2 s)")


@flow(name="release-bench-empty")
def empty_flow() -> None:
    """A flow run doing nothing: the Prefect server's own cost of one run, for reference."""


def _times(work: Callable[[int], object], apps_count: int) -> tuple[float, float]:
    """Wall time of work(0) alone, then of work(1..apps_count) in as many threads at once."""
    t0 = time.monotonic()
    work(0)
    alone = time.monotonic() - t0
    with ThreadPoolExecutor(max_workers=apps_count) as pool:
        t0 = time.monotonic()
        list(pool.map(work, range(1, apps_count + 1)))
        together = time.monotonic() - t0
    return alone, together


def many_at_once(ns: str, apps_count: int, rounds: int) -> None:
    """Wall time of one rolling release vs apps_count releases of different apps at once.

    Every release is the first release of a new app (same work alone and together), and a
    warm-up release runs first, so "alone" does not carry the process's cold start (imports,
    clients, block types) that the releases together no longer pay. For reference, the same
    ratio for flow runs that do nothing: what the Prefect server itself allows.
    """

    def release(tag: str, i: int) -> None:
        s = spec(ns, _image(1), ROLLING, replicas=2).with_changes(
            app=f"app-{tag}-{i}", container=f"app-{tag}-{i}", labels={"app": f"app-{tag}-{i}"}
        )
        result = release_flow(s, Scripted())
        assert result.ok, result.summary

    release("warm", 0)
    empty_flow()
    ratios, floors = [], []
    for r in range(rounds):
        alone, together = _times(lambda i, r=r: release(f"r{r}", i), apps_count)
        e_alone, e_together = _times(lambda i: empty_flow(), apps_count)
        ratios.append(together / alone)
        floors.append(e_together / e_alone)
        print(
            f"3. round {r + 1}: one release alone {alone:.2f}s; {apps_count} at once "
            f"{together:.1f}s: {together / alone:.2f}x (empty flow runs: {e_alone:.2f}s, "
            f"{e_together:.1f}s, {e_together / e_alone:.2f}x)",
            flush=True,
        )
    print(
        f"3. {apps_count} releases at once vs one alone, median of {rounds}: "
        f"{statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}; "
        f"goal < 2x); empty flow runs {statistics.median(floors):.2f}x "
        f"({min(floors):.2f}-{max(floors):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--many-rounds", type=int, default=3)
    parser.add_argument("--only", choices=["watch", "verdict", "many"], action="append")
    args = parser.parse_args()
    plat = Platform()
    if os.environ["PREFECT_API_URL"] != plat.prefect.api_url:
        sys.exit(f"PREFECT_API_URL must be the platform's {plat.prefect.api_url}")
    cluster = KubernetesCluster.load(BLOCK_NAME)
    core = client.CoreV1Api(kube.api_for(cluster))
    benches = {
        "watch": lambda ns: watch_vs_kubectl(cluster, plat, ns, args.rounds),
        "verdict": verdict_to_stable,
        "many": lambda ns: many_at_once(ns, args.apps, args.many_rounds),
    }
    for name, bench in benches.items():
        if args.only and name not in args.only:
            continue
        ns = f"bench-{name}-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": ns}})
        try:
            bench(ns)
        finally:
            core.delete_namespace(ns)


if __name__ == "__main__":
    main()

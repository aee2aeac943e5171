"""Release benchmarks on the local platform (run `uv run sandbox up` first).

1. Seeing a rolling update complete: the pipeline's watch vs `kubectl rollout status`, started
   together on the same update (goal: ratio under 1.1).
2. From a Failed analysis verdict to all traffic back on stable (goal: under 2 s).
3. 20 applications released at once vs one alone (goal: under 2x the wall time).

    uv run python benchmarks/release.py [--rounds 5] [--apps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Before prefect is imported: every thread (not just this one) talks to the platform's server,
# and nothing starts an ephemeral server or phones home.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_API_URL", "http://127.0.0.1:4200/api")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from kubernetes import client  # noqa: E402

from blocks import KubernetesCluster  # noqa: E402
from core.observed import Outcome  # noqa: E402
from sandbox.platform import BLOCK_NAME, Platform  # noqa: E402
from tasks import kube  # noqa: E402
from tests.integration.release_helpers import Scripted, release_flow, spec  # noqa: E402

REPO = "127.0.0.1:5001/kyb-platform@sha256:"
ROLLING = {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}
FAILING_CANARY = {"canary": {"steps": [{"setWeight": 40}, {"analysis": {"templates": [
    {"templateName": "success-rate"}]}}]}}  # fmt: skip


def _image(i: int) -> str:
    return REPO + f"{i:064x}"


def watch_vs_kubectl(cluster: KubernetesCluster, plat: Platform, ns: str, rounds: int) -> None:
    """Time both observers on the same rolling updates."""
    api = kube.api_for(cluster)
    apps = client.AppsV1Api(api)
    assert release_flow(spec(ns, _image(1), ROLLING, replicas=5), Scripted()).ok
    kubectl = [
        str(plat.settings.k8s_bin / "kubectl"), "--kubeconfig", str(plat.settings.kubeconfig),
        "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s",
    ]  # fmt: skip
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
    print(f"1. rolling update seen complete (median of {rounds}): pipeline {o:.2f}s, "
          f"kubectl rollout status {k:.2f}s, ratio {o / k:.2f} (goal < 1.1)")  # fmt: skip


def verdict_to_stable(ns: str) -> None:
    """A canary whose analysis fails: time from the verdict to stable serving alone."""
    assert release_flow(spec(ns, _image(1), FAILING_CANARY, replicas=5), Scripted()).ok
    result = release_flow(spec(ns, _image(2), FAILING_CANARY, replicas=5),
                          Scripted({"success-rate": Outcome.FAILED}))  # fmt: skip
    analysis = next(e for e in result.journal if e.action.startswith("run step analysis"))
    verdict_at = analysis.started + analysis.seconds
    back_at = result.journal[-1].started  # Fail: stable at full size and ready, canary at 0
    print(f"2. Failed verdict to all traffic on stable: {back_at - verdict_at:.2f}s (goal < 2 s)")


def many_at_once(ns: str, apps_count: int) -> None:
    """Wall time of one rolling release vs apps_count releases of different apps at once."""

    def one(i: int, image: int) -> bool:
        s = spec(ns, _image(image), ROLLING, replicas=2).with_changes(
            app=f"app-{i}", container=f"app-{i}", labels={"app": f"app-{i}"}
        )
        return release_flow(s, Scripted()).ok

    t0 = time.monotonic()
    assert one(0, 1)
    alone = time.monotonic() - t0
    with ThreadPoolExecutor(max_workers=apps_count) as pool:
        t0 = time.monotonic()
        oks = list(pool.map(lambda i: one(i, 1), range(1, apps_count + 1)))
        together = time.monotonic() - t0
    assert all(oks), oks
    print(f"3. one release alone {alone:.1f}s; {apps_count} at once {together:.1f}s: "
          f"{together / alone:.2f}x (goal < 2x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--apps", type=int, default=20)
    args = parser.parse_args()
    plat = Platform()
    if os.environ["PREFECT_API_URL"] != plat.prefect.api_url:
        sys.exit(f"PREFECT_API_URL must be the platform's {plat.prefect.api_url}")
    cluster = KubernetesCluster.load(BLOCK_NAME)
    core = client.CoreV1Api(kube.api_for(cluster))
    benches = {
        "watch": lambda ns: watch_vs_kubectl(cluster, plat, ns, args.rounds),
        "verdict": verdict_to_stable,
        "many": lambda ns: many_at_once(ns, args.apps),
    }
    for name, bench in benches.items():
        ns = f"bench-{name}-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": ns}})
        try:
            bench(ns)
        finally:
            core.delete_namespace(ns)


if __name__ == "__main__":
    main()

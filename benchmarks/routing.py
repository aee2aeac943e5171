"""Real traffic through the platform's router during releases, measured in one run.

Pods of the example service run for real (the pod runner) behind an HTTPRoute on Traefik's entry
point; the releases are the product's own (`perform_release`, the executor and its router task):

1. Gateway API canary (trafficRouting plugins argoproj-labs/gatewayAPI): at setWeight 10, 25 and
   50, the canary's share of 2,000 requests sent through the entry point (goal: within ±3 points).
2. Replica-weighted canary (no router; one Service over both tracks): the same shares (goal: ±5).
3. Abort: at setWeight 50 the release is aborted while requests flow at 100 a second; the first
   whole second after the abort in which no request reached the canary (goal: under 2 s).
4. Fault start -> Failed verdict: a canary whose own pods fail 30% of requests takes 25% of the
   traffic; the time until its error-rate analysis (the real Prometheus runner, interval 2 s)
   says Failed, in scrape intervals.

Run `uv run sandbox up` first; `uv run python -m benchmarks.routing`.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sandbox.components.prefect_server import client_env

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.update(client_env(os.environ))  # the platform's API and auth (0600 profiles)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from kubernetes import client
from prefect import flow

from blocks import KubernetesCluster, PrometheusServer
from core.analysis.builtins import BUILTINS
from core.analysis.templates import rescheduled
from core.release import route
from core.release.actions import Pause
from core.release.decisions import Choice, Decision
from core.release.spec import ReleaseSpec
from flows.environments import runner_for
from flows.release.executor import ReleaseResult
from flows.release.flow import perform_release
from sandbox.components.prometheus import SCRAPE_INTERVAL
from sandbox.example_image import build_example, docker_client, push
from sandbox.load import Load
from sandbox.platform import BLOCK_NAME, Platform
from sandbox.podrunner import RUN_LABEL
from sandbox.traefik.manifests import parent_ref

SCRAPE = float(SCRAPE_INTERVAL.rstrip("s"))
WEIGHTS = (10, 25, 50)
TEMPLATE = {  # the pods' template: opted in to run for real, probed on /health every second
    "metadata": {
        "labels": {RUN_LABEL: "true"},
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
    },
    "spec": {
        "terminationGracePeriodSeconds": 5,
        "containers": [
            {
                "name": "web",
                "ports": [{"name": "http", "containerPort": 8080}],
                # serve on while the endpoint leaves the route, as the example's overlays do
                "lifecycle": {"preStop": {"sleep": {"seconds": 2}}},
                "readinessProbe": {
                    "httpGet": {"path": "/health", "port": "http"},
                    "periodSeconds": 1,
                },
            }
        ],
    },
}
ROUTED = {
    "stableService": "web-stable",
    "canaryService": "web-canary",
    "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}},
    "scaleDownDelaySeconds": 1,
    "abortScaleDownDelaySeconds": 1,
}
FAST = {"interval": 2, "count": 30, "initial_delay": 0}
ERROR_RATE = rescheduled(BUILTINS["error-rate"], **{**FAST, "failure_limit": 0})


def _walk(routed: bool) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for weight in WEIGHTS:
        steps += [{"setWeight": weight}, {"pause": {}}]
    extra = ROUTED if routed else {"scaleDownDelaySeconds": 1, "abortScaleDownDelaySeconds": 1}
    return {"canary": {**extra, "steps": steps}}


def _spec(namespace: str, image: str, strategy: dict[str, Any], replicas: int) -> ReleaseSpec:
    return ReleaseSpec.model_validate(
        {
            "app": "web",
            "namespace": namespace,
            "image": image,
            "replicas": replicas,
            "strategy": strategy,
            "progressDeadlineSeconds": 300,
        }
    )


class Timed:
    """The platform's Prometheus runner, noting when each verdict came (monotonic seconds)."""

    def __init__(self) -> None:
        self.inner = runner_for(PrometheusServer.load(BLOCK_NAME), [ERROR_RATE], False)
        self.verdicts: list[tuple[float, str]] = []

    def run(self, ref, phase, spec, key: str = ""):
        """The inner runner's verdict, timed."""
        verdict = self.inner.run(ref, phase, spec, key)
        self.verdicts.append((time.monotonic(), str(verdict.outcome)))
        return verdict

    def validate(self, spec: ReleaseSpec) -> None:
        """As the inner runner."""
        self.inner.validate(spec)


@flow(name="routing-benchmark-release")
def _release(
    spec: ReleaseSpec, cluster: KubernetesCluster, ask: Any, runner: Timed | None = None
) -> ReleaseResult:
    spec = spec.with_changes(template=TEMPLATE)
    return perform_release(spec, cluster, runner or Timed(), ask=ask)


def _route(api: client.ApiClient, namespace: str, host: str, backends: list[str]) -> None:
    refs = [{"name": b, "port": 80, "weight": 100 if i == 0 else 0} for i, b in enumerate(backends)]
    body = {
        "apiVersion": f"{route.GROUP}/{route.VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "parentRefs": [parent_ref()],
            "hostnames": [host],
            "rules": [{"backendRefs": refs}],
        },
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        route.GROUP, route.VERSION, namespace, route.PLURAL, body
    )


def _images(plat: Platform) -> dict[str, str]:
    dc = docker_client(plat)
    tag = f"{plat.registry.address}/routing-bench:{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as folder:
        base = build_example(dc, Path(folder), tag)
    found = {v: push(plat, dc, base, v) for v in ("v1", "v2", "v3")}
    found["bad"] = push(plat, dc, base, "bad", {"KYB_ERROR_RATE": "0.3"})
    dc.images.remove(base, force=True)
    dc.close()
    return found


def _namespace(api: client.ApiClient, name: str) -> None:
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})


def shares(
    cluster: KubernetesCluster, namespace: str, users: Load, image: dict[str, str], routed: bool
) -> dict[int, float]:
    """Walk v1 -> v2 through 10/25/50%, sending 2,000 requests at each pause."""
    first = _release(_spec(namespace, image["v1"], _walk(routed), 10), cluster, None)
    if not first.ok:
        raise SystemExit(f"first release failed: {first.summary}")
    measured: dict[int, float] = {}

    def measure(pause: Pause, spec: ReleaseSpec) -> Decision:
        seen = users.send(2000)
        weight = WEIGHTS[len(measured)]
        measured[weight] = 100 * seen["v2"] / sum(seen.values())
        others = set(seen) - {"v1", "v2"}
        if others:
            raise SystemExit(f"answers from neither version at {weight}%: {seen}")
        return Decision(Choice.PROMOTE, "benchmark", f"measured at {weight}%")

    done = _release(_spec(namespace, image["v2"], _walk(routed), 10), cluster, measure)
    if not done.ok:
        raise SystemExit(f"walk failed: {done.summary}")
    return measured


def abort_clear_seconds(
    cluster: KubernetesCluster, namespace: str, traefik: str, host: str, image: str
) -> tuple[int, float]:
    """Abort at 50% under 100 requests/s: (first clean whole second, last canary answer in s)."""
    strategy = {"canary": {**ROUTED, "steps": [{"setWeight": 50}, {"pause": {}}]}}
    marks: dict[str, float] = {}

    def abort(pause: Pause, spec: ReleaseSpec) -> Decision:
        time.sleep(2)  # traffic on the canary first
        marks["abort"] = time.monotonic()
        return Decision(Choice.ABORT, "benchmark", "abort under load")

    with Load([traefik], host=host, per_second=100, max_seconds=300) as users:
        result = _release(_spec(namespace, image, strategy, 4), cluster, abort)
        time.sleep(3)  # requests after the release ended: the window the clean second is read in
    if result.ok:
        raise SystemExit("the aborted release succeeded")
    after = [t - marks["abort"] for t, answer in users.timeline if answer == "v3"]
    after = [t for t in after if t >= 0]
    last = max(after, default=0.0)
    return (math.floor(last) + 1 if after else 0), last


def fault_to_verdict(
    cluster: KubernetesCluster, namespace: str, traefik: str, host: str, image: str
) -> float:
    """Seconds from a faulty canary taking 25% of the traffic to its Failed verdict."""
    strategy = {
        "canary": {
            **ROUTED,
            "steps": [
                {"setWeight": 25},
                {"pause": {}},
                {"analysis": {"templates": [{"templateName": "error-rate"}]}},
            ],
        }
    }
    marks: dict[str, float] = {}

    def started(pause: Pause, spec: ReleaseSpec) -> Decision:
        if "fault" in marks:  # a second pause: the analysis was inconclusive, not Failed
            raise SystemExit(f"the analysis asked a person instead of failing: {pause.reason}")
        marks["fault"] = time.monotonic()  # the route already sends it 25%
        return Decision(Choice.PROMOTE, "benchmark", "fault running")

    runner = Timed()
    with Load([traefik], host=host, per_second=40, max_seconds=600):
        result = _release(_spec(namespace, image, strategy, 4), cluster, started, runner)
    failed = [at for at, outcome in runner.verdicts if outcome == "Failed"]
    if result.ok or not failed:
        raise SystemExit(f"expected a Failed analysis: {result.summary}")
    return failed[0] - marks["fault"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    plat = Platform()
    cluster = KubernetesCluster.load(BLOCK_NAME)
    api = cluster.api_client()
    run = uuid.uuid4().hex[:6]
    print("building and pushing the example's versions ...", flush=True)
    image = _images(plat)
    out: dict[str, Any] = {}
    for routed in (True, False):
        namespace = f"bench-routing-{run}-{'gw' if routed else 'rw'}"
        host = f"web.{namespace}.bench"
        _namespace(api, namespace)
        _route(api, namespace, host, ["web-stable", "web-canary"] if routed else ["web"])
        users = Load([plat.traefik.url], host=host, max_requests=10_000, max_seconds=1800)
        kind = "gateway" if routed else "replicas"
        out[kind] = shares(cluster, namespace, users, image, routed)
        print(f"{kind}: {out[kind]}", flush=True)
        if routed:
            out["abort"] = abort_clear_seconds(
                cluster, namespace, plat.traefik.url, host, image["v3"]
            )
            out["fault"] = fault_to_verdict(
                cluster, namespace, plat.traefik.url, host, image["bad"]
            )
        client.CoreV1Api(api).delete_namespace(namespace)
    print_report(out)


def print_report(out: dict[str, Any]) -> None:
    print("\ncanary share of 2,000 requests through Traefik (points off the weight)")
    for kind, goal in (("gateway", 3), ("replicas", 5)):
        cells = "  ".join(
            f"{w}%: {share:5.2f}% ({share - w:+.2f})" for w, share in out[kind].items()
        )
        worst = max(abs(s - w) for w, s in out[kind].items())
        print(f"  {kind:9} {cells}   worst {worst:.2f} (goal ±{goal})")
    clean, last = out["abort"]
    print(
        f"\nabort at 50%: last canary answer {last:.2f} s after the abort; "
        f"first second without canary traffic: second {clean} (goal under 2)"
    )
    seconds = out["fault"]
    print(
        f"fault start -> Failed verdict: {seconds:.1f} s = {seconds / SCRAPE:.1f} scrape intervals "
        f"of {SCRAPE:g} s (analysis interval {FAST['interval']} s)"
    )


if __name__ == "__main__":
    main()

"""The pipeline engine against Argo Rollouts' controller, on the same cluster, the same work.

Run on the local platform with the controller up (`uv run sandbox up argo-rollouts`):

    uv run python -m benchmarks.engines

Both sides release the seed's canary (setWeight 10/20/50/100 with pauses of 5, 10 and 15 s: the
seed's minutes as seconds) and a blue-green (auto-promotion), with the seed's readinessProbe
(initialDelaySeconds 10, periodSeconds 5) answered by real containers of the example service
(the pod runner), 5 replicas. "argo" is the controller alone, driven as a team without this
pipeline would: apply the Rollout, wait until it is Healthy (`kubectl argo rollouts status`).
"pipeline" is the release flow with the pipeline engine (perform_release in this process,
against the platform's Prefect server). Both measure the same analysis template on the same
Prometheus.

Printed, with ratios pipeline/argo:
1. wall time from start to fully promoted, canary and blue-green;
2. a failed analysis (a step analysis that fails at once): seconds from the verdict (the
   AnalysisRun turning Failed, or the pipeline's analysis task returning) until no Ready pod of
   the new version is left;
3. CPU seconds of each side over its runs: the controller process, against this process plus
   the Prefect server;
4. N releases at once (default 20; 2 replicas each), canary setWeight 50, pause 5 s, 100.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sandbox.components.prefect_server import client_env

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.update(client_env(os.environ))  # the platform's API and auth (0600 profiles)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from kubernetes import client, watch
from prefect import flow

from blocks import KubernetesCluster, PrometheusServer
from core.analysis.templates import AnalysisTemplate
from core.release.argo_rollout import read_status, rollout_manifest, services
from core.release.spec import ReleaseSpec
from flows.environments import runner_for
from flows.release.executor import ReleaseResult
from flows.release.flow import approve_promotions, perform_release
from sandbox.example_image import build_example, docker_client, push
from sandbox.platform import BLOCK_NAME, Platform
from sandbox.podrunner import RUN_LABEL
from tasks import argo, kube
from tasks.release import ensure_services

READINESS = {  # the seed's readinessProbe
    "httpGet": {"path": "/health", "port": "http"},
    "initialDelaySeconds": 10,
    "periodSeconds": 5,
}
SEED_CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 10},
            {"pause": {"duration": "5s"}},
            {"setWeight": 20},
            {"pause": {"duration": "10s"}},
            {"setWeight": 50},
            {"pause": {"duration": "15s"}},
            {"setWeight": 100},
        ]
    }
}
BLUE_GREEN = {
    "blueGreen": {
        "activeService": "{app}",
        "previewService": "{app}-preview",
        "autoPromotionEnabled": True,
        "scaleDownDelaySeconds": 5,
    }
}
FAILING = {
    "canary": {
        "steps": [
            {"setWeight": 20},
            {"analysis": {"templates": [{"templateName": "always-failing"}]}},
            {"setWeight": 100},
        ]
    }
}
MANY = {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "5s"}}, {"setWeight": 100}]}}
TEMPLATES = [
    AnalysisTemplate.model_validate(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "always-failing"},
            "spec": {
                "metrics": [
                    {
                        "name": "always-failing",
                        "interval": "1s",
                        "count": 1,
                        "successCondition": "result[0] >= 0.95",
                        "provider": {"prometheus": {"query": "vector(0.5)"}},
                    }
                ]
            },
        }
    )
]


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """CPU seconds of each side: the controller; this process plus the Prefect server."""

    def __init__(self, controller: int, server: int) -> None:
        self.controller, self.server = controller, server
        self.used = {"pipeline": 0.0, "argo": 0.0}

    def now(self, side: str) -> float:
        """CPU seconds the side has used so far."""
        return cpu_of(self.controller) if side == "argo" else cpu_of(self.server) + own_cpu()

    def measure(self, side: str, work: Callable[[], object]) -> tuple[float, object]:
        """(wall seconds, value) of work(), its CPU added to the side's."""
        c0, t0 = self.now(side), time.monotonic()
        value = work()
        wall = time.monotonic() - t0
        self.used[side] += self.now(side) - c0
        return wall, value


class Bench:
    """One namespace, one image pair, the platform's cluster and both sides' processes."""

    def __init__(self, plat: Platform, ns: str, images: tuple[str, str], replicas: int) -> None:
        self.plat, self.ns, self.images, self.replicas = plat, ns, images, replicas
        self.cluster = KubernetesCluster.load(BLOCK_NAME)
        self.api = kube.api_for(self.cluster)
        self.runner = runner_for(PrometheusServer.load(BLOCK_NAME), TEMPLATES, False)
        self.templates_written = False

    def spec(self, app: str, image: str, strategy: dict, engine: str) -> ReleaseSpec:
        """A release of `app` with the seed's readinessProbe, run by the pod runner."""
        text = json.dumps(strategy).replace("{app}", app)
        template = {
            "metadata": {"labels": {"app": app, RUN_LABEL: "true"}},
            "spec": {
                "terminationGracePeriodSeconds": 2,
                "containers": [
                    {
                        "name": app,
                        "image": image,
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": READINESS,
                    }
                ],
            },
        }
        body = {"app": app, "namespace": self.ns, "image": image, "replicas": self.replicas}
        body |= {"strategy": json.loads(text), "template": template, "engine": engine}
        body |= {"firstDeploy": {"analysis": False}}
        return ReleaseSpec.model_validate(body)

    # ---- the two sides -------------------------------------------------------------------------
    def pipeline(self, spec: ReleaseSpec) -> ReleaseResult:
        """The release flow with the pipeline engine."""
        return pipeline_flow(spec, self.runner)

    def argo(self, spec: ReleaseSpec, timeout: float = 600) -> bool:
        """Apply the Rollout, wait until promoted (True) or aborted and back on stable (False)."""
        ensure_services.fn(self.cluster, spec, services(spec))
        if not self.templates_written:  # the same templates for every Rollout of the namespace
            argo.write_templates.fn(self.cluster, _templates(self.ns))
            self.templates_written = True
        live = argo.write_rollout.fn(self.cluster, rollout_manifest(spec))
        objects = client.CustomObjectsApi(self.api)
        deadline = time.monotonic() + timeout
        version = live["metadata"]["resourceVersion"]
        while time.monotonic() < deadline:
            for obj in argo.follow(self.cluster, self.ns, spec.app, version):
                version = obj["metadata"]["resourceVersion"]
                status = read_status(obj)
                if status.promoted:
                    return True
                if status.back_on_stable:
                    return False
            obj = objects.get_namespaced_custom_object(
                "argoproj.io", "v1alpha1", self.ns, "rollouts", spec.app
            )
            version = obj["metadata"]["resourceVersion"]
        raise TimeoutError(f"Rollout {spec.app} not done in {timeout}s")

    # ---- measurements --------------------------------------------------------------------------
    def argo_verdict_at(self, out: dict) -> threading.Thread:
        """Record when an AnalysisRun in the namespace turns Failed (watch)."""
        objects = client.CustomObjectsApi(self.api)

        def work() -> None:
            for event in watch.Watch().stream(
                objects.list_namespaced_custom_object,
                "argoproj.io",
                "v1alpha1",
                self.ns,
                "analysisruns",
                timeout_seconds=300,
            ):
                if (event["object"].get("status") or {}).get("phase") == "Failed":
                    out["verdict_at"] = time.monotonic()
                    return

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        return thread


class Traffic(threading.Thread):
    """Samples, every 50 ms, the Ready pods a Service selects: how many run the new image.

    What a user sees: a replica-weighted canary's traffic is its share of Ready pods behind
    `<app>`; a blue-green's is the active Service's selection. Its own CPU time is kept, so the
    pipeline side's figure can leave it out.
    """

    def __init__(self, bench: Bench, service: str, new: str) -> None:
        super().__init__(daemon=True)
        self.core, self.ns, self.service, self.new = (
            client.CoreV1Api(bench.api),
            bench.ns,
            service,
            new,
        )
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, new Ready, old Ready)
        self.stop, self.cpu = threading.Event(), 0.0

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                selector = self.core.read_namespaced_service(self.service, self.ns).spec.selector
                text = ",".join(f"{k}={v}" for k, v in (selector or {}).items())
                pods = self.core.list_namespaced_pod(self.ns, label_selector=text).items
            except client.exceptions.ApiException:
                pods = []  # the Service does not exist yet
            ready = [
                p.spec.containers[0].image
                for p in pods
                if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or ())
            ]
            new = sum(1 for image in ready if image == self.new)
            self.samples.append((t, new, len(ready) - new))
            self.stop.wait(0.05)  # a sample every 50 ms until stopped: readiness has no watch here
        self.cpu = time.thread_time()

    def first(self, since: float, test: Callable[[int, int], bool]) -> float:
        """The first sample time at or after `since` where test(new, old) holds."""
        return next(t for t, new, old in self.samples if t >= since and test(new, old))


@flow(name="engines-bench-pipeline")
def pipeline_flow(spec: ReleaseSpec, runner: Any) -> ReleaseResult:
    """The release flow's path, as a release run does it (demo-mode answers: none are asked)."""
    return perform_release(spec, KubernetesCluster.load(BLOCK_NAME), runner, ask=approve_promotions)


def _templates(ns: str) -> list[dict]:
    url = PrometheusServer.load(BLOCK_NAME).url
    docs = []
    for t in TEMPLATES:
        doc = t.to_argo()
        doc["metadata"] = {"name": doc["metadata"]["name"], "namespace": ns}
        for metric in doc["spec"]["metrics"]:
            metric["provider"]["prometheus"]["address"] = url
        docs.append(doc)
    return docs


def promote_times(
    bench: Bench, meter: Meter, strategy: dict, name: str
) -> dict[str, tuple[float, float]]:
    """Per side: (seconds until all traffic is on the new version, seconds until it returned).

    The first release is not timed (a first deploy has no steps).
    """
    v1, v2 = bench.images
    out = {}
    for side in ("pipeline", "argo"):
        app = f"{name}-{side}"
        first = bench.spec(app, v1, strategy, side)
        second = bench.spec(app, v2, strategy, side)
        do = bench.pipeline if side == "pipeline" else bench.argo
        assert getattr(do(first), "ok", True)
        traffic = Traffic(bench, app, v2)
        traffic.start()
        t0 = time.monotonic()
        wall, result = meter.measure(side, lambda s=second, do=do: do(s))
        traffic.stop.set()
        traffic.join()
        meter.used[side] -= traffic.cpu if side == "pipeline" else 0.0
        assert getattr(result, "ok", result), result
        served = traffic.first(t0, lambda new, old: old == 0 and new >= bench.replicas)
        out[side] = (served - t0, wall)
    return out


def failed_verdict(bench: Bench) -> tuple[float, float]:
    """Seconds from the failed verdict until no Ready pod of the new version serves."""
    v1, v2 = bench.images
    secs = {}
    for side in ("pipeline", "argo"):
        app = f"fail-{side}"
        first = bench.spec(app, v1, FAILING, side)
        second = bench.spec(app, v2, FAILING, side)
        out: dict[str, float] = {}
        traffic = Traffic(bench, app, v2)
        if side == "pipeline":
            assert bench.pipeline(first).ok
            traffic.start()
            result = bench.pipeline(second)
            assert not result.ok
            entry = next(e for e in result.journal if e.action.startswith("run "))
            for e in result.journal[result.journal.index(entry) :]:
                print(f"   pipeline: +{e.started - entry.started:6.2f}s {e.action} ({e.seconds}s)")
            # the journal's wall clock, moved onto the monotonic one the samples use
            out["verdict_at"] = entry.started + entry.seconds - time.time() + time.monotonic()
        else:
            assert bench.argo(first)
            watcher = bench.argo_verdict_at(out)
            traffic.start()
            assert not bench.argo(second)
            watcher.join(10)
        time.sleep(1)  # a last second of samples
        traffic.stop.set()
        traffic.join()
        stable = traffic.first(out["verdict_at"], lambda new, old: new == 0)
        secs[side] = stable - out["verdict_at"]
    return secs["pipeline"], secs["argo"]


def many(bench: Bench, meter: Meter, count: int) -> tuple[float, float]:
    """Wall seconds for `count` canary releases of different apps at once, each side."""
    v1, v2 = bench.images
    secs = {}
    for side in ("pipeline", "argo"):
        specs = [
            (bench.spec(f"m{i}-{side}", v1, MANY, side), bench.spec(f"m{i}-{side}", v2, MANY, side))
            for i in range(count)
        ]
        do = bench.pipeline if side == "pipeline" else bench.argo
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(lambda pair, do=do: do(pair[0]), specs))
            secs[side], outcomes = meter.measure(
                side,
                lambda pool=pool, do=do, specs=specs: list(pool.map(lambda p: do(p[1]), specs)),
            )
        assert all(getattr(o, "ok", o) for o in outcomes), outcomes
    return secs["pipeline"], secs["argo"]


def images(plat: Platform) -> tuple[str, str]:
    """Two versions of the example service, pushed by digest (the pod runner pulls them)."""
    import tempfile

    dc = docker_client(plat)
    tag = f"{plat.registry.address}/engines-bench:{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        ref = build_example(dc, Path(folder), tag)
        dc.images.get(ref).tag(ref + "-keep")
        one = push(plat, dc, ref + "-keep", version="1")
        two = push(plat, dc, ref + "-keep", version="2")
    return one, two


def ratio(p: float, a: float) -> str:
    return f"pipeline {p:.2f}s, argo {a:.2f}s: {p / a:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=5)
    parser.add_argument("--many", type=int, default=20)
    parser.add_argument("--only", choices=["promote", "verdict", "many"], action="append")
    args = parser.parse_args()
    plat = Platform()
    controller = plat.argo_rollouts.daemon.pid()
    server = plat.prefect.daemon.pid()
    if controller is None or server is None:
        raise SystemExit("start the platform and the controller: uv run sandbox up argo-rollouts")
    ns = f"bench-engines-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube.api_for(KubernetesCluster.load(BLOCK_NAME)))
    core.create_namespace({"metadata": {"name": ns}})
    pair = images(plat)
    bench = Bench(plat, ns, pair, args.replicas)
    meter = Meter(controller, server)
    try:
        for name, strategy in (("canary", SEED_CANARY), ("bluegreen", BLUE_GREEN)):
            if args.only and "promote" not in args.only:
                break
            times = promote_times(bench, meter, strategy, name)
            (p, p_wall), (a, a_wall) = times["pipeline"], times["argo"]
            print(
                f"1. {name}, start to all traffic on the new version: {ratio(p, a)} "
                f"(goal <= 1.2x); until the run returned: {ratio(p_wall, a_wall)}",
                flush=True,
            )
        used = dict(meter.used)
        if used["argo"]:
            print(
                f"3. CPU per promoted release (canary + blue-green, 2 each side): controller "
                f"{used['argo'] / 2:.2f}s, pipeline process + Prefect server "
                f"{used['pipeline'] / 2:.2f}s: {used['pipeline'] / max(used['argo'], 0.01):.1f}x",
                flush=True,
            )
        if not args.only or "verdict" in args.only:
            p, a = failed_verdict(bench)
            print(f"2. failed verdict to no new pod Ready: {ratio(p, a)} (goal < 1x)", flush=True)
        if not args.only or "many" in args.only:
            bench.replicas = 2
            meter.used = {"pipeline": 0.0, "argo": 0.0}
            p, a = many(bench, meter, args.many)
            print(f"4. {args.many} canary releases at once: {ratio(p, a)}", flush=True)
            print(
                f"   CPU per release: controller {meter.used['argo'] / args.many:.2f}s, pipeline "
                f"process + server {meter.used['pipeline'] / args.many:.2f}s: "
                f"{meter.used['pipeline'] / max(meter.used['argo'], 0.01):.1f}x",
                flush=True,
            )
    finally:
        core.delete_namespace(ns)


if __name__ == "__main__":
    main()

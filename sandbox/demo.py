"""`make demo`: the whole delivery pipeline on the local platform, twice."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandbox.components.prefect_server import client_env
from sandbox.settings import Settings
from sandbox.tools import ensure_gosec

# Before prefect is imported (sandbox.platform imports it): every client in this process talks
# to the platform's Prefect server, not a temporary one, with its auth (a 0600 profiles file).
os.environ.update(client_env())
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"

from sandbox import demo_in_cluster, demo_push
from sandbox.errors import PlatformError
from sandbox.load import Load
from sandbox.platform import WORK_POOL, Platform
from sandbox.procs import Daemon

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = "kyb-production"
FAST = {
    "interval": 5,
    "count": 3,
    "initial_delay": 6,
    "failure_limit": 0,
}


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PlatformError(
            "demo",
            f"git {' '.join(args)} failed: {done.stderr.strip()}",
            "run the demo from a git checkout of the project",
        )
    return done.stdout.strip()


def _prefect(env: dict[str, str], *args: str) -> None:
    prefect = str(Path(sys.executable).parent / "prefect")
    done = subprocess.run(
        [prefect, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise PlatformError(
            "demo",
            f"prefect {' '.join(args)} failed: {done.stderr[-1500:]}",
            "see the output above; `uv run sandbox status`",
        )


def worker(settings: Settings | None = None) -> Daemon:
    """The demo's worker of the kyb-local pool (a process the platform owns)."""
    return Daemon("prefect-worker", (settings or Settings()).dir("worker"))


def _start_worker(env: dict[str, str], platform_env: dict[str, str]) -> None:
    """Start the worker, or restart it when the platform's client settings changed since."""
    daemon = worker()
    stamp = daemon.pidfile.with_name("settings.json")  # the platform's env (holds no secret)
    if daemon.pid() and (not stamp.exists() or json.loads(stamp.read_text()) != platform_env):
        daemon.stop()
    stamp.write_text(json.dumps(platform_env))
    if daemon.pid() is None:
        prefect = str(Path(sys.executable).parent / "prefect")
        # polls every 2 s (Prefect's default 10 s is most of a push's wait before it runs)
        polling = {**env, "PREFECT_WORKER_QUERY_SECONDS": "2"}
        daemon.start([prefect, "worker", "start", "--pool", WORK_POOL, "--limit", "2"], polling)
        time.sleep(3)  # once: a worker with a bad setup exits within its first seconds
    if daemon.pid() is None:
        raise PlatformError(
            "demo",
            f"the worker exited: {daemon.log_tail()}",
            "run `prefect worker start --pool kyb-local` to see why",
        )
    _say(f"worker of pool {WORK_POOL} running (log {daemon.logfile})")


def _templates() -> list[dict[str, Any]]:
    from core.analysis.builtins import BUILTINS
    from core.analysis.templates import rescheduled

    return [
        rescheduled(BUILTINS[name], **FAST).model_dump(mode="json")
        for name in ("error-rate", "latency-p95")
    ]


def _finished(run: Any, ui: str) -> Any:
    _say(f"  {run.name}: {run.state.name}: {ui}/runs/flow-run/{run.id}")
    return run


def _hook_answer(pushed: str) -> str:
    """The receiver's answer as git push showed it (the hook's `remote:` line)."""
    lines = [line for line in pushed.splitlines() if "webhook" in line]
    if not lines or "HTTP 202" not in lines[-1]:
        raise PlatformError("demo", f"the push was not accepted: {pushed[-800:]}", "see above")
    return lines[-1].removeprefix("remote: ")[:160]


def _backup_and_drill(ui: str) -> tuple[Any, Any]:
    """Run the backup deployment, then the drill deployment on the backup it made."""
    from prefect.deployments import run_deployment

    saved = run_deployment("backup/backup", timeout=900)
    _say(f"  {saved.name}: {saved.state.name}: {ui}/runs/flow-run/{saved.id}")
    if not saved.state.is_completed():
        return saved, saved
    name = _newest_backup()  # the drill waits for it to sync to the DR cluster
    drill = run_deployment("dr-drill/dr-drill", parameters={"backup": name}, timeout=900)
    _say(f"  {drill.name}: {drill.state.name}: {ui}/runs/flow-run/{drill.id}")
    return saved, drill


def _newest_backup() -> str:
    """The newest completed Velero Backup of the main cluster (the one the demo just made)."""
    from kubernetes import client

    from blocks import VeleroInstall

    install = VeleroInstall.load("local")
    found = client.CustomObjectsApi(install.cluster.api_client()).list_namespaced_custom_object(
        "velero.io", "v1", install.namespace, "backups", _request_timeout=30
    )["items"]
    done = [b for b in found if (b.get("status") or {}).get("phase") == "Completed"]
    newest = max(done, key=lambda b: b["metadata"]["creationTimestamp"])
    return newest["metadata"]["name"]


def _production_image(cluster: Any) -> str:
    """The image of the Ready pods behind production's active Service ("-" if none)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(cluster.api_client())
    try:
        service = core.read_namespaced_service(
            "kyb-platform", "kyb-production", _request_timeout=10
        )
    except ApiException as exc:
        if exc.status == 404:
            return "-"
        raise
    chosen = ",".join(f"{k}={v}" for k, v in (service.spec.selector or {}).items())
    pods = core.list_namespaced_pod(PRODUCTION, label_selector=chosen, _request_timeout=10)
    images = {
        pod.spec.containers[0].image
        for pod in pods.items
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    }
    return ", ".join(sorted(images)) or "-"


def main() -> int:
    """Run the demo; return the exit code."""
    from blocks import KubernetesCluster

    plat = Platform()
    _say("bringing the platform up")
    plat.up()
    plat.up(["kube-worker"])  # the pipeline's image and the in-cluster pool's worker
    ensure_gosec()  # the delivery's security scan finds it through KYB_GOSEC
    env = {**os.environ, **plat.env(), "PWD": str(ROOT)}
    _prefect(env, "block", "register", "-m", "blocks")
    _prefect(env, "--no-prompt", "deploy", "--all")
    _say("blocks registered, deployments created from prefect.yaml")
    _start_worker(env, plat.env())

    ui = env.get("PREFECT_UI_URL", plat.prefect.api_url.removesuffix("/api"))
    fixed = {  # what the receiver adds to every push's run (the push decides the rest)
        "templates": _templates(),  # production's strategy is its Environment block's
        "auto_approve": True,
    }
    hook = demo_push.start_receiver(plat, env, fixed)
    _say(f"webhook receiver at {hook}; the git server's {demo_push.REPOSITORY} posts to it")
    with _users(plat) as users:
        ok, lines = _deliveries(plat, ui, users)
    image = _production_image(KubernetesCluster.load("local"))
    _say(f"3/4 release-in-cluster: production's version into {demo_in_cluster.NAMESPACE}, as a Job")
    inside = _finished(demo_in_cluster.release_in_cluster(image), ui)
    _say(f"  ran as {demo_in_cluster.job_of(inside)}")
    _say("4/4 backing up production and staging, then a DR drill of that backup")
    saved, drill = _backup_and_drill(ui)
    ok = ok and inside.state.is_completed()
    ok = ok and saved.state.is_completed() and drill.state.is_completed()
    _say("summary")
    print(f"  Prefect UI:             {ui}")
    for line in lines:
        print(f"  {line}")
    print(f"  in-cluster release:     {inside.state.name} ({demo_in_cluster.job_of(inside)})")
    print(f"  backup:                 {saved.state.name}")
    print(f"  DR drill:               {drill.state.name} (report: artifact dr-drill-report)")
    print(f"  DORA, production, 24 h: {_dora_line(ui)}")
    print(f"  metrics and alerts:     {plat.metrics.url}, {plat.prometheus.url}/alerts")
    print(f"  result:                 {'as expected' if ok else 'NOT as expected'}")
    return 0 if ok else 1


def _dora_line(ui: str) -> str:
    """DORA's keys of the last day (the demo's deliveries), from the `dora` deployment."""
    from prefect.artifacts import Artifact
    from prefect.deployments import run_deployment

    run = run_deployment("dora-report/dora", parameters={"days": 1}, timeout=300)
    if not run.state.is_completed():
        return f"{run.state.name}: {ui}/runs/flow-run/{run.id}"
    report = Artifact.get("dora-report")
    keys = ("| Deployment frequency |", "| Change failure rate |")
    rows = [r for r in str(report.data if report else "").splitlines() if r.startswith(keys)]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    return "; ".join(f"{c[0].lower()} {c[1]} ({c[3]})" for c in cells if len(c) == 4) or "-"


HOSTS = {  # the routes of examples/kyb-platform/deploy/*/route.yaml
    "production": "kyb-platform.kyb-production",
    "preview": "kyb-platform-preview.kyb-production",
    "staging": "kyb-platform.kyb-staging",
}


@contextlib.contextmanager
def _users(plat: Platform) -> Iterator[dict[str, Load]]:
    """Steady requests through Traefik to each environment's route while the demo runs."""
    with contextlib.ExitStack() as stack:
        users = {
            name: stack.enter_context(
                Load([plat.traefik.url], host=host, per_second=10, max_seconds=3600)
            )
            for name, host in HOSTS.items()
        }
        _say(f"users: 10 requests/s each to {', '.join(HOSTS.values())} through {plat.traefik.url}")
        yield users


def _deliveries(plat: Platform, ui: str, users: dict[str, Load]) -> tuple[bool, list[str]]:
    """Push a good version, then a faulty one; (as expected?, summary lines)."""
    from blocks import KubernetesCluster

    head = _git("rev-parse", "HEAD")
    _say(f"1/4 git push of the project at {head[:12]} to main: staging, then production")
    good_sha, pushed = demo_push.push(plat, f"demo: kyb-platform at {head}")
    _say(f"  pushed {good_sha[:12]}; the git server's hook: {_hook_answer(pushed)}")
    good = _finished(demo_push.wait_for(demo_push.started_run(good_sha)), ui)
    cluster = KubernetesCluster.load("local")
    released = _production_image(cluster)
    _say(
        f"2/4 git push of a faulty version: production's config makes {FAULT:.0%} of requests fail"
    )
    before = sum(users["production"].tally.values())
    bad_sha, pushed = demo_push.push(
        plat, "demo: a faulty version", parent=good_sha, changes={PROD_CONFIG: _faulty_config()}
    )
    _say(f"  pushed {bad_sha[:12]}; the git server's hook: {_hook_answer(pushed)}")
    bad = _finished(demo_push.wait_for(demo_push.started_run(bad_sha)), ui)
    after = _production_image(cluster)
    seen = users["production"].timeline[before:]
    failed = sum(1 for _, answer in seen if answer == "500")
    probe = Load([plat.traefik.url], host=HOSTS["production"], max_seconds=60)
    try:
        now = probe.send(100)  # what production's users get once the faulty release ended
    finally:
        probe.close()
    ok = (
        good.state.is_completed()
        and bad.state.is_failed()
        and after == released != "-"
        and failed > 0
        and now == {good_sha[:12]: 100}
    )
    return ok, [
        f"production runs:        {released}",
        f"first delivery:         {good.state.name}",
        f"faulty delivery:        {bad.state.name}: {bad.state.message}",
        f"production after fault: {'still ' if after == released else ''}{after}",
        f"users' requests since the faulty push: {len(seen)}, {failed} answered 500 "
        "by the faulty pods before the rollback",
        f"production's answers now: {dict(now)} (100 requests through {plat.traefik.url})",
    ]


FAULT = 0.3
PROD_CONFIG = "examples/kyb-platform/deploy/production/config.env"


def _faulty_config() -> str:
    """Production's config with the example service's fault rate: the faulty commit's change."""
    text = (ROOT / PROD_CONFIG).read_text()
    return f"{text.rstrip()}\n# the demo's faulty commit\nKYB_ERROR_RATE={FAULT}\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["stop"]:
        _say("worker stopped" if worker().stop() else "no worker was running")
        _say("receiver stopped" if demo_push.receiver().stop() else "no receiver was running")
        sys.exit(0)
    try:
        sys.exit(main())
    except PlatformError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        sys.exit(1)

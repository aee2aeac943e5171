"""`make demo`: the whole delivery pipeline on the local platform, twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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

from sandbox import demo_push
from sandbox.errors import PlatformError
from sandbox.platform import WORK_POOL, Platform
from sandbox.procs import Daemon

ROOT = Path(__file__).resolve().parents[1]
FAST = {
    "interval_seconds": 5,
    "count": 3,
    "min_samples": 2,
    "initial_delay_seconds": 6,
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
    from core.analysis.templates import BUILTINS, rescheduled

    return [
        rescheduled(BUILTINS[name], **FAST).model_dump() for name in ("error-rate", "latency-p95")
    ]


def _deliver(params: dict[str, Any], ui: str) -> Any:
    from prefect.deployments import run_deployment

    run = run_deployment("delivery/delivery", parameters=params, timeout=1800)
    _say(f"  {run.name}: {run.state.name}: {ui}/runs/flow-run/{run.id}")
    return run


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
    """The image production's stable Deployment serves ("-" if none, or scaled to zero)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        live = client.AppsV1Api(cluster.api_client()).read_namespaced_deployment(
            "kyb-platform", "kyb-production", _request_timeout=10
        )
    except ApiException as exc:
        if exc.status == 404:
            return "-"
        raise
    if not (live.spec.replicas and live.status.ready_replicas):
        return "-"  # scaled to zero: it serves nothing
    return live.spec.template.spec.containers[0].image


def main() -> int:
    """Run the demo; return the exit code."""
    plat = Platform()
    _say("bringing the platform up")
    plat.up()
    ensure_gosec()  # the delivery's security scan finds it through KYB_GOSEC
    env = {**os.environ, **plat.env(), "PWD": str(ROOT)}
    _prefect(env, "block", "register", "-m", "blocks")
    _prefect(env, "--no-prompt", "deploy", "--all")
    _say("blocks registered, deployments created from prefect.yaml")
    _start_worker(env, plat.env())

    from blocks import KubernetesCluster

    ui = env.get("PREFECT_UI_URL", plat.prefect.api_url.removesuffix("/api"))
    fixed = {  # what the receiver adds to every push's run (the push decides the rest)
        "templates": _templates(),  # production's strategy is its Environment block's
        "auto_approve": True,
        "endpoints": "sandbox-stand-ins",
    }
    hook = demo_push.start_receiver(plat, env, fixed)
    _say(f"webhook receiver at {hook}; the git server's {demo_push.REPOSITORY} posts to it")
    head = _git("rev-parse", "HEAD")
    _say(f"1/3 git push of the project at {head[:12]} to main: staging, then production")
    sha, pushed = demo_push.push(plat, f"demo: kyb-platform at {head}")
    _say(f"  pushed {sha[:12]}; the git server's hook: {_hook_answer(pushed)}")
    good = _finished(demo_push.wait_for(demo_push.started_run(sha)), ui)
    cluster = KubernetesCluster.load("local")
    released = _production_image(cluster)
    _say("2/3 delivering a new version whose stand-ins fail 30% of requests")
    # The same tree as a new commit on a branch no rule deploys (the receiver ignores it), run by
    # hand with the fault the stand-ins inject (issue 16 makes the fault a real code change).
    fault, _ = demo_push.push(plat, "demo: a faulty version", branch="demo-faults")
    bad = _deliver(
        {
            **fixed,
            "commit": fault,
            "branch": "main",
            "commit_time": _git("show", "-s", "--format=%cI", fault),
            "environment": "production",
            "git_block": demo_push.GIT_BLOCK,
            "endpoint_options": {"fault_error_rate": 0.3},
        },
        ui,
    )
    after = _production_image(cluster)
    _say("3/3 backing up production and staging, then a DR drill of that backup")
    saved, drill = _backup_and_drill(ui)
    ok = (
        good.state.is_completed()
        and bad.state.is_failed()
        and after == released
        and saved.state.is_completed()
        and drill.state.is_completed()
    )
    _say("summary")
    print(f"  Prefect UI:             {ui}")
    print(f"  production runs:        {released}")
    print(f"  first delivery:         {good.state.name}")
    print(f"  faulty delivery:        {bad.state.name}: {bad.state.message}")
    print(f"  production after fault: {'still ' if after == released else ''}{after}")
    print(f"  backup:                 {saved.state.name}")
    print(f"  DR drill:               {drill.state.name} (report: artifact dr-drill-report)")
    print(f"  result:                 {'as expected' if ok else 'NOT as expected'}")
    return 0 if ok else 1


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

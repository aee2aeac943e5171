"""git push -> delivery running: commits pushed to the platform's git server, timed to the run.

Each push goes to a fresh repository on the platform's git server (sandbox/components/git_server),
whose post-receive hook sends the signed push to the real receiver (served here on a free loopback
port); the receiver creates the run of a stand-in delivery flow (tests/integration/test_webhook's
`delivery`, which takes the delivery's parameters and does nothing) on a process work pool of its
own, and a real `prefect worker` of that pool, started here, runs it. Timed from just before
`git push`: the hook's answer (git push returns after its hook), the run's creation and its
Running state, both by the server's clock. The stand-in's import time stands in for the real
flow's; what the delivery does once Running is not measured. Needs the platform's git server
(`uv run sandbox up`).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = re.compile(r'"flow_run_id"\s*:\s*"([0-9a-f-]{36})"')
STARTED = {"RUNNING", "COMPLETED", "FAILED", "CRASHED", "CANCELLING", "CANCELLED"}


def _worker(pool: str, poll: float, log: Path) -> subprocess.Popen:
    """A real process worker of `pool` polling every `poll` s, once the server has seen it."""
    from prefect.client.orchestration import get_client

    prefect = str(Path(sys.executable).parent / "prefect")
    # the stand-in is deployed by module name: its runs import it from the project's root
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": f"{poll:g}", "PYTHONPATH": str(ROOT)}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [prefect, "worker", "start", "--pool", pool, "--limit", "4"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and proc.poll() is None:
            if client.read_workers_for_work_pool(pool):
                return proc
            time.sleep(0.5)  # bounded by the deadline
    proc.terminate()
    proc.wait(30)
    sys.exit(f"the benchmark's worker did not start: {log.read_text()[-800:]}")


def _push(folder: Path, url: str, n: int) -> tuple[str, str, float]:
    """Commit a change in `folder` and push it to `url`: (SHA, git's output, time before push)."""
    from tests.integration.gitrepo import git

    (folder / "README").write_text(f"push {n}\n")
    git(folder, "add", ".")
    git(folder, "commit", "-qm", f"push {n}")
    sha = git(folder, "rev-parse", "HEAD")
    t0 = time.time()
    return sha, git(folder, "push", url, "develop"), t0


def _timed(run_id: str, t0: float, pushed: float, wait_running: bool, limit: float) -> dict:
    """Seconds from the push to the hook's answer, the run's creation and its Running state."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        deadline = time.monotonic() + limit
        while wait_running and run.state_type.value not in STARTED:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)  # bounded by the deadline
            run = client.read_flow_run(run_id)
        states = client.read_flow_run_states(run_id) if wait_running else []
    running = [s.timestamp.timestamp() for s in states if s.type.value == "RUNNING"]
    return {
        "answered": pushed - t0,
        "created": run.created.timestamp() - t0,
        "running": min(running) - t0 if running else None,
        "state": run.state_name,
    }


def push_to_running(pushes: int, worker_poll: float | None) -> None:
    """Push `pushes` commits and print each one's times (worker_poll None: no worker)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.types.entrypoint import EntrypointType
    from pydantic import SecretStr

    from deployments.webhook import PATH, create_app
    from deployments.webhook_settings import WebhookSettings
    from sandbox.components.git_server import GitServer
    from sandbox.settings import Settings
    from tests.integration.gitrepo import git
    from tests.integration.test_webhook import (
        SECRET,
        delivery,
        drop_deployment,
        make_deployment,
        serving,
    )

    server = GitServer(Settings())
    if server.status().state != "running":
        print("git push -> delivery running: skipped, the platform's git server is not running")
        return
    tag = uuid.uuid4().hex[:8]
    name, pool = f"kyb-bench-{tag}", f"bench-{tag}"
    work = Path(tempfile.mkdtemp(prefix="kyb-bench-"))
    proc = None
    if worker_poll is None:
        deployment = make_deployment()
    else:
        with get_client(sync_client=True) as client:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        deployment = f"delivery/{pool}"
        by_module = EntrypointType.MODULE_PATH  # the worker runs it in a workspace of its own
        delivery.to_deployment(name=pool, entrypoint_type=by_module).apply(work_pool_name=pool)
    rows: list[dict] = []
    try:
        if worker_poll is not None:
            proc = _worker(pool, worker_poll, work / "worker.log")
        settings = WebhookSettings(
            secret=SecretStr(SECRET), repositories=(f"local/{name}",), deployment=deployment
        )
        with serving(create_app(settings)) as base:
            url = server.ensure_repository(name, f"{base}{PATH}", SECRET)
            folder = work / "repo"
            folder.mkdir()
            git(folder, "init", "-q", "-b", "develop")
            for n in range(1, pushes + 1):
                _, output, t0 = _push(folder, url, n)
                pushed = time.time()
                found = RUN_ID.search(output)
                if "HTTP 202" not in output or not found:
                    print(f"  push {n}: not accepted: {output[-300:]}")
                    continue
                limit = 60 + (worker_poll or 0)
                rows.append(_timed(found.group(1), t0, pushed, worker_poll is not None, limit))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
            if any(row["running"] is None for row in rows):
                print(f"the worker's log ends: {(work / 'worker.log').read_text()[-1500:]}")
        drop_deployment(deployment)
        if worker_poll is not None:
            with get_client(sync_client=True) as client:
                client.delete_work_pool(pool)
        shutil.rmtree(server.repos / f"{name}.git", ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    _print(rows, pushes, server.url(name), worker_poll)


def _print(rows: list[dict], pushes: int, url: str, worker_poll: float | None) -> None:
    who = (
        f"one process worker polling every {worker_poll:g} s"
        if worker_poll is not None
        else "NO worker: timed only until the run exists"
    )
    print(
        f"git push -> delivery running ({len(rows)}/{pushes} pushes to {url}, a stand-in "
        f"delivery flow, {who}):"
    )
    for n, row in enumerate(rows, 1):
        running = f"{row['running']:.2f} s" if row["running"] is not None else "never"
        running += f" (now {row['state']})"
        print(
            f"  push {n}: run created {row['created']:.2f} s, hook answered (git push returned) "
            f"{row['answered']:.2f} s, Running {running}"
        )
    times = [row["running"] for row in rows if row["running"] is not None]
    if times:
        print(
            f"  push -> Running: median {statistics.median(times):.2f} s, max {max(times):.2f} s "
            f"(the worker finds a run at its next poll: up to {worker_poll:g} s of it)"
        )

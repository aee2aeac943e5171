"""Flows run against the platform's real Prefect server: retries, stored runs, masked secrets."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from core.errors import TransientError
from sandbox.components.prefect_server import PrefectServer
from sandbox.platform import Platform
from sandbox.settings import HOST, Settings

_attempts: list[int] = []


@task(retries=2, retry_delay_seconds=0)
def flaky_step() -> str:
    """Fails once with a transient error, then succeeds."""
    _attempts.append(1)
    if len(_attempts) == 1:
        raise TransientError("registry answered 503", registry="127.0.0.1:5001")
    return "pushed"


@flow
def retry_probe() -> str:
    return flaky_step()


async def _task_runs(flow_run_id):
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        tasks = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        return run, tasks


def test_flow_with_retried_task_runs_on_server(platform: Platform) -> None:
    _attempts.clear()
    state = retry_probe(return_state=True)
    assert state.is_completed()
    assert state.result() == "pushed"
    assert len(_attempts) == 2

    deadline = time.monotonic() + 30  # task run records arrive through the events pipeline
    run, tasks = asyncio.run(_task_runs(state.state_details.flow_run_id))
    while not (tasks and tasks[0].run_count == 2) and time.monotonic() < deadline:
        time.sleep(0.5)  # bounded by the deadline
        run, tasks = asyncio.run(_task_runs(state.state_details.flow_run_id))
    assert run.state.is_completed()
    assert [t.run_count for t in tasks] == [2]  # one task run, attempted twice
    health = httpx.get(f"{platform.prefect.api_url}/health", timeout=10)  # open to probes
    assert health.status_code == 200


def test_saved_block_secrets_are_masked_by_the_api(platform: Platform) -> None:
    _user, password = platform.registry.credentials()
    api = platform.prefect.http()
    resp = api.post(
        "/block_documents/filter",
        json={
            "include_secrets": False,
            "block_types": {"slug": {"any_": ["kyb-container-registry"]}},
        },
    )
    resp.raise_for_status()
    docs = resp.json()
    assert docs, "sandbox up saved no registry block"
    assert password.get_secret_value() not in resp.text
    assert all(d["data"]["password"] == "********" for d in docs)

    clusters = api.post(
        "/block_documents/filter",
        json={
            "include_secrets": False,
            "block_types": {"slug": {"any_": ["kyb-kubernetes-cluster"]}},
        },
    ).json()
    # every block with a kubeconfig shows it masked; the `in-cluster` one holds none (its pod's
    # ServiceAccount is its credential)
    with_kubeconfig = [d for d in clusters if not d["data"].get("in_cluster")]
    assert with_kubeconfig and all(d["data"]["kubeconfig"] == "********" for d in with_kubeconfig)
    assert all(d["data"]["kubeconfig"] is None for d in clusters if d["data"].get("in_cluster"))
    key = (platform.settings.kubeconfig.parent / "pki" / "admin.key").read_text()
    assert key.splitlines()[1] not in str(clusters)


def test_block_types_register_from_the_module(platform: Platform) -> None:

    prefect = Path(sys.executable).parent / "prefect"
    done = subprocess.run(
        [str(prefect), "block", "register", "-m", "blocks"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
        env={**platform.env(), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    slugs = (
        "kyb-kubernetes-cluster",
        "kyb-container-registry",
        "kyb-prometheus",
        "kyb-object-store",
        "kyb-velero",
        "kyb-environment",
        "kyb-git-repository",
    )
    assert f"Successfully registered {len(slugs)} blocks" in done.stdout, done.stdout
    api = platform.prefect.http()
    for slug in slugs:
        resp = api.get(f"/block_types/slug/{slug}")
        assert resp.status_code == 200, slug


def test_prefect_yaml_deploys_on_the_platform(platform: Platform) -> None:

    root = Path(__file__).parents[2]
    prefect = Path(sys.executable).parent / "prefect"
    done = subprocess.run(
        [str(prefect), "--no-prompt", "deploy", "--all"],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env={**platform.env(), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = {}
    api = platform.prefect.http()
    names = (
        "release/release",
        "rollback/rollback",
        "delivery/delivery",
        "dora-report/dora",
        "backup/backup",
        "disaster-recovery/disaster-recovery",
        "dr-drill/dr-drill",
        "notify-run/notify",
        "reconcile/reconcile",
    )
    for name in names:
        resp = api.get(f"/deployments/name/{name}")
        assert resp.status_code == 200, name
        assert resp.json()["work_pool_name"] == "kyb-local"
        found[name] = resp.json()
    form = found["delivery/delivery"]["parameter_openapi_schema"]
    assert {"commit", "branch"} <= set(form["required"])  # the UI form asks for them
    assert "auto_approve" in form["properties"]

    def crons(name: str) -> list[str]:
        return [s["schedule"].get("cron") for s in found[name]["schedules"]]

    assert crons("dora-report/dora") == ["0 6 * * 1"]
    assert crons("backup/backup") == ["0 2 * * *"]  # the seed's nightly backup
    assert crons("dr-drill/dr-drill") == ["0 4 * * 0"]
    assert crons("disaster-recovery/disaster-recovery") == []  # started by hand from the UI
    # a release whose run died is ended within minutes: every minute, and when such a run crashes
    [every] = found["reconcile/reconcile"]["schedules"]
    assert every["schedule"]["interval"] == 60 and every["active"]
    resp = api.get("/deployments/name/release/release-in-cluster")
    assert resp.status_code == 200
    in_cluster = resp.json()
    assert in_cluster["work_pool_name"] == "kyb-kubernetes"
    assert in_cluster["job_variables"]["service_account_name"] == "kyb-pipeline-dev"
    assert in_cluster["job_variables"]["namespace"] == "kyb-system"
    # its code is the image's: no folder of the machine that deployed it
    where = [
        step["prefect.deployments.steps.set_working_directory"] for step in in_cluster["pull_steps"]
    ]
    assert where == [{"directory": "/opt/kyb/app"}]
    pool = api.get("/work_pools/kyb-kubernetes").json()
    assert pool["type"] == "kubernetes"
    assert "service_account_name" in pool["base_job_template"]["variables"]["properties"]
    dr_form = found["disaster-recovery/disaster-recovery"]["parameter_openapi_schema"]
    assert dr_form["properties"]["backup"]["default"] == "latest"
    limits = {
        name: (
            d["global_concurrency_limit"]["limit"],
            d["concurrency_options"]["collision_strategy"],
        )
        for name, d in found.items()
    }
    assert limits["backup/backup"] == (1, "CANCEL_NEW")  # a second backup meanwhile is dropped
    assert limits["release/release"] == (20, "ENQUEUE")  # more releases wait, none is dropped
    assert all(limit >= 1 for limit, _ in limits.values()), limits
    automations = api.post("/automations/filter", json={}).json()
    [push] = [a for a in automations if a["name"] == "github-push-delivery-delivery"]
    assert push["trigger"]["expect"] == ["kyb.webhook.push"]
    [action] = push["actions"]
    assert action["deployment_id"] == found["delivery/delivery"]["id"]
    # the environment reaches the run as a block reference, as the receiver itself sends it
    assert action["parameters"]["environment"] == {
        "$ref": {"block_document_slug": "kyb-environment/{{ event.payload.environment }}"}
    }
    assert set(action["parameters"]) <= set(form["properties"])  # only what the flow takes
    [crashed] = [a for a in automations if a["name"] == "reconcile-crashed-runs"]
    assert "prefect.flow-run.Crashed" in crashed["trigger"]["expect"]
    assert crashed["actions"][0]["deployment_id"] == found["reconcile/reconcile"]["id"]
    [told] = [a for a in automations if a["name"] == "notify-reconciled-releases"]
    assert told["actions"][0]["parameters"]["flow_run_id"] == "{{ event.payload.run }}"


def _handles(pid: int, database: str) -> int:

    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.path.realpath(fd, strict=False) == database
        except OSError:  # closed while listed
            continue
    return count


def test_the_platform_server_keeps_its_data_in_postgresql(platform: Platform) -> None:
    """The default platform: Prefect's server on PostgreSQL, connected over loopback TCP."""
    assert platform.prefect.database is not None, "KYB_PREFECT_DB=sqlite is set for this run"
    pid = platform.prefect.daemon.pid()
    assert pid, "the Prefect server is not running"
    assert platform.postgres.daemon.pid(), "PostgreSQL is not running"
    assert (platform.prefect.state / "database-kind").read_text().startswith("postgres")
    port = f"{platform.postgres.port:04X}"
    tcp = Path("/proc/net/tcp").read_text().splitlines()[1:]
    inodes = {line.split()[9] for line in tcp if line.split()[2] == f"0100007F:{port}"}
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed while listed
            continue
        if target.startswith("socket:["):
            sockets.add(target[8:-1])
    assert sockets & inodes, "the Prefect server holds no connection to PostgreSQL"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A second Prefect server on SQLite (KYB_PREFECT_DB=sqlite), state in a folder of its own."""
    home = tmp_path_factory.mktemp("sqlite-platform")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KYB_SANDBOX_HOME", str(home))
        env.setenv("KYB_PREFECT_PORT", str(_free_port()))
        server = PrefectServer(Settings())
    server.up()
    try:
        yield server
    finally:
        server.down()


def test_a_burst_on_the_sqlite_server_neither_widens_its_pool_nor_gets_503(
    sqlite_server: PrefectServer,
) -> None:
    """sandbox.components.prefect_server.sqlite_url: one connection per engine, so no 503.

    The single connection rests on a detail of Prefect (a ":memory:" URL gets a one-connection
    pool). Prefect keeps one engine per event loop, so a second loop (its migrations' worker
    thread) may hold the file once more; what must not happen is a pool that widens with the
    burst, as Prefect's default one does (a connection per concurrent request, 15 and more).
    """
    pid = sqlite_server.daemon.pid()
    assert pid, "the SQLite Prefect server is not running"
    database = str((sqlite_server.state / "prefect.db").resolve())
    peak, done = [_handles(pid, database)], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak.append(_handles(pid, database))
            done.wait(0.005)  # /proc has no watch: sample until the burst is over

    with sqlite_server.http(timeout=60) as api:
        flow_id = api.post("/flows/", json={"name": "pool-burst"}).json()["id"]

        def create(i: int) -> int:
            body = {"flow_id": flow_id, "name": f"burst-{i}", "state": {"type": "SCHEDULED"}}
            return api.post("/flow_runs/", json=body).status_code

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            with ThreadPoolExecutor(max_workers=40) as pool:
                codes = list(pool.map(create, range(120)))
        finally:
            done.set()
            watcher.join()
        runs = api.post(
            "/flow_runs/filter", json={"flows": {"id": {"any_": [flow_id]}}, "limit": 200}
        ).json()
        for run in runs:
            api.delete(f"/flow_runs/{run['id']}")
    assert sorted(set(codes)) == [201], f"answers to 120 concurrent creates: {sorted(codes)}"
    assert len(runs) == 120
    assert max(peak) <= 2, f"the burst opened {max(peak)} handles on {database}"

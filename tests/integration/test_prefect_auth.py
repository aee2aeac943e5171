"""The platform's Prefect API requires basic auth; every client the platform starts has it."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments import run_deployment

from sandbox.platform import Platform
from tests.integration.workers import run_once

ROOT = Path(__file__).parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")


def _password(platform: Platform) -> str:
    return platform.prefect.auth_string().get_secret_value().partition(":")[2]


def test_an_api_call_without_the_auth_string_gets_401(platform: Platform) -> None:
    api = platform.prefect.api_url
    bare = httpx.post(f"{api}/flows/filter", json={}, timeout=10)
    wrong = httpx.post(f"{api}/flows/filter", json={}, auth=("kyb", "guess"), timeout=10)
    assert (bare.status_code, wrong.status_code) == (401, 401)
    blocks = httpx.post(f"{api}/block_documents/filter", json={"include_secrets": True}, timeout=10)
    assert blocks.status_code == 401  # no block (and no secret in one) is read without auth
    assert httpx.get(f"{api}/health", timeout=10).status_code == 200  # probes stay open
    with platform.prefect.http() as client:
        assert client.post("/flows/filter", json={}).status_code == 200


def _load_registry_block(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from blocks import ContainerRegistry; ContainerRegistry.load('local'); print('loaded')"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_process_without_the_profile_cannot_load_a_block(platform: Platform, tmp_path) -> None:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    stranger = _load_registry_block(
        {
            **base,
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_API_URL": platform.prefect.api_url,
        }
    )
    assert stranger.returncode != 0
    assert "401" in stranger.stderr or "Unauthorized" in stranger.stderr, stranger.stderr[-1500:]
    client = _load_registry_block({**base, **platform.env()})
    assert client.returncode == 0 and "loaded" in client.stdout, client.stderr[-1500:]


def test_the_auth_string_is_in_no_process_environment_and_its_file_is_0600(
    platform: Platform,
) -> None:
    password = _password(platform)
    assert password not in json.dumps(platform.env())  # what `sandbox env` prints and children get
    pid = platform.prefect.daemon.pid()
    assert pid, "the Prefect server is not running"
    assert password.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    assert stat.S_IMODE(platform.prefect.profiles.stat().st_mode) == 0o600
    assert password in platform.prefect.profiles.read_text()


def test_a_worker_runs_a_deployment_whose_tools_never_see_the_auth(
    platform: Platform, tmp_path
) -> None:
    """A real process worker (started with the platform's env only) picks up a deployment run.

    Prefect's worker passes its API settings, the auth string among them, to the flow-run
    process it starts (as it passes PREFECT_API_KEY on Cloud): the run itself is the pipeline.
    What runs the repository's code from there gets the scrubbed tool environment.
    """
    from prefect import flow

    pool = f"t-auth-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    try:
        probe = flow.from_source(str(Path(__file__).parent / "authprobe"), "probe.py:auth_probe")
        probe.deploy(name=pool, work_pool_name=pool, print_next_steps=False)
        out = tmp_path / "report.json"
        run = run_deployment(f"auth-probe/{pool}", parameters={"out": str(out)}, timeout=0)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
        worker = run_once(pool, {**env, **platform.env()})
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run.id).state
        assert state.is_completed(), f"{state.name}: {state.message}"
        report = json.loads(out.read_text())
        assert report == {"auth_set": True, "tool_saw_auth": False}
        assert _password(platform) not in worker.stdout + worker.stderr
    finally:
        with get_client(sync_client=True) as client:
            client.delete_work_pool(pool)

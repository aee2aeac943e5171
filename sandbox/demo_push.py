"""The demo's push path: the receiver as a platform daemon, a release pushed to the git server.

A push to the platform's git server runs its post-receive hook, which sends the receiver a
signed GitHub push; the receiver starts the delivery of exactly that commit, fetched back from
the git server (the `kyb-platform` KYB Git Repository block). Nothing here calls the delivery.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from sandbox.errors import PlatformError
from sandbox.files import generated_once, write_file
from sandbox.procs import Daemon, wait_until
from sandbox.settings import HOST, Settings

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "kyb-platform"  # on the git server; its pushes come as local/kyb-platform
GIT_BLOCK = "kyb-platform"
SECRET_BLOCK = "kyb-webhook-secret"


def receiver(settings: Settings | None = None) -> Daemon:
    """The demo's webhook receiver, `python -m deployments.webhook` (the platform owns it)."""
    return Daemon("webhook-receiver", (settings or Settings()).dir("webhook"))


DELIVERY = "delivery/delivery"


def start_receiver(
    plat: Any, env: dict[str, str], parameters: dict[str, Any], deployment: str = DELIVERY
) -> str:
    """Save the receiver's blocks, (re)start it with these settings; the URL the hook posts to.

    The secret reaches the receiver as a Prefect Secret block, never through its environment.
    A receiver already running with other settings is restarted.
    """
    from prefect.blocks.system import Secret

    from blocks import GitRepository

    settings = plat.settings
    made = generated_once(settings.dir("webhook") / "secret.json", lambda: {"secret": _token()})
    Secret(value=made["secret"]).save(SECRET_BLOCK, overwrite=True)
    GitRepository(url=plat.git.url(REPOSITORY)).save(GIT_BLOCK, overwrite=True)
    port = settings.ports.webhook
    config = {
        "KYB_WEBHOOK_HOST": HOST,
        "KYB_WEBHOOK_PORT": str(port),
        "KYB_WEBHOOK_REPOSITORIES": f"local/{REPOSITORY}",
        "KYB_WEBHOOK_SECRET_BLOCK": SECRET_BLOCK,
        "KYB_WEBHOOK_GIT_BLOCK": GIT_BLOCK,
        "KYB_WEBHOOK_IMAGE_REPOSITORY": f"{plat.registry.address}/{REPOSITORY}",
        "KYB_WEBHOOK_PARAMETERS": json.dumps(parameters, sort_keys=True),
        "KYB_WEBHOOK_DEPLOYMENT": deployment,
    }
    daemon = receiver(settings)
    stamp = settings.dir("webhook") / "settings.json"
    if daemon.pid() and (not stamp.exists() or json.loads(stamp.read_text()) != config):
        daemon.stop()
    write_file(stamp, json.dumps(config), mode=0o644)  # no secret in it
    base = f"http://{HOST}:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    daemon.ensure(
        lambda: [sys.executable, "-m", "deployments.webhook"],
        answers,
        f"the webhook receiver at {base}",
        port,
        "stop that process or set KYB_WEBHOOK_PORT to a free port",
        timeout=60,
        env={**env, **config, "PYTHONPATH": str(ROOT)},
    )
    url = f"{base}/webhooks/github"
    plat.git.ensure_repository(REPOSITORY, url, made["secret"])
    return url


def _token() -> str:
    return secrets.token_urlsafe(32)


def _git(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=None if env is None else {**os.environ, **env},
        input=stdin,
    )
    if done.returncode != 0:
        raise PlatformError(
            "demo",
            f"git {' '.join(args[:2])} failed: {done.stderr.strip()[-800:]}",
            "run the demo from a git checkout of the project",
        )
    return (done.stdout + done.stderr).strip()


def push(
    plat: Any,
    message: str,
    branch: str = "main",
    parent: str = "",
    changes: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Push the checkout's tree as a new commit to `branch` on the git server: (its SHA, output).

    `changes` (path -> new content) are made in that tree first, on top of `parent`; the
    checkout itself is never touched. Without a parent the commit is a root (a shallow checkout
    can push it too); it is new on every run, so the server's hook always sees a push.
    """
    tree = _tree_with(changes or {})
    sha = _git("commit-tree", tree, *(["-p", parent] if parent else []), "-m", message)
    out = _git("push", "--force", plat.git.url(REPOSITORY), f"{sha}:refs/heads/{branch}")
    return sha, out


def _tree_with(changes: dict[str, str]) -> str:
    """HEAD's tree with `changes` written into it (a private index: the checkout is untouched)."""
    if not changes:
        return _git("rev-parse", "HEAD^{tree}")
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git("read-tree", "HEAD^{tree}", env=index)
        for path, text in changes.items():
            blob = _git("hash-object", "-w", "--stdin", stdin=text)
            _git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        return _git("write-tree", env=index)


def started_run(commit: str, deployment: str = DELIVERY, timeout: float = 60) -> Any:
    """The flow run the receiver created for `commit` (it answered the hook before git returned)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    found: list[Any] = []

    def created() -> bool:
        with get_client(sync_client=True) as client:
            target = client.read_deployment_by_name(deployment)
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[target.id])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=20,
            )
        found[:] = [r for r in runs if r.parameters.get("commit") == commit]
        return bool(found)

    wait_until(created, timeout, f"a {deployment} run of {commit[:12]}", None)
    return found[0]


def wait_for(run: Any, timeout: float = 1800) -> Any:
    """The run once it ended (polls the API every 5 s), or a PlatformError after `timeout`."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run.id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(5)  # bounded by the deadline
    raise PlatformError("demo", f"run {run.name} did not end in {timeout:g} s", "see the UI")

"""Notifications, server-side: prefect.yaml's triggers start `notify-run` on a real worker.

The messages go through a real Custom Webhook block saved on the local Prefect server.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import flow
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName
from prefect.events import DeploymentEventTrigger
from prefect.states import Crashed, Running

from blocks import KubernetesCluster
from core.release.actions import Pause
from core.release.decisions import Choice, Decision
from core.release.errors import ReleaseFailed
from core.release.spec import ReleaseSpec
from flows.release.flow import perform_release
from tasks.notify import ENV_BLOCK, notify
from tests.integration.release_helpers import V1, V2, Scripted
from tests.integration.release_helpers import spec as release_spec
from tests.integration.workers import run_once

pytestmark = pytest.mark.platform

ROOT = Path(__file__).parents[2]
PREFECT_YAML = ROOT / "prefect.yaml"
SECRET = f"tok-{uuid.uuid4().hex}"
IMAGE = "127.0.0.1:5001/kyb-platform@sha256:" + "b" * 64


class Receiver:
    """A loopback HTTP endpoint recording every request; answers `status`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size).decode()
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep the request line out of the logs
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rec:
        yield rec


@pytest.fixture
def block(platform, receiver: Receiver) -> Iterator[str]:
    """A Custom Webhook block whose token (a secret) goes in the URL and a header."""
    name = f"kyb-test-{uuid.uuid4().hex[:8]}"
    CustomWebhookNotificationBlock(
        name="kyb-pipeline",
        url=f"{receiver.url}/hook",
        params={"token": "{{token}}"},
        headers={"Authorization": "Bearer {{token}}"},
        json_data={"title": "{{subject}}", "text": "{{body}}"},
        secrets={"token": SECRET},
        timeout=5,
    ).save(name, overwrite=True)
    yield f"custom-webhook/{name}"
    CustomWebhookNotificationBlock.delete(name)


@flow(name="release")
def failing_release(spec: dict) -> None:
    raise ReleaseFailed(
        "canary analysis error-rate failed: 12% > 5%", app=spec["app"], namespace=spec["namespace"]
    )


@flow(name="rollback")
def rollback(app: str, namespace: str) -> dict[str, Any]:
    return {"image": IMAGE, "summary": f"{app} rolled back from revision 3 to 2"}


def _spec(app: str) -> dict[str, Any]:
    return {"app": app, "namespace": "kyb-staging", "image": IMAGE, "strategy": {"canary": {}}}


@pytest.fixture
def notifier(platform) -> Iterator[str]:
    """prefect.yaml's `notify` deployment, with its triggers, on a work pool of its own.

    Its own pool, so the worker the test runs picks up only the runs these triggers start.
    """
    pool = f"t-notify-{uuid.uuid4().hex[:8]}"
    declared = next(
        d for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"] if d["name"] == "notify"
    )
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    source = flow.from_source(str(ROOT), declared["entrypoint"])
    deployment_id = source.deploy(
        name=pool,
        work_pool_name=pool,
        triggers=[DeploymentEventTrigger(**t) for t in declared["triggers"]],
        print_next_steps=False,
    )
    try:
        yield pool
    finally:
        with get_client(sync_client=True) as client:
            client.delete_resource_owned_automations(f"prefect.deployment.{deployment_id}")
            client.delete_deployment(deployment_id)
            client.delete_work_pool(pool)


def _notified(platform, pool: str, ended: str, block: str, receiver: Receiver) -> dict[str, Any]:
    """Wait for the server to start `notify-run` for the run `ended`, run it on a worker once.

    Returns the one message the receiver got about it.
    """
    deadline, runs = time.monotonic() + 90, []
    while time.monotonic() < deadline and not runs:  # the triggers service reacts to the event
        with get_client(sync_client=True) as client:
            runs = [
                r
                for r in client.read_flow_runs(
                    work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool]))
                )
                if r.parameters.get("flow_run_id") == f"prefect.flow-run.{ended}"
            ]
        time.sleep(0 if runs else 1)
    assert runs, f"no notify-run was started for flow run {ended}"
    home = tempfile.mkdtemp(prefix="kyb-notify-worker-")
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "PYTHONPATH": str(ROOT), ENV_BLOCK: block}
    worker = run_once(pool, {**env, **platform.env()})
    assert SECRET not in worker.stdout + worker.stderr
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(runs[0].id).state
    assert state.is_completed(), f"{state.name}: {state.message}"
    about = [r for r in receiver.requests if ended in r["body"]]
    assert len(about) == 1, receiver.requests
    return json.loads(about[0]["body"])


def test_a_failed_release_is_notified_by_the_server(platform, notifier, block, receiver) -> None:
    app = f"n-{uuid.uuid4().hex[:8]}"
    state = failing_release(_spec(app), return_state=True)  # no hook in this process
    assert state.is_failed() and receiver.requests == []
    run_id = str(state.state_details.flow_run_id)

    message = _notified(platform, notifier, run_id, block, receiver)
    assert receiver.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert message["title"] == (
        f"release of {app} in kyb-staging: failed and was rolled back automatically"
    )
    text = message["text"]
    assert f"app: {app}" in text and "namespace: kyb-staging" in text and IMAGE in text
    assert "ReleaseFailed: canary analysis error-rate failed: 12% > 5%" in text
    assert f"/runs/flow-run/{run_id}" in text and text.count("http://") == 1


def test_a_release_whose_process_died_is_notified(platform, notifier, block, receiver) -> None:
    """A run left Running by a killed process, then marked Crashed, still gets its notice."""
    app = f"n-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(failing_release)
        run = client.create_flow_run(failing_release, parameters={"spec": _spec(app)})
        assert run.flow_id == flow_id
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(
            run.id, Crashed(message="the worker's process was killed"), force=True
        )
    message = _notified(platform, notifier, str(run.id), block, receiver)
    assert message["title"] == f"release of {app} in kyb-staging: crashed"
    assert "reason: the worker's process was killed" in message["text"]


def test_a_completed_rollback_is_notified(platform, notifier, block, receiver) -> None:
    app = f"n-{uuid.uuid4().hex[:8]}"
    state = rollback(app, "kyb-production", return_state=True)
    assert state.is_completed()
    message = _notified(platform, notifier, str(state.state_details.flow_run_id), block, receiver)
    assert message["title"] == f"rollback of {app} in kyb-production: rolled back"
    assert "reason:" not in message["text"]


@flow(name="release")
def paused_release(spec: ReleaseSpec) -> bool:
    """A real release whose pause a person answers at once (the event is sent as it pauses)."""

    def promote(pause: Pause, s: ReleaseSpec) -> Decision:
        return Decision(Choice.PROMOTE, "ana", "looks fine")

    return perform_release(spec, KubernetesCluster.load("local"), Scripted(), ask=promote).ok


def test_a_release_waiting_for_a_person_is_notified(
    platform, notifier, block, receiver, namespace
) -> None:
    steps = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}
    assert paused_release(release_spec(namespace, V1, steps))  # a first deploy: no pause
    state = paused_release(release_spec(namespace, V2, steps), return_state=True)
    assert state.is_completed()
    message = _notified(platform, notifier, str(state.state_details.flow_run_id), block, receiver)
    assert message["title"] == f"release of web in {namespace}: waiting for a person"
    assert "reason: canary at 50%: go on with" in message["text"]
    assert V2 in message["text"]


def test_missing_block_warns_and_sends_nothing(platform, receiver, caplog) -> None:
    caplog.set_level(logging.INFO)
    missing = f"custom-webhook/missing-{uuid.uuid4().hex[:8]}"
    assert notify.fn("release-failed", "t", "b", missing) is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum(missing in w and "not sent" in w for w in warnings) == 1
    assert receiver.requests == []


def test_malformed_reference_and_no_block_send_nothing(platform, caplog) -> None:
    caplog.set_level(logging.INFO)
    assert notify.fn("release-failed", "t", "b", "just-a-name") is False
    assert "'<block-type-slug>/<name>'" in caplog.text
    assert notify.fn("release-failed", "t", "b", None) is False
    assert ENV_BLOCK in caplog.text


def test_endpoint_error_is_a_warning_without_the_secret(block, receiver, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.status = 500
    assert notify.fn("release-failed", "title", "body", block) is False
    assert len(receiver.requests) == 1
    assert SECRET in receiver.requests[0]["path"]  # it went out in the URL...
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "HTTP 500" in warning and block in warning
    assert SECRET not in caplog.text  # ...and never into a log


def test_a_non_notification_block_is_refused(platform, caplog) -> None:
    from prefect.blocks.system import Secret

    name = f"kyb-test-{uuid.uuid4().hex[:8]}"
    Secret(value=SECRET).save(name, overwrite=True)
    try:
        caplog.set_level(logging.INFO)
        assert notify.fn("release-failed", "t", "b", f"secret/{name}") is False
        assert "cannot send notifications" in caplog.text and SECRET not in caplog.text
    finally:
        Secret.delete(name)

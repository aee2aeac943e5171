"""Notifications through a real Custom Webhook block saved on the local Prefect server."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prefect import flow
from prefect.blocks.notifications import CustomWebhookNotificationBlock

from core.release.errors import ReleaseFailed
from flows.hooks import on_release_failure, on_rollback
from tasks.notify import ENV_BLOCK, notify

pytestmark = pytest.mark.platform

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


@flow(name="release", on_failure=[on_release_failure])
def failing_release(spec: dict) -> None:
    raise ReleaseFailed(
        "canary analysis error-rate failed: 12% > 5%", app=spec["app"], namespace=spec["namespace"]
    )


@flow(name="rollback", on_completion=[on_rollback])
def rollback(app: str, namespace: str, notify_block: str = "") -> dict[str, Any]:
    return {"image": IMAGE, "summary": f"{app} rolled back from revision 3 to 2"}


def _spec(app: str) -> dict[str, Any]:
    return {"app": app, "namespace": "kyb-staging", "image": IMAGE, "strategy": {"canary": {}}}


def test_failed_release_sends_one_notification(block, receiver, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(ENV_BLOCK, block)
    app = f"n-{uuid.uuid4().hex[:8]}"
    state = failing_release(_spec(app), return_state=True)

    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), ReleaseFailed)  # outcome kept
    assert len(receiver.requests) == 1
    got = receiver.requests[0]
    assert got["headers"]["Authorization"] == f"Bearer {SECRET}"  # the block's secret is used
    message = json.loads(got["body"])
    assert (
        message["title"] == f"release of {app} in kyb-staging: failed and was rolled back "
        "automatically"
    )
    text = message["text"]
    assert f"app: {app}" in text and "namespace: kyb-staging" in text and IMAGE in text
    assert "ReleaseFailed: canary analysis error-rate failed: 12% > 5%" in text
    run_id = str(state.state_details.flow_run_id)
    assert f"/runs/flow-run/{run_id}" in text and text.count("http://") == 1
    assert SECRET not in caplog.text
    assert any("sent through block" in r.getMessage() for r in caplog.records)


def test_rollback_notifies_through_the_run_parameter(block, receiver, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    app = f"n-{uuid.uuid4().hex[:8]}"
    state = rollback(app, "kyb-production", notify_block=block, return_state=True)

    assert state.is_completed()
    assert len(receiver.requests) == 1
    message = json.loads(receiver.requests[0]["body"])
    assert message["title"] == f"rollback of {app} in kyb-production: rolled back"
    assert f"summary: {app} rolled back from revision 3 to 2" in message["text"]
    assert IMAGE in message["text"] and "reason:" not in message["text"]
    assert SECRET not in caplog.text


def test_missing_block_warns_and_keeps_the_outcome(platform, receiver, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    missing = f"custom-webhook/missing-{uuid.uuid4().hex[:8]}"
    assert notify.fn("release-failed", "t", "b", missing) is False
    monkeypatch.setenv(ENV_BLOCK, missing)
    state = failing_release(_spec("n-missing"), return_state=True)

    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), ReleaseFailed)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum(missing in w and "not sent" in w for w in warnings) == 2
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

"""The artifact sender's flush waits for a server that is away, and only then.

`_Server` stands in for the Prefect client the sender borrows from the run: its
`create_artifact` and `update_artifact` block while the server is "away", as Prefect's client
does while it retries a refused connection inside the call. The real server's outage is tested in
tests/integration/test_orchestrator_faults.py; this checks the timing rule alone, fast.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate

from flows import artifact_sender
from flows.artifact_sender import ArtifactSender


class _Server:
    def __init__(self) -> None:
        self.up = threading.Event()
        self.up.set()
        self.refuse = False
        self.held: dict[Any, Any] = {}
        self.created: list[tuple[str | None, Any]] = []  # (key, first data) of each create

    def update_artifact(self, artifact_id: Any, update: ArtifactUpdate) -> None:
        if self.refuse:
            raise httpx.ConnectError("refused")
        assert self.up.wait(30), "the test never brought the server back"
        assert artifact_id in self.held, f"{artifact_id} was never created"
        self.held[artifact_id] = update.data

    def create_artifact(self, artifact: ArtifactCreate) -> Any:
        if self.refuse:
            raise httpx.ConnectError("refused")
        assert self.up.wait(30), "the test never brought the server back"
        made = f"id-{len(self.created)}"
        self.created.append((artifact.key, artifact.data))
        self.held[made] = artifact.data
        return type("Made", (), {"id": made})()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> _Server:
    found = _Server()

    @contextlib.contextmanager
    def client(**_: Any) -> Iterator[_Server]:
        yield found

    monkeypatch.setattr(artifact_sender, "get_client", client)
    monkeypatch.setattr(artifact_sender, "FLUSH_SECONDS", 0.3)
    monkeypatch.setattr(artifact_sender, "SLOW_SECONDS", 0.1)
    monkeypatch.setattr(artifact_sender, "RETRY_SECONDS", 0.05)
    monkeypatch.setattr(artifact_sender, "AWAY_FLUSH_SECONDS", 5.0)
    return found


def _later(seconds: float, do: Any) -> None:
    threading.Timer(seconds, do).start()


def test_a_healthy_server_holds_the_newest_content_after_flush(server: _Server) -> None:
    server.held["progress"] = 0
    sender = ArtifactSender()
    for percent in (10, 50, 100):
        sender.want("progress", ArtifactUpdate(data=percent))
    assert sender.flush(artifact_sender.FLUSH_SECONDS)
    assert server.held == {"progress": 100}


def test_flush_outwaits_a_send_stuck_in_the_clients_own_retries(server: _Server) -> None:
    """The CI failure: the send hung for a minute, flush gave up at 10 s, the run ended at 0%."""
    server.held["progress"] = 0
    server.up.clear()
    sender = ArtifactSender()
    sender.want("progress", ArtifactUpdate(data=100))
    _later(1.0, server.up.set)  # back after more than the short flush timeout
    started = time.monotonic()
    assert sender.flush(artifact_sender.FLUSH_SECONDS)
    assert time.monotonic() - started >= 0.9
    assert server.held == {"progress": 100}


def test_flush_outwaits_a_refusing_server_and_sends_the_newest(server: _Server) -> None:
    server.held["progress"] = 0
    server.refuse = True
    sender = ArtifactSender()
    sender.want("progress", ArtifactUpdate(data=40))
    sender.want("progress", ArtifactUpdate(data=100))

    def back() -> None:
        server.refuse = False

    _later(0.8, back)
    assert sender.flush(artifact_sender.FLUSH_SECONDS)
    assert server.held == {"progress": 100}


def test_flush_gives_up_after_the_away_limit(server: _Server, monkeypatch) -> None:
    monkeypatch.setattr(artifact_sender, "AWAY_FLUSH_SECONDS", 0.6)
    server.held["progress"] = 0
    server.refuse = True
    sender = ArtifactSender()
    sender.want("progress", ArtifactUpdate(data=100))
    started = time.monotonic()
    assert not sender.flush(artifact_sender.FLUSH_SECONDS)
    assert 0.5 <= time.monotonic() - started < 3
    assert server.held == {"progress": 0}
    server.refuse = False  # the thread sends it once the server answers
    assert sender.flush(artifact_sender.FLUSH_SECONDS)
    assert server.held == {"progress": 100}


def test_a_client_that_cannot_start_does_not_stop_later_sends(server: _Server, monkeypatch) -> None:
    tries = []
    good = artifact_sender.get_client

    def flaky(**kw: Any) -> Any:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("The client cannot be started again after closing.")
        return good(**kw)

    monkeypatch.setattr(artifact_sender, "get_client", flaky)
    monkeypatch.setattr(threading, "excepthook", lambda _args: None)  # the first thread's end
    server.held["progress"] = 0
    sender = ArtifactSender()
    sender.want("progress", ArtifactUpdate(data=10))
    assert not sender.flush(0.3)  # its thread died: nothing sent
    sender.want("progress", ArtifactUpdate(data=100))  # a new thread
    assert sender.flush(artifact_sender.FLUSH_SECONDS)
    assert server.held == {"progress": 100}


def test_a_create_is_sent_once_as_given_and_updates_follow_it(
    server: _Server,
) -> None:
    server.up.clear()  # the create waits: the update wanted meanwhile follows it
    sender = ArtifactSender()
    sender.create("progress", ArtifactCreate(key="release-progress", type="progress", data=0))
    sender.want("progress", ArtifactUpdate(data=30))
    server.up.set()
    assert sender.flush(artifact_sender.FLUSH_SECONDS)
    sender.want("progress", ArtifactUpdate(data=100))  # an update of what was created
    assert sender.flush(artifact_sender.FLUSH_SECONDS)
    assert server.created == [("release-progress", 0)]  # as given, then brought up to date
    assert server.held == {"id-0": 100}


def test_a_create_refused_is_made_once_the_server_answers(server: _Server) -> None:
    server.refuse = True
    sender = ArtifactSender()
    sender.create("steps", ArtifactCreate(key="backup-steps", type="table", data="[]"))
    sender.want("steps", ArtifactUpdate(data='[{"step": "done"}]'))

    def back() -> None:
        server.refuse = False

    _later(0.5, back)
    assert sender.flush(artifact_sender.FLUSH_SECONDS)
    assert server.created == [("backup-steps", "[]")]
    assert server.held == {"id-0": '[{"step": "done"}]'}

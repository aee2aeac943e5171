"""A release's life as Prefect events, read back from the platform's Prefect API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventOccurredFilter, EventResourceFilter

from blocks import KubernetesCluster
from core.release.actions import Pause
from core.release.decisions import Choice, Decision
from core.release.spec import ReleaseSpec
from flows.release.flow import perform_release
from sandbox.platform import BLOCK_NAME
from tests.integration.release_helpers import V1, V2, Scripted, spec

CANARY = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}}


def _answer(choice: Choice):
    def ask(pause: Pause, spec: ReleaseSpec) -> Decision:
        return Decision(choice, "ana", f"{choice} on the dashboard")

    return ask


@flow(name="release-with-events")
def _release(s: ReleaseSpec, choice: Choice):
    return perform_release(s, KubernetesCluster.load(BLOCK_NAME), Scripted(), ask=_answer(choice))


def _events(resource: str, since: datetime, expected: dict[str, int]) -> list:
    """The events about `resource` since `since`, oldest first, once `expected` counts are in.

    The server writes events through its event pipeline, so they show a moment after the run.
    """
    where = EventFilter(
        occurred=EventOccurredFilter(since=since, until=datetime.now(UTC) + timedelta(hours=1)),
        resource=EventResourceFilter(id=[resource]),
    )
    deadline = time.monotonic() + 30
    while True:
        with get_client(sync_client=True) as client:
            page = client.read_events(where, limit=50)  # the server's maximum page
            got = list(page.events)
            while page.next_page:
                page = client.read_events_page(page.next_page)
                got += page.events
        found = sorted(got, key=lambda e: e.occurred)
        names = [e.event for e in found]
        done = all(names.count(name) >= n for name, n in expected.items())
        if done or time.monotonic() > deadline:
            return found


def test_a_release_s_steps_are_events_with_its_app_environment_and_strategy(
    environment, namespace
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)
    assert _release(spec(namespace, V1, CANARY), Choice.PROMOTE).ok  # a first deploy: no pause
    state = _release(spec(namespace, V2, CANARY), Choice.PROMOTE, return_state=True)
    assert state.result().ok
    expected = {"kyb.release.completed": 2, "kyb.release.promoted": 1}
    found = _events(f"kyb.app.{environment}.web", since, expected)
    names = [e.event for e in found]
    assert names.count("kyb.release.started") == 2
    assert names.count("kyb.release.completed") == 2
    second = names[names.index("kyb.release.started", 1) :]
    assert second[0] == "kyb.release.started" and second[-1] == "kyb.release.completed"
    assert second.index("kyb.release.paused") < second.index("kyb.release.promoted")
    assert second.count("kyb.release.step") >= 3  # the weights, the waits, the pause
    paused = next(e for e in found if e.event == "kyb.release.paused")
    labels = paused.resource
    assert (labels["kyb.app"], labels["kyb.environment"]) == ("web", environment)
    assert (labels["kyb.namespace"], labels["kyb.strategy"]) == (namespace, "canary")
    assert labels["kyb.revision"] == V2.rpartition("@")[2]
    promoted = next(e for e in found if e.event == "kyb.release.promoted")
    assert promoted.payload["decided_by"] == "ana"
    run_id = str(state.state_details.flow_run_id)
    assert any(r.id == f"prefect.flow-run.{run_id}" for r in promoted.related)


def test_an_aborted_release_ends_rolled_back(environment, namespace) -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)
    assert _release(spec(namespace, V1, CANARY), Choice.PROMOTE).ok
    assert not _release(spec(namespace, V2, CANARY), Choice.ABORT).ok
    found = _events(f"kyb.app.{environment}.web", since, {"kyb.release.rolled-back": 1})
    names = [e.event for e in found]
    assert "kyb.release.aborted" in names
    assert names[-1] == "kyb.release.rolled-back"
    ended = found[-1]
    assert ended.payload["result"] == "aborted"
    assert "not approved" in ended.payload["cause"]

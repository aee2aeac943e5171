"""The webhook receiver against the platform's real Prefect server.

which flow runs exist after good, bad, replayed and oversized requests (a stand-in `delivery` flow;
runs are only created).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

from blocks import Environment, GitRepository, block_ref
from core.delivery.branches import parse_branch_map
from deployments.webhook import create_app
from deployments.webhook_github import body_digest, sign
from deployments.webhook_runs import EVENT, PrefectRunStarter, push_trigger
from deployments.webhook_settings import WebhookSettings
from sandbox.platform import Platform

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; Prefect's httpx works the same
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

SECRET = "integration-webhook-secret"
REPOS = ("acme/kyb",)
TIME = "2026-05-01T12:00:00+02:00"


@flow(name="delivery")
def delivery(
    commit: str,
    branch: str,
    environment: Environment,
    tagged_image: str,
    repository: str,
    source: str,
    commit_time: str,
    pushed_by: str,
    git: GitRepository | None = None,
) -> None:
    """Stands in for the delivery flow, taking every parameter the receiver sends.

    its runs are created, never executed.
    """


@flow(name="delivery")
def narrow_delivery(commit: str, branch: str, repository: str = "", commit_time: str = "") -> None:
    """A stand-in taking fewer parameters (like flows/delivery.py): the rest are not sent."""


@flow(name="delivery")
def tuned_delivery(commit: str, branch: str, production_strategy: dict | None = None) -> None:
    """A stand-in taking a parameter the receiver's settings fix for every run."""


def make_deployment(trigger: bool = False, stand_in: Any = delivery) -> str:
    """A fresh deployment of a stand-in flow (no work pool.

    nothing runs); its full name. With `trigger`, it is started by the receiver's push events
    instead (push_trigger).
    """
    name = f"delivery/webhook-test-{uuid.uuid4().hex[:8]}"
    triggers = [push_trigger(name)] if trigger else None
    stand_in.to_deployment(name=name.split("/")[1], triggers=triggers).apply()
    return name


def drop_deployment(name: str) -> None:
    """Delete a test deployment, its trigger's automation and the runs created for it."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(name)
        for _ in range(20):  # the API lists at most 200 runs at a time
            runs = flow_runs(name)
            for run in runs:
                client.delete_flow_run(run.id)
            if not runs:
                break
        client.delete_resource_owned_automations(f"prefect.deployment.{deployment.id}")
        client.delete_deployment(deployment.id)


def flow_runs(name: str) -> list[Any]:
    """The flow runs of a deployment, as the Prefect API lists them."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(name)
        ids = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        return client.read_flow_runs(deployment_filter=ids)


def signed_push(branch: str = "develop", repo: str = "acme/kyb") -> tuple[bytes, dict[str, str]]:
    """A push of a new commit from `repo`, and GitHub's headers (a new delivery id, signed)."""
    body = json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "after": uuid.uuid4().hex + "0" * 8,
            "deleted": False,
            "pusher": {"name": "dev"},
            "head_commit": {"timestamp": TIME},
            "repository": {"full_name": repo, "html_url": f"https://github.com/{repo}"},
        }
    ).encode()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET, body),
    }
    return body, headers


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Serve the app with uvicorn on a free loopback port in a thread; yields its base URL."""
    # proto=IPPROTO_TCP, as uvicorn's own sockets: asyncio sets TCP_NODELAY only then (without
    # it every response waits ~40 ms for a delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded by the deadline
    try:
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="module")
def deployment(platform: Platform) -> Iterator[str]:
    name = make_deployment()
    yield name
    drop_deployment(name)


@pytest.fixture
def client(deployment: str) -> Iterator[TestClient]:
    settings = WebhookSettings(
        secret=SecretStr(SECRET), repositories=REPOS, deployment=deployment, max_body_bytes=8192
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post("/webhooks/github", content=body, headers=headers)


def test_good_push_creates_one_run_with_the_push_parameters(client, deployment) -> None:
    before = {run.id for run in flow_runs(deployment)}
    body, headers = signed_push("develop")
    answer = post(client, body, headers)
    assert answer.status_code == 202, answer.text
    [run] = [run for run in flow_runs(deployment) if run.id not in before]
    assert str(run.id) == answer.json()["flow_run_id"]
    commit = json.loads(body)["after"]
    staging = block_ref(Environment, "staging")
    assert run.parameters == {
        "commit": commit,
        "branch": "develop",
        "environment": staging,
        "tagged_image": f"127.0.0.1:5001/kyb-platform:develop-{commit[:7]}",
        "repository": "kyb-platform",
        "source": "https://github.com/acme/kyb",
        "commit_time": TIME,
        "pushed_by": "dev",
    }  # the environment as the block's reference; no git repository block: none sent
    delivery_id = headers["X-GitHub-Delivery"]
    assert run.idempotency_key == f"github-push-{body_digest(body)}"  # the signed body
    assert run.name.endswith(delivery_id)
    assert run.state.is_scheduled()


@pytest.mark.parametrize(("branch", "env"), [("develop", "staging"), ("main", "production")])
def test_branches_map_to_environments(client, deployment, branch, env) -> None:
    answer = post(client, *signed_push(branch))
    assert answer.status_code == 202
    runs = {str(run.id): run for run in flow_runs(deployment)}
    assert runs[answer.json()["flow_run_id"]].parameters["environment"] == block_ref(
        Environment, env
    )


def test_other_branches_start_nothing(client, deployment) -> None:
    before = len(flow_runs(deployment))
    answer = post(client, *signed_push("feature/x"))
    assert answer.status_code == 202
    assert "no environment for branch feature/x" in answer.json()["message"]
    assert len(flow_runs(deployment)) == before


def test_branch_rules_decide_which_repository_deploys_which_branch(deployment: str) -> None:
    # main only from acme/kyb; develop also from its fork; other branches use the global list
    rules = parse_branch_map("main=staging>production@acme/kyb,develop=staging@acme/kyb|acme/fork")
    settings = WebhookSettings(
        secret=SecretStr(SECRET),
        repositories=("acme/other",),
        branches=rules,
        deployment=deployment,
    )
    before = {run.id for run in flow_runs(deployment)}
    with TestClient(create_app(settings)) as client:
        refused = post(client, *signed_push("main", "acme/fork"))
        global_only = post(client, *signed_push("main", "acme/other"))  # main names its own
        develop = post(client, *signed_push("develop", "acme/fork"))
        main = post(client, *signed_push("main", "acme/kyb"))
    assert (refused.status_code, global_only.status_code) == (403, 403)
    assert refused.json()["message"] == "pushes from acme/fork may not deploy branch main"
    assert (develop.status_code, main.status_code) == (202, 202), (develop.text, main.text)
    created = {str(r.id): r for r in flow_runs(deployment) if r.id not in before}
    assert {run_id: run.parameters["environment"] for run_id, run in created.items()} == {
        develop.json()["flow_run_id"]: block_ref(Environment, "staging"),
        main.json()["flow_run_id"]: block_ref(Environment, "production"),
    }
    assert created[develop.json()["flow_run_id"]].parameters["source"].endswith("acme/fork")


def test_refused_requests_start_nothing(client, deployment) -> None:
    before = len(flow_runs(deployment))
    body, headers = signed_push()
    bad = {**headers, "X-Hub-Signature-256": sign("not-the-secret", body)}
    assert post(client, body, bad).status_code == 401
    missing = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    assert post(client, body, missing).status_code == 401
    huge, huge_headers = signed_push()
    huge = huge[:-1] + b', "pad": "' + b"x" * 9000 + b'"}'
    huge_headers["X-Hub-Signature-256"] = sign(SECRET, huge)
    assert post(client, huge, huge_headers).status_code == 413
    assert post(client, body, {**headers, "X-GitHub-Event": "issues"}).status_code == 422
    assert len(flow_runs(deployment)) == before
    assert post(client, body, headers).status_code == 202  # the same delivery, now intact
    assert len(flow_runs(deployment)) == before + 1


def test_replays_start_nothing_even_after_a_restart(client, deployment) -> None:
    before = len(flow_runs(deployment))
    body, headers = signed_push("main")
    first = post(client, body, headers)
    assert first.status_code == 202
    assert post(client, body, headers).status_code == 409
    assert len(flow_runs(deployment)) == before + 1
    # A new process has forgotten the id; Prefect's idempotency key still yields the same run.
    settings = WebhookSettings(secret=SecretStr(SECRET), repositories=REPOS, deployment=deployment)
    with TestClient(create_app(settings)) as restarted:
        again = post(restarted, body, headers)
        # the same signed body under a new (unsigned) delivery id is the same push
        renamed = post(restarted, body, {**headers, "X-GitHub-Delivery": str(uuid.uuid4())})
    assert again.status_code == 202
    assert again.json()["flow_run_id"] == first.json()["flow_run_id"]
    assert renamed.status_code == 409
    assert len(flow_runs(deployment)) == before + 1


def test_unreachable_prefect_is_503_and_starts_nothing(deployment) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    before = len(flow_runs(deployment))
    settings = WebhookSettings(secret=SecretStr(SECRET), repositories=REPOS, deployment=deployment)
    app = create_app(settings, PrefectRunStarter(timeout=5, api_url=dead))
    body, headers = signed_push()
    with TestClient(app) as client:
        answer = post(client, body, headers)
        assert answer.status_code == 503, answer.text
        assert headers["X-GitHub-Delivery"] not in app.state.replays
    assert len(flow_runs(deployment)) == before


def test_parameters_the_flow_lacks_are_not_sent(platform: Platform) -> None:
    deployment = make_deployment(stand_in=narrow_delivery)
    try:
        settings = WebhookSettings(
            secret=SecretStr(SECRET), repositories=REPOS, deployment=deployment
        )
        body, headers = signed_push("main")
        with TestClient(create_app(settings)) as client:
            assert post(client, body, headers).status_code == 202
        [run] = flow_runs(deployment)
        commit = json.loads(body)["after"]
        assert run.parameters == {
            "commit": commit,
            "branch": "main",
            "repository": "kyb-platform",
            "commit_time": TIME,
        }
    finally:
        drop_deployment(deployment)


def test_fixed_parameters_reach_the_run_and_unknown_ones_refuse_it(platform: Platform) -> None:
    deployment = make_deployment(stand_in=tuned_delivery)
    strategy = {"canary": {"steps": [{"setWeight": 20}]}}
    try:
        settings = WebhookSettings(
            secret=SecretStr(SECRET),
            repositories=REPOS,
            deployment=deployment,
            parameters={"production_strategy": strategy},
        )
        unknown = settings.model_copy(update={"parameters": {"no_such_parameter": 1}})
        with TestClient(create_app(unknown)) as client:
            assert post(client, *signed_push("main")).status_code == 500  # the flow lacks it
        assert flow_runs(deployment) == []
        with TestClient(create_app(settings)) as client:
            assert post(client, *signed_push("main")).status_code == 202
        [run] = flow_runs(deployment)
        assert run.parameters["production_strategy"] == strategy
    finally:
        drop_deployment(deployment)


def test_unknown_deployment_is_500(platform: Platform) -> None:
    settings = WebhookSettings(
        secret=SecretStr(SECRET), repositories=REPOS, deployment="delivery/no-such-thing"
    )
    with TestClient(create_app(settings)) as client:
        assert post(client, *signed_push()).status_code == 500


def test_real_server_path_and_the_push_event(deployment: str) -> None:
    settings = WebhookSettings(secret=SecretStr(SECRET), repositories=REPOS, deployment=deployment)
    body, headers = signed_push("main")
    with serving(create_app(settings)) as url:
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        answer = httpx.post(f"{url}/webhooks/github", content=body, headers=headers, timeout=15)
    assert answer.status_code == 202, answer.text
    assert answer.json()["flow_run_id"] in {str(run.id) for run in flow_runs(deployment)}
    labels = {"kyb.delivery-id": headers["X-GitHub-Delivery"]}
    wanted = EventFilter(
        event=EventNameFilter(name=[EVENT]), resource=EventResourceFilter(labels=labels)
    )
    deadline, events = time.monotonic() + 30, []
    while not events and time.monotonic() < deadline:  # events are stored asynchronously
        with get_client(sync_client=True) as client:
            events = client.read_events(filter=wanted, limit=10).events  # server max: 50
        time.sleep(0 if events else 0.5)
    [event] = events
    assert event.resource["kyb.commit"] == json.loads(body)["after"]
    assert event.resource["kyb.started-by"] == "receiver"


def test_a_deployment_trigger_can_start_the_run_instead(platform: Platform) -> None:
    deployment = make_deployment(trigger=True)
    try:
        settings = WebhookSettings(
            secret=SecretStr(SECRET), repositories=REPOS, deployment=deployment, start_runs=False
        )
        body, headers = signed_push("develop")
        with TestClient(create_app(settings)) as client:
            answer = post(client, body, headers)
        assert answer.status_code == 202, answer.text
        assert answer.json()["flow_run_id"] is None and answer.json()["event_id"]
        deadline, runs = time.monotonic() + 60, []
        while not runs and time.monotonic() < deadline:  # the server's triggers service acts
            runs = flow_runs(deployment)
            time.sleep(0 if runs else 1)
        [run] = runs
        assert run.parameters["commit"] == json.loads(body)["after"]
        assert run.parameters["environment"] == block_ref(Environment, "staging")
        # a replay under a new delivery id, to a restarted receiver, then a new push as a marker
        renamed = {**headers, "X-GitHub-Delivery": str(uuid.uuid4())}
        marker, marker_headers = signed_push("develop")
        with TestClient(create_app(settings)) as restarted:
            again = post(restarted, body, renamed)
            assert again.status_code == 202
            assert post(restarted, marker, marker_headers).status_code == 202
        assert again.json()["event_id"] == answer.json()["event_id"]  # the same event, again
        deadline = time.monotonic() + 60
        while len(runs) < 2 and time.monotonic() < deadline:  # the marker's run
            runs = flow_runs(deployment)
            time.sleep(0 if len(runs) >= 2 else 1)
        settle = time.monotonic() + 20  # a second run of the replay would come within seconds
        while len(runs) == 2 and time.monotonic() < settle:
            time.sleep(1)  # bounded: watching that no third run appears
            runs = flow_runs(deployment)
        commits = sorted(r.parameters["commit"] for r in runs)
        assert commits == sorted([json.loads(body)["after"], json.loads(marker)["after"]])
    finally:
        drop_deployment(deployment)

"""The webhook receiver's pure parts and HTTP answers (runs started by a fake starter)."""

from __future__ import annotations

import json
import logging
import uuid
import warnings

import pytest
from pydantic import SecretStr, ValidationError
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; Prefect's httpx works the same
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from core.delivery.branches import BRANCH_ENVIRONMENTS, BranchRule, parse_branch_map
from core.errors import ConfigError, TransientError
from deployments.webhook import create_app
from deployments.webhook_github import (
    BadPayload,
    ReplayGuard,
    body_digest,
    environment_for,
    parse_push,
    registry_repository,
    repository_allowed,
    run_parameters,
    sign,
    signature_ok,
)
from deployments.webhook_runs import (
    PARAMETERS,
    RunRequest,
    StartedRun,
    declared,
    flow_parameters,
    push_trigger,
)
from deployments.webhook_settings import WebhookSettings, load_settings

SECRET = "s3cret-for-tests"
SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
SHA2 = "2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"
REPOS = ("acme/kyb-platform",)
TIME = "2026-05-01T12:00:00+02:00"


def push_body(ref: str = "refs/heads/develop", after: str = SHA, **extra: object) -> bytes:
    repo = {"full_name": "acme/kyb-platform", "html_url": "https://github.com/acme/kyb-platform"}
    data = {
        "ref": ref,
        "after": after,
        "deleted": False,
        "repository": repo,
        "pusher": {"name": "dev"},
        "head_commit": {"timestamp": TIME},
    }
    return json.dumps({**data, **extra}).encode()


class FakeStarter:
    """Stands in for the Prefect API only in these HTTP-answer tests.

    the integration tests start real runs. `fail` makes the next start raise it.
    """

    def __init__(self) -> None:
        self.started: list[RunRequest] = []
        self.fail: Exception | None = None

    async def start(self, request: RunRequest) -> StartedRun:
        if self.fail:
            exc, self.fail = self.fail, None
            raise exc
        self.started.append(request)
        return StartedRun(flow_run_id=f"run-{len(self.started)}", event_id=None)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def starter() -> FakeStarter:
    return FakeStarter()


@pytest.fixture
def client(starter: FakeStarter) -> TestClient:
    settings = WebhookSettings(
        secret=SecretStr(SECRET), repositories=REPOS, max_body_bytes=4096, replay_window=3
    )
    return TestClient(create_app(settings, starter))


def post(
    client: TestClient,
    body: bytes,
    event: str = "push",
    delivery: str | None = None,
    signature: str | None = "good",
    **headers: str,
):
    sent = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "Content-Type": "application/json",
        **headers,
    }
    if signature == "good":
        sent["X-Hub-Signature-256"] = sign(SECRET, body)
    elif signature is not None:
        sent["X-Hub-Signature-256"] = signature
    return client.post("/webhooks/github", content=body, headers=sent)


# --- signatures -------------------------------------------------------------------------------


def test_signature_matches_githubs_documented_example() -> None:
    # GitHub's docs: secret "It's a Secret to Everybody", payload "Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign("It's a Secret to Everybody", b"Hello, World!") == expected
    assert signature_ok(SecretStr("It's a Secret to Everybody"), b"Hello, World!", expected)


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=", "sha1=abc", "sha256=" + "0" * 64, sign("other", b"{}"), "sha256=ü"],
)
def test_wrong_missing_or_malformed_signatures_fail(header: str | None) -> None:
    assert not signature_ok(SecretStr(SECRET), b"{}", header)


def test_signature_covers_every_byte() -> None:
    assert not signature_ok(SecretStr(SECRET), b"{} ", sign(SECRET, b"{}"))


# --- replay memory ----------------------------------------------------------------------------


def test_replay_guard_refuses_a_seen_id_and_forgets_the_least_recent() -> None:
    guard = ReplayGuard(2)
    assert guard.claim("a") and guard.claim("b")
    assert not guard.claim("a")  # a replay; also makes "a" the most recent
    assert guard.claim("c")  # drops "b", the least recent
    assert "b" not in guard and "a" in guard and len(guard) == 2
    guard.release("a")
    assert guard.claim("a")


def test_replay_guard_needs_room() -> None:
    with pytest.raises(ValueError):
        ReplayGuard(0)


# --- reading pushes and mapping branches ------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "after", "deleted", "environment", "reason"),
    [
        ("refs/heads/develop", SHA, False, "staging", "deploys to staging"),
        ("refs/heads/main", SHA, False, "production", "deploys to staging -> production"),
        ("refs/heads/feature/x", SHA, False, None, "no environment for branch feature/x"),
        ("refs/tags/v1.0.0", SHA, False, None, "not a branch push"),
        ("refs/heads/main", "0" * 40, True, None, "was deleted"),
    ],
)
def test_branch_map(ref: str, after: str, deleted: bool, environment: str | None, reason: str):
    push = parse_push(push_body(ref, after, deleted=deleted))
    rules = WebhookSettings(secret=SecretStr(SECRET), repositories=REPOS).branches
    assert {b: r.environments for b, r in rules.items()} == BRANCH_ENVIRONMENTS  # the delivery's
    found, why = environment_for(push, rules)
    assert found == environment
    assert reason in why


def test_parameters_carry_the_commit_tagged_image() -> None:
    push = parse_push(push_body("refs/heads/feature/Big_Thing"))
    params = run_parameters(push, "staging", "127.0.0.1:5001/kyb-platform")
    assert params == {
        "commit": SHA,
        "branch": "feature/Big_Thing",
        "environment": "staging",
        "tagged_image": "127.0.0.1:5001/kyb-platform:feature-big_thing-1a2b3c4",
        "repository": "kyb-platform",
        "source": "https://github.com/acme/kyb-platform",
        "commit_time": TIME,
        "pushed_by": "dev",
        "git_block": "",
    }
    assert set(params) == set(PARAMETERS)


@pytest.mark.parametrize(
    ("image_repository", "repository"),
    [
        ("127.0.0.1:5001/kyb-platform", "kyb-platform"),
        ("ghcr.io/acme/kyb", "acme/kyb"),
        ("localhost/kyb", "kyb"),
        ("acme/kyb", "acme/kyb"),
        ("kyb", "kyb"),
    ],
)
def test_registry_repository(image_repository: str, repository: str) -> None:
    assert registry_repository(image_repository) == repository


def test_only_declared_parameters_are_sent() -> None:
    assert declared({"properties": {"commit": {}, "branch": {}}}) == {"commit", "branch"}
    assert declared({"properties": {}}) == frozenset()  # a flow without parameters
    assert declared({}) is None and declared(None) is None  # no schema: send everything


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"after": "' + SHA.encode() + b'"}',
        push_body(after="abc"),
        push_body(ref="main"),
        b"\xff\xfe",
    ],
)
def test_malformed_pushes_are_refused(body: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_push(body)


# --- settings ---------------------------------------------------------------------------------


def test_settings_from_environment_without_a_block() -> None:
    env = {
        "KYB_WEBHOOK_SECRET": SECRET,
        "KYB_WEBHOOK_REPOSITORIES": "acme/kyb-platform, https://git.example.com/acme/x.git",
        "KYB_WEBHOOK_PORT": "9001",
        "KYB_WEBHOOK_BRANCHES": "main=staging>production, release=staging",
    }
    settings = load_settings(env)
    assert settings.port == 9001
    assert settings.branches == {
        "main": BranchRule("main", ("staging", "production")),
        "release": BranchRule("release", ("staging",)),
    }
    assert settings.deployment == "delivery/delivery"
    assert settings.repositories == ("acme/kyb-platform", "https://git.example.com/acme/x.git")
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_bad_settings_are_refused_without_echoing_the_secret() -> None:
    with pytest.raises(ConfigError):
        parse_branch_map("main")
    with pytest.raises(ValidationError):
        WebhookSettings(secret=SecretStr(""))
    with pytest.raises(ValidationError) as err:
        WebhookSettings(secret=SecretStr(SECRET), repositories=REPOS, deployment="no-slash")
    assert SECRET not in str(err.value)


def test_push_trigger_templates_every_parameter() -> None:
    trigger = push_trigger("delivery/delivery")
    assert trigger.expect == {"kyb.webhook.push"}
    plain = [p for p in PARAMETERS if p not in ("environment", "git_block")]
    assert trigger.parameters == {
        **{p: "{{ event.payload." + p + " }}" for p in plain},
        "environment": {
            "$ref": {"block_document_slug": "kyb-environment/{{ event.payload.environment }}"}
        },
    }  # no git repository block named: the worker's checkout is built
    assert push_trigger(git=True).parameters["git"] == {
        "$ref": {"block_document_slug": "kyb-git-repository/{{ event.payload.git_block }}"}
    }
    assert push_trigger(names=["commit"]).parameters == {"commit": "{{ event.payload.commit }}"}


def test_block_names_reach_the_run_as_block_references() -> None:
    params = flow_parameters({"commit": "abc", "environment": "production", "git_block": "kyb"})
    assert params == {
        "commit": "abc",
        "environment": {"$ref": {"block_document_slug": "kyb-environment/production"}},
        "git": {"$ref": {"block_document_slug": "kyb-git-repository/kyb"}},
    }
    assert "git" not in flow_parameters({"environment": "staging", "git_block": ""})


# --- HTTP answers -----------------------------------------------------------------------------


def test_good_push_starts_one_run(client: TestClient, starter: FakeStarter) -> None:
    answer = post(client, push_body(), delivery="d-1")
    assert answer.status_code == 202, answer.text
    assert answer.json()["flow_run_id"] == "run-1"
    assert answer.json()["environment"] == "staging"
    [request] = starter.started
    assert request.idempotency_key == f"github-push-{body_digest(push_body())}"
    assert request.deployment == "delivery/delivery"


@pytest.mark.parametrize(
    ("signature", "status"),
    [(None, 401), ("sha256=" + "0" * 64, 401), (sign("wrong", b"x"), 401), ("garbage", 401)],
)
def test_unverified_requests_start_nothing(client, starter, signature, status) -> None:
    answer = post(client, push_body(), signature=signature)
    assert answer.status_code == status
    assert starter.started == []
    assert "sha256" not in answer.text and SECRET not in answer.text


def test_size_is_checked_before_the_signature(client: TestClient, starter: FakeStarter) -> None:
    big = push_body(padding="x" * 5000)
    assert post(client, big).status_code == 413  # signed correctly, still too big
    assert post(client, big, signature=None).status_code == 413
    assert starter.started == []


def test_a_body_larger_than_its_content_length_claims_is_cut_off(client, starter) -> None:
    def chunks():
        yield b'{"ref": "refs/heads/develop", '
        yield b" " * 5000

    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "d-stream",
        "X-Hub-Signature-256": sign(SECRET, b"{}"),
    }
    answer = client.post("/webhooks/github", content=chunks(), headers=headers)
    assert answer.status_code == 413
    assert starter.started == []


def test_events(client: TestClient, starter: FakeStarter) -> None:
    assert post(client, b'{"zen": "hi"}', event="ping").json()["message"] == "pong"
    assert post(client, push_body(), event="issues").status_code == 422
    assert post(client, push_body(), event="").status_code == 400
    assert starter.started == []


def test_replayed_delivery_is_refused(client: TestClient, starter: FakeStarter) -> None:
    assert post(client, push_body(), delivery="d-2").status_code == 202
    assert post(client, push_body(), delivery="d-2").status_code == 409
    assert len(starter.started) == 1


def test_bad_requests_cannot_evict_an_accepted_delivery(client, starter) -> None:
    assert post(client, push_body(), delivery="d-3").status_code == 202
    assert post(client, push_body(), delivery="d-3", signature=None).status_code == 401
    assert post(client, push_body(), delivery="d-3").status_code == 409
    assert len(starter.started) == 1


def test_delivery_id_and_payload_are_checked(client: TestClient, starter: FakeStarter) -> None:
    assert post(client, push_body(), delivery="bad id!").status_code == 400
    assert post(client, b"{not json", delivery="d-4").status_code == 400
    assert post(client, push_body(), delivery="d-4").status_code == 202  # 400 did not keep it
    assert len(starter.started) == 1


@pytest.mark.parametrize("ref", ["refs/heads/feature/x", "refs/tags/v1"])
def test_ignored_refs_answer_202_and_start_nothing(client, starter, ref) -> None:
    answer = post(client, push_body(ref))
    assert answer.status_code == 202
    assert answer.json()["message"].startswith("ignored:")
    assert starter.started == []


def test_unavailable_prefect_is_503_and_the_delivery_can_come_again(client, starter) -> None:
    starter.fail = TransientError("the Prefect API is unreachable")
    assert post(client, push_body(), delivery="d-5").status_code == 503
    assert post(client, push_body(), delivery="d-5").status_code == 202
    starter.fail = ConfigError("no such deployment")
    assert post(client, push_body(after=SHA2), delivery="d-6").status_code == 500
    assert len(starter.started) == 1


def test_health_and_methods(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/webhooks/github").status_code == 405


def test_logs_name_the_delivery_never_the_secret(client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="kyb.webhook")
    body = push_body("refs/heads/main")
    post(client, body, delivery="d-7")
    post(client, body, delivery="d-8", signature=sign("wrong", body))
    text = caplog.text
    assert "delivery=d-7" in text and "branch=main" in text and "-> 202" in text
    assert "delivery=d-8" in text and "-> 401" in text
    assert SECRET not in text and "sha256=" not in text


def test_settings_name_the_repositories_that_may_deploy() -> None:
    with pytest.raises(ValidationError, match="repositories"):
        WebhookSettings(secret=SecretStr(SECRET))  # none: a reused secret would let any repo in
    with pytest.raises(ValidationError, match="owner/name or a clone URL"):
        WebhookSettings(secret=SecretStr(SECRET), repositories=("kyb-platform",))


@pytest.mark.parametrize(
    ("allowed", "ok"),
    [
        (("acme/kyb-platform",), True),
        (("ACME/KYB-Platform",), True),
        (("https://github.com/acme/kyb-platform.git",), True),
        (("git@github.com:acme/kyb-platform.git",), True),
        (("https://gitlab.com/acme/kyb-platform.git",), False),  # same name, another host
        (("acme/other", "evil/kyb-platform"), False),
    ],
)
def test_repository_allowlist(allowed: tuple[str, ...], ok: bool) -> None:
    push = parse_push(
        push_body(
            repository={
                "full_name": "acme/kyb-platform",
                "html_url": "https://github.com/acme/kyb-platform",
                "clone_url": "https://github.com/acme/kyb-platform.git",
            }
        )
    )
    assert repository_allowed(push, allowed) is ok


def test_a_signed_push_from_another_repository_starts_nothing(client, starter) -> None:
    other = {"full_name": "mallory/fork", "html_url": "https://github.com/mallory/fork"}
    answer = post(client, push_body(ref="refs/heads/main", repository=other))
    assert answer.status_code == 403 and "mallory/fork" in answer.json()["message"]
    assert starter.started == []


def test_the_same_signed_push_under_new_delivery_ids_starts_one_run(client, starter) -> None:
    body = push_body(ref="refs/heads/main")
    answers = [post(client, body, delivery=f"d-{n}").status_code for n in range(3)]
    assert answers == [202, 409, 409]
    assert len(starter.started) == 1
    assert starter.started[0].idempotency_key == f"github-push-{body_digest(body)}"


def test_a_crash_while_starting_lets_the_redelivery_in(starter) -> None:
    settings = WebhookSettings(secret=SecretStr(SECRET), repositories=REPOS)
    client = TestClient(create_app(settings, starter), raise_server_exceptions=False)
    starter.fail = RuntimeError("unexpected")
    assert post(client, push_body(), delivery="d-9").status_code == 500
    assert post(client, push_body(), delivery="d-9").status_code == 202  # GitHub's redelivery
    assert len(starter.started) == 1

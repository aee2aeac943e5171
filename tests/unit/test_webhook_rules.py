"""Branch rules of the webhook receiver: which repositories may deploy which branch.

Parsing and validation of KYB_WEBHOOK_BRANCHES / KYB_WEBHOOK_REPOSITORIES, and the receiver's
answers through the real Starlette app (runs started by the fake starter of test_webhook.py;
tests/integration/test_webhook.py starts real runs).
"""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr, ValidationError

from core.delivery.branches import BranchRule, parse_branch_map
from core.errors import ConfigError
from deployments.webhook import create_app
from deployments.webhook_settings import WebhookSettings, load_settings
from tests.unit.test_webhook import SECRET, SHA, FakeStarter, TestClient, post, push_body

PLATFORM = "acme/kyb-platform"
FORK = "acme/kyb-platform-sandbox"
FORK_URL = "https://github.com/acme/kyb-platform-sandbox.git"
# The platform team's rules: main only from the platform repository, develop from its fork too.
TEAM_RULES = f"main=staging>production@{PLATFORM},\n  develop=staging@{PLATFORM}|{FORK_URL}"


def repository(full_name: str, host: str = "github.com") -> dict[str, str]:
    """A push event's `repository` object for a repository on `host`."""
    url = f"https://{host}/{full_name}"
    return {"full_name": full_name, "html_url": url, "clone_url": f"{url}.git"}


def app_for(env: dict[str, str]) -> tuple[TestClient, FakeStarter]:
    """The receiver as `python -m deployments.webhook` builds it from these variables."""
    starter = FakeStarter()
    settings = load_settings({"KYB_WEBHOOK_SECRET": SECRET, **env})
    return TestClient(create_app(settings, starter)), starter


def push(client: TestClient, branch: str, full_name: str, host: str = "github.com"):
    return post(client, push_body(f"refs/heads/{branch}", repository=repository(full_name, host)))


# --- the branch map's syntax ------------------------------------------------------------------


def test_rules_name_their_own_repositories() -> None:
    rules = parse_branch_map(TEAM_RULES + ",release=staging")
    assert rules == {
        "main": BranchRule("main", ("staging", "production"), (PLATFORM,)),
        "develop": BranchRule("develop", ("staging",), (PLATFORM, FORK_URL)),
        "release": BranchRule("release", ("staging",)),  # the global list applies
    }


def test_an_ssh_url_may_follow_the_at_sign() -> None:
    [rule] = parse_branch_map("main=production@git@github.com:acme/kyb.git|acme/x").values()
    assert rule.repositories == ("git@github.com:acme/kyb.git", "acme/x")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("main=staging@", "main=staging@"),  # "@" and then no repository
        ("main=staging@acme/x||acme/y", "main=staging@acme/x||acme/y"),
        ("main=@acme/x", "main=@acme/x"),  # no environment
        ("=staging@acme/x", "=staging@acme/x"),  # no branch
        ("main@acme/x", "main@acme/x"),  # no "="
        ("main=staging,main=production", "branch 'main' is given twice"),
    ],
)
def test_malformed_rules_are_refused_naming_the_entry(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_branch_map(text)
    assert named in str(err.value)


# --- settings: every rule needs repositories --------------------------------------------------


def test_rules_with_their_own_repositories_need_no_global_list() -> None:
    settings = load_settings({"KYB_WEBHOOK_SECRET": SECRET, "KYB_WEBHOOK_BRANCHES": TEAM_RULES})
    assert settings.repositories == ()
    assert settings.allowed_repositories("main") == (PLATFORM,)
    assert settings.allowed_repositories("develop") == (PLATFORM, FORK_URL)
    assert settings.allowed_repositories("feature/x") == (PLATFORM, FORK_URL)  # anywhere
    assert settings.allowed_repositories(None) == (PLATFORM, FORK_URL)


def test_a_rule_without_any_repositories_is_refused_naming_its_branch() -> None:
    rules = f"main=production@{PLATFORM},develop=qa"
    with pytest.raises(ValidationError) as err:
        load_settings({"KYB_WEBHOOK_SECRET": SECRET, "KYB_WEBHOOK_BRANCHES": rules})
    message = str(err.value)
    assert "branch 'develop' has no repositories allowed to trigger it" in message
    assert "KYB_WEBHOOK_REPOSITORIES" in message and "develop=qa@acme/kyb-platform" in message
    assert "'main'" not in message and SECRET not in message
    with pytest.raises(ValidationError, match="branch 'develop' has no repositories"):
        load_settings({"KYB_WEBHOOK_SECRET": SECRET})  # the default rules, no list at all


def test_a_rule_naming_no_owner_and_name_is_refused_naming_branch_and_entry() -> None:
    env = {"KYB_WEBHOOK_SECRET": SECRET, "KYB_WEBHOOK_REPOSITORIES": PLATFORM}
    with pytest.raises(ValidationError) as err:
        load_settings({**env, "KYB_WEBHOOK_BRANCHES": "main=production@kyb-platform-sandbox"})
    assert "branch 'main': repositories ['kyb-platform-sandbox']" in str(err.value)
    assert SECRET not in str(err.value)
    with pytest.raises(ConfigError, match="main=staging@"):  # nothing is built from it
        load_settings({**env, "KYB_WEBHOOK_BRANCHES": "main=staging@"})


def test_a_rule_must_sit_under_its_own_branch() -> None:
    rules = {"main": BranchRule("develop", ("staging",), (PLATFORM,))}
    with pytest.raises(ValidationError, match="branch 'main': its rule is for branch 'develop'"):
        WebhookSettings(secret=SecretStr(SECRET), branches=rules)
    with pytest.raises(ValidationError, match="branch 'main': name the environments"):
        WebhookSettings(secret=SecretStr(SECRET), branches={"main": BranchRule("main", ())})


# --- the receiver -----------------------------------------------------------------------------


def test_a_fork_deploys_develop_but_not_main() -> None:
    client, starter = app_for({"KYB_WEBHOOK_BRANCHES": TEAM_RULES})
    develop = push(client, "develop", FORK)
    assert develop.status_code == 202, develop.text
    assert develop.json()["environment"] == "staging"
    refused = push(client, "main", FORK)
    assert refused.status_code == 403
    assert refused.json()["message"] == f"pushes from {FORK} may not deploy branch main"
    assert SECRET not in refused.text
    assert push(client, "main", PLATFORM).json()["environment"] == "production"
    assert [r.parameters["branch"] for r in starter.started] == ["develop", "main"]
    assert starter.started[0].parameters["source"] == f"https://github.com/{FORK}"


def test_a_url_rule_lets_only_that_host_in() -> None:
    client, starter = app_for({"KYB_WEBHOOK_BRANCHES": TEAM_RULES})
    answer = push(client, "develop", FORK, host="gitlab.com")  # same name, another git host
    assert answer.status_code == 403 and "branch develop" in answer.json()["message"]
    assert starter.started == []


def test_unmapped_branches_are_ignored_for_allowed_repositories_only() -> None:
    client, starter = app_for({"KYB_WEBHOOK_BRANCHES": TEAM_RULES})
    ignored = push(client, "feature/x", FORK)
    assert ignored.status_code == 202
    assert ignored.json()["message"] == "ignored: no environment for branch feature/x"
    stranger = push(client, "feature/x", "mallory/fork")
    assert stranger.status_code == 403
    assert stranger.json()["message"] == "pushes from mallory/fork may not deploy here"
    assert starter.started == []


def test_the_global_list_alone_still_decides() -> None:
    client, starter = app_for({"KYB_WEBHOOK_REPOSITORIES": PLATFORM})
    assert [push(client, b, PLATFORM).status_code for b in ("develop", "main")] == [202, 202]
    refused = [push(client, b, FORK) for b in ("develop", "main")]
    assert [a.status_code for a in refused] == [403, 403]
    assert "may not deploy branch develop" in refused[0].json()["message"]
    assert len(starter.started) == 2


def test_a_rules_own_list_replaces_the_global_one_for_that_rule() -> None:
    release = "acme/release-train"
    client, starter = app_for(
        {
            "KYB_WEBHOOK_REPOSITORIES": PLATFORM,
            "KYB_WEBHOOK_BRANCHES": f"main=staging>production@{release},develop=staging",
        }
    )
    assert push(client, "main", PLATFORM).status_code == 403  # the global list is not main's
    assert push(client, "main", release).status_code == 202
    assert push(client, "develop", PLATFORM).status_code == 202  # develop keeps the global one
    assert push(client, "develop", release).status_code == 403  # main's list stays main's
    assert [r.parameters["environment"] for r in starter.started] == ["production", "staging"]


# --- parameters every run gets ----------------------------------------------------------------


def test_fixed_parameters_join_each_run_and_cannot_override_the_push() -> None:
    strategy = {"canary": {"steps": [{"setWeight": 20}]}}
    env = {
        "KYB_WEBHOOK_REPOSITORIES": PLATFORM,
        "KYB_WEBHOOK_PARAMETERS": json.dumps({"production_strategy": strategy}),
    }
    client, starter = app_for(env)
    answer = push(client, "main", PLATFORM)
    assert answer.status_code == 202, answer.text
    [request] = starter.started
    assert request.parameters["production_strategy"] == strategy
    assert request.parameters["commit"] == SHA and request.fixed == ("production_strategy",)
    env["KYB_WEBHOOK_SECRET"] = SECRET
    with pytest.raises(ValidationError, match="come from each push"):
        load_settings({**env, "KYB_WEBHOOK_PARAMETERS": json.dumps({"commit": "0" * 40})})
    with pytest.raises(ValidationError, match="START_RUNS is false"):
        load_settings({**env, "KYB_WEBHOOK_START_RUNS": "false"})
    with pytest.raises(ConfigError, match="KYB_WEBHOOK_PARAMETERS is not JSON"):
        load_settings({**env, "KYB_WEBHOOK_PARAMETERS": "{production_strategy"})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        load_settings({**env, "KYB_WEBHOOK_PARAMETERS": "[1]"})

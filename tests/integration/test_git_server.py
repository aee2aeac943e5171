"""A real `git push` to the platform's git server reaches the receiver and starts that commit."""

from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import SecretStr

from blocks import GitRepository
from deployments.webhook import PATH, create_app
from deployments.webhook_settings import WebhookSettings
from sandbox.platform import Platform
from tasks.source import fetch_source
from tests.integration.gitrepo import git
from tests.integration.test_webhook import drop_deployment, flow_runs, make_deployment, serving

SECRET = "s3cret-for-git-tests"


def _push(folder: Path, url: str, branch: str, text: str) -> tuple[str, str]:
    """A new repository in `folder` with one commit on `branch`, pushed: (its SHA, git's output)."""
    folder.mkdir()
    git(folder, "init", "-q", "-b", branch)
    (folder / "README").write_text(text)
    git(folder, "add", ".")
    git(folder, "commit", "-qm", "first")
    return git(folder, "rev-parse", "HEAD"), git(folder, "push", url, branch)


def test_a_push_starts_a_delivery_of_exactly_the_pushed_commit(platform: Platform, tmp_path):
    name = f"kyb-test-{uuid.uuid4().hex[:8]}"
    deployment = make_deployment()
    try:
        settings = WebhookSettings(
            secret=SecretStr(SECRET),
            repositories=(f"local/{name}",),
            deployment=deployment,
            git_block="git-test",
        )
        with serving(create_app(settings)) as base:
            url = platform.git.ensure_repository(name, f"{base}{PATH}", SECRET)
            sha, pushed = _push(tmp_path / "work", url, "develop", "first\n")
        assert "webhook: HTTP 202" in pushed, pushed  # the hook's answer, shown by git push
        [run] = flow_runs(deployment)
        assert run.parameters["commit"] == sha
        assert run.parameters["branch"] == "develop"
        assert run.parameters["git_block"] == "git-test"
        # what that run will build: the pushed commit, fetched from the git server
        tree = Path(fetch_source(GitRepository(url=url), sha))
        assert (tree / "README").read_text() == "first\n"
    finally:
        drop_deployment(deployment)


def test_a_push_from_a_repository_not_allowed_starts_nothing(platform: Platform, tmp_path):
    name = f"kyb-test-{uuid.uuid4().hex[:8]}"
    deployment = make_deployment()
    try:
        settings = WebhookSettings(
            secret=SecretStr(SECRET), repositories=("local/another",), deployment=deployment
        )
        with serving(create_app(settings)) as base:
            url = platform.git.ensure_repository(name, f"{base}{PATH}", SECRET)
            _, pushed = _push(tmp_path / "work", url, "main", "x\n")
        assert "webhook: HTTP 403" in pushed, pushed
        assert flow_runs(deployment) == []
    finally:
        drop_deployment(deployment)

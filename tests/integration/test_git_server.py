"""A real `git push` to the platform's git server reaches the receiver and starts that commit."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from pydantic import SecretStr

from blocks import GitRepository
from deployments.webhook import PATH, create_app
from deployments.webhook_settings import WebhookSettings
from sandbox.platform import Platform
from tasks.source import fetch_source
from tests.integration.test_webhook import drop_deployment, flow_runs, make_deployment, serving

SECRET = "s3cret-for-git-tests"


def _git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "HOME": str(cwd),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return (done.stdout + done.stderr).strip()


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
            work = tmp_path / "work"
            work.mkdir()
            _git(work, "init", "-q", "-b", "develop")
            (work / "README").write_text("first\n")
            _git(work, "add", ".")
            _git(work, "commit", "-qm", "first")
            sha = _git(work, "rev-parse", "HEAD")
            pushed = _git(work, "push", url, "develop")
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
            work = tmp_path / "work"
            work.mkdir()
            _git(work, "init", "-q", "-b", "main")
            (work / "README").write_text("x\n")
            _git(work, "add", ".")
            _git(work, "commit", "-qm", "x")
            pushed = _git(work, "push", url, "main")
        assert "webhook: HTTP 403" in pushed, pushed
        assert flow_runs(deployment) == []
    finally:
        drop_deployment(deployment)

"""A real `git push` to the platform's git server reaches the receiver and starts that commit."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from pydantic import SecretStr

from blocks import GitRepository, block_ref
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
        assert run.parameters["git"] == block_ref(GitRepository, "git-test")
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


def test_the_demo_receiver_delivers_a_pushed_commit_with_its_fixed_parameters(
    platform: Platform,
) -> None:
    """The demo's wiring: its receiver daemon (secret from a block) and a push of the checkout."""
    from sandbox import demo_push
    from tests.integration.test_webhook import tuned_delivery

    deployment = make_deployment(stand_in=tuned_delivery)
    strategy = {"canary": {"steps": [{"setWeight": 20}]}}
    try:
        env = {**os.environ, **platform.env()}
        demo_push.start_receiver(platform, env, {"production_strategy": strategy}, deployment)
        sha, pushed = demo_push.push(platform, "test: a release", branch="main")
        assert "webhook: HTTP 202" in pushed, pushed
        run = demo_push.started_run(sha, deployment)
        assert run.parameters["production_strategy"] == strategy
        secret = json.loads((platform.settings.dir("webhook") / "secret.json").read_text())
        log = demo_push.receiver(platform.settings).logfile.read_text()
        assert secret["secret"] not in log
        environ = Path(f"/proc/{demo_push.receiver(platform.settings).pid()}/environ")
        assert secret["secret"].encode() not in environ.read_bytes()
    finally:
        demo_push.receiver(platform.settings).stop()
        drop_deployment(deployment)

"""The delivery builds exactly the commit it was given, fetched from the repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blocks import GitRepository
from core.errors import ConfigError
from flows.delivery import delivery
from tasks.source import fetch_source
from tests.integration.gitrepo import git

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kyb-platform"
PLANTED = """package main

import "testing"

func TestPlantedOnlyInTheMiddleCommit(t *testing.T) { t.Fatal("this commit's own test") }
"""


@pytest.fixture
def repository(tmp_path: Path) -> tuple[str, list[str]]:
    """A bare repository of the example service: its file:// URL and three commits' SHAs.

    The middle commit plants a failing test; the last one removes it again.
    """
    work = tmp_path / "work"
    shutil.copytree(EXAMPLE, work / "svc", ignore=shutil.ignore_patterns("build"))
    git(work, "init", "-q", "-b", "main")
    git(work, "add", ".")
    git(work, "commit", "-qm", "clean")
    (work / "svc" / "planted_test.go").write_text(PLANTED)
    git(work, "add", ".")
    git(work, "commit", "-qm", "plant a failing test")
    git(work, "rm", "-q", "svc/planted_test.go")
    git(work, "commit", "-qm", "remove it")
    shas = git(work, "rev-list", "--reverse", "HEAD").split()
    git(tmp_path, "clone", "-q", "--bare", str(work), "repo.git")
    return f"file://{tmp_path / 'repo.git'}", shas


def test_fetch_checks_out_exactly_the_commit_asked_for(platform, repository, monkeypatch) -> None:
    url, (_, middle, head) = repository
    scratch = repository_scratch(monkeypatch)
    tree = Path(fetch_source(GitRepository(url=url), middle))
    assert (tree / "svc" / "planted_test.go").read_text() == PLANTED  # the middle commit's tree
    assert git(tree, "rev-parse", "HEAD") == middle != head
    with pytest.raises(ConfigError, match="is not in"):
        fetch_source(GitRepository(url=url), "0123456789" * 4)
    with pytest.raises(ConfigError, match="full 40-character SHA"):
        fetch_source(GitRepository(url=url), middle[:7])
    assert sorted(scratch.glob("kyb-source-*")) == [tree]  # the failed fetch left nothing


def repository_scratch(monkeypatch) -> Path:
    """A fresh temporary folder for the pipeline's own temporary folders in this test."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="kyb-test-tmp-"))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def test_a_delivery_builds_the_pushed_commit_not_the_worker_checkout(
    platform, repository, monkeypatch
):
    url, (_, middle, _) = repository
    GitRepository(url=url).save("test-source", overwrite=True)
    scratch = repository_scratch(monkeypatch)
    state = delivery(
        commit=middle,
        branch="develop",
        git=GitRepository.load("test-source"),
        app_dir="svc",
        return_state=True,
    )
    assert state.is_failed()
    assert "TestPlantedOnlyInTheMiddleCommit" in state.message, state.message
    assert list(scratch.iterdir()) == []  # its checkout and build context are gone

"""How the delivery hands a git token to git, and reads git's failures."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from blocks import GitRepository
from core.errors import ConfigError, CredentialsError, TransientError
from tasks.source import _credentials, _failure

SHA = "a" * 40


def test_the_token_goes_to_git_through_a_private_file_that_is_removed_afterwards() -> None:
    repo = GitRepository(url="https://git.example.com/acme/kyb.git", token="tok-123")
    with _credentials(repo) as options:
        joined = " ".join(options)
        assert "tok-123" not in joined  # never in argv (or the environment)
        path = Path(joined.split("--file=", 1)[1])
        assert path.read_text() == "https://x-access-token:tok-123@git.example.com\n"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not path.exists()
    with _credentials(GitRepository(url="https://git.example.com/acme/kyb.git")) as options:
        assert options == []  # a public repository: no helper at all


@pytest.mark.parametrize(
    ("text", "error", "says"),
    [
        ("fatal: remote error: upload-pack: not our ref " + SHA, ConfigError, "is not in"),
        ("fatal: couldn't find remote ref " + SHA, ConfigError, "is not in"),
        ("fatal: Authentication failed for 'https://...'", CredentialsError, "token"),
        ("fatal: unable to access: Could not resolve host: git.example.com", TransientError, ""),
        ("fatal: something else", ConfigError, "failed"),
    ],
)
def test_git_failures_map_onto_the_error_tree(text: str, error: type, says: str) -> None:
    repo = GitRepository(url="https://git.example.com/acme/kyb.git")
    found = _failure(text, repo, SHA)
    assert type(found) is error and says in str(found)

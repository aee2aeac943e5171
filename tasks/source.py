"""The source the delivery builds: a repository fetched at exactly the commit it was asked for."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.git import GitRepository
from blocks.tools import find_tool
from core.ci import looks_transient
from core.errors import ConfigError, CredentialsError, TransientError
from tasks import RETRIES
from tasks.quality import run_tool

FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_MISSING = ("not our ref", "couldn't find remote ref", "no such remote ref", "unadvertised object")
_REFUSED = ("authentication failed", "could not read username", "permission denied", "403")


@contextlib.contextmanager
def _credentials(repo: GitRepository) -> Iterator[list[str]]:
    """The `git -c` options that hand the block's token to git via a 0600 file, never argv or env.

    The file is git's own credential store format; it is deleted when the fetch is done.
    """
    if repo.token is None:
        yield []
        return
    parts = urlsplit(repo.url)
    fd, path = tempfile.mkstemp(prefix="kyb-git-credentials-")
    try:
        with os.fdopen(fd, "w") as fh:  # mkstemp creates it 0600
            user = repo.username or "x-access-token"
            secret = repo.token.get_secret_value()
            fh.write(f"{parts.scheme}://{user}:{secret}@{parts.netloc}\n")
        yield ["-c", "credential.helper=", "-c", f"credential.helper=store --file={path}"]
    finally:
        os.unlink(path)


def _failure(text: str, repo: GitRepository, sha: str) -> Exception:
    lowered = text.lower()
    if any(m in lowered for m in _MISSING):
        return ConfigError(f"commit {sha} is not in {repo.url}: push it, or check the commit")
    if any(m in lowered for m in _REFUSED):
        return CredentialsError(f"{repo.url} refused the fetch: check the git block's token")
    if looks_transient(text):
        return TransientError(f"fetching {repo.url} failed: {text[-500:]}")
    return ConfigError(f"fetching {sha} from {repo.url} failed: {text[-500:]}")


@task(name="fetch-source", cache_policy=NO_CACHE, **RETRIES)
def fetch_source(repo: GitRepository, sha: str, timeout: float = 600) -> str:
    """Fetch `sha` (and nothing else) from the repository into a new, clean working directory.

    `git init`, `git fetch --depth 1 <url> <sha>`, `git checkout --detach FETCH_HEAD`, then the
    checked-out HEAD is compared with `sha`: the tree built is exactly that commit's, whatever is
    checked out where the worker runs.

    Args:
        repo: the repository block (URL and, for private repositories, a token).
        sha: the full 40-character commit SHA.
        timeout: seconds each git command may take.

    Returns:
        The working directory holding the commit's tree (the caller removes it when done; a
        failed fetch removes it itself).

    Raises:
        ConfigError: the SHA is not a full SHA, or the repository does not have it.
        CredentialsError: the repository refused the token.
        TransientError: the git host could not be reached (retried).
    """
    if not FULL_SHA.match(sha):
        raise ConfigError(f"commit {sha[:60]!r} is not a full 40-character SHA")
    git = find_tool("git", "install git (apt-get install git)")
    workdir = tempfile.mkdtemp(prefix="kyb-source-")
    try:
        quiet = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false"}  # fail, never prompt
        run_tool([git, "init", "-q", workdir], timeout=timeout)
        with _credentials(repo) as options:
            argv = [git, *options, "fetch", "-q", "--depth", "1", "--no-tags", repo.url, sha]
            fetched = run_tool(argv, workdir, timeout, env=quiet)
        if fetched.returncode != 0:
            raise _failure(f"{fetched.stderr}\n{fetched.stdout}".strip(), repo, sha)
        checkout = run_tool([git, "checkout", "-q", "--detach", "FETCH_HEAD"], workdir, timeout)
        head = run_tool([git, "rev-parse", "HEAD"], workdir, timeout).stdout.strip()
        if checkout.returncode != 0 or head != sha:
            raise ConfigError(f"{repo.url} gave {head or 'nothing'} for {sha}: not building it")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)  # a failed fetch leaves nothing behind
        raise
    get_run_logger().info("fetched %s at %s into %s", repo.url, sha, workdir)
    return str(Path(workdir))

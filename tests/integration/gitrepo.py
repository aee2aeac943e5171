"""Git for tests: run git in a folder with a fixed author, and commit a folder's files."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` (a test identity, no user config); its output, stdout then stderr."""
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


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kyb-platform"


def example_repository(root: Path, changes: dict[str, str] | None = None) -> tuple[str, str]:
    """A bare repository holding examples/kyb-platform with `changes` (path in it -> text).

    Returns its file:// URL and the SHA of its one commit (deliver it with app_dir
    examples/kyb-platform and a GitRepository block of that URL).
    """
    import shutil

    work = root / "work"
    app = work / "examples" / "kyb-platform"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("build", "bin"))
    for path, text in (changes or {}).items():
        (app / path).write_text(text)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", ".")
    git(work, "commit", "-qm", "the example, changed" if changes else "the example")
    git(root, "clone", "-q", "--bare", str(work), "repo.git")
    return f"file://{root / 'repo.git'}", git(work, "rev-parse", "HEAD")

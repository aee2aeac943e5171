"""Tool output shared by the CI stages: meaningful lines, transient faults, paths, artifact keys."""

from __future__ import annotations

import re
from collections.abc import Iterable

OUTPUT_LINES = 10  # lines of a failing test's (or build's) output kept in reports
_NOISE = re.compile(r"^\s*(=== (RUN|PAUSE|CONT|NAME)|--- (FAIL|PASS|SKIP):)")
_TRANSIENT = re.compile(
    r"(?i)\b(50[234]|429)\b|service unavailable|bad gateway|gateway time-?out|too many requests|"
    r"connection (reset|refused|timed out)|broken pipe|i/o timeout|tls handshake timeout|"
    r"unexpected eof|could not resolve host|temporary failure in name resolution|"
    r"remote end hung up unexpectedly|operation timed out"
)


def relative(path: str, root: str | None = None) -> str:
    """Path relative to root when it lies under it (and without a leading './')."""
    prefix = f"{str(root).rstrip('/')}/" if root else "\0"
    return path[len(prefix) :] if path.startswith(prefix) else path.removeprefix("./")


def looks_transient(text: str) -> bool:
    """True when a tool's error text speaks of a fault that may pass (5xx, 429, network)."""
    return bool(_TRANSIENT.search(text))


def artifact_key(kind: str, app: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes), e.g. test-report-kyb-platform."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", f"{kind}-{app}".lower())).strip("-")


def pick(lines: Iterable[str], limit: int = OUTPUT_LINES) -> list[str]:
    """The first `limit` meaningful lines of test output (runner noise such as === RUN dropped)."""
    return [s.rstrip() for s in lines if s.strip() and not _NOISE.match(s)][:limit]

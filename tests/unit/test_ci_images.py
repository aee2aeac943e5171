"""Image naming and build/push streams.

metadata-action's tag scheme (table), OCI labels, the build log of a real failing and passing
legacy-builder build, push error classification.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from core.ci import (
    BuildLog,
    GitRef,
    artifact_key,
    classify_push_error,
    image_tags,
    looks_transient,
    oci_labels,
    sanitize_tag,
)
from core.errors import ConfigError

SHA = "1a2b3c4d5e6f77889900aabbccddeeff00112233"
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # the OCI distribution tag grammar


@pytest.mark.parametrize(
    ("ref", "tags"),
    [
        (GitRef(sha=SHA, branch="main"), ["main", "main-1a2b3c4"]),
        (GitRef(sha=SHA, branch="develop"), ["develop", "develop-1a2b3c4"]),
        (
            GitRef(sha=SHA, branch="feature/ABC-12_x"),
            ["feature-abc-12_x", "feature-abc-12_x-1a2b3c4"],
        ),
        (GitRef(sha=SHA, branch="release/v1.4"), ["release-v1.4", "release-v1.4-1a2b3c4"]),
        (GitRef(sha=SHA, branch="fix/über:bug"), ["fix--ber-bug", "fix--ber-bug-1a2b3c4"]),
        (GitRef(sha=SHA, branch="-dash"), ["dash", "dash-1a2b3c4"]),
        (GitRef(sha=SHA, pr=42), ["pr-42", "pr-42-1a2b3c4"]),
        (GitRef(sha="abcdef0", pr=7), ["pr-7", "pr-7-abcdef0"]),
    ],
)
def test_tag_scheme(ref: GitRef, tags: list[str]) -> None:
    got, immutable = image_tags(ref)
    assert got == tags and immutable == tags[-1]
    assert "latest" not in got
    assert all(TAG.fullmatch(t) for t in got)


def test_long_branch_names_are_cut_to_128_with_the_sha_kept() -> None:
    tags, immutable = image_tags(GitRef(sha=SHA, branch="feature/" + "x" * 300))
    assert len(tags[0]) == 128 and len(immutable) == 128
    assert immutable.endswith("-1a2b3c4") and all(TAG.fullmatch(t) for t in tags)


@pytest.mark.parametrize("branch", ["", "///", "..."])
def test_branch_without_usable_characters_is_refused(branch: str) -> None:
    with pytest.raises(ConfigError, match="empty image tag"):
        sanitize_tag(branch)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sha": SHA},
        {"sha": SHA, "branch": "main", "pr": 1},
        {"sha": "XYZ", "branch": "main"},
        {"sha": SHA, "pr": 0},
        {"sha": "abc", "branch": "main"},
    ],
)
def test_git_ref_needs_one_event_and_a_hex_sha(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        GitRef(**kwargs)


def test_oci_labels_render_rfc3339_utc_and_drop_empty_values() -> None:
    created = datetime(2026, 3, 1, 14, 5, 9, tzinfo=timezone(timedelta(hours=2)))
    labels = oci_labels("https://github.com/acme/kyb", SHA, created, version="main")
    assert labels == {
        "org.opencontainers.image.source": "https://github.com/acme/kyb",
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.created": "2026-03-01T12:05:09Z",
        "org.opencontainers.image.version": "main",
    }
    now = oci_labels("s", SHA)["org.opencontainers.image.created"]
    assert abs(
        datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - datetime.now(UTC)
    ) < timedelta(minutes=1)


# Decoded events of real legacy-builder builds (Docker 20.10, APIClient.build(decode=True)).
FAILED_BUILD = [
    {"stream": "Step 1/4 : FROM scratch"},
    {"stream": "\n"},
    {"stream": " ---> \n"},
    {"stream": "Step 2/4 : COPY present.txt /"},
    {"stream": "\n"},
    {"stream": " ---> 7eb1b1ec2807\n"},
    {"stream": "Step 3/4 : COPY missing.txt /"},
    {"stream": "\n"},
    {
        "errorDetail": {
            "message": "COPY failed: file not found in build context or excluded by "
            ".dockerignore: stat missing.txt: file does not exist"
        },
        "error": "COPY failed: file not found in build context or excluded by .dockerignore: stat "
        "missing.txt: file does not exist",
    },
]
GOOD_BUILD = [
    {"stream": "Step 3/3 : LABEL a=b"},
    {"stream": "\n"},
    {"stream": " ---> 89a87447678a\n"},
    {"aux": {"ID": "sha256:89a87447678ad298e9c3a6a586757b2817018824bb5a4ecb2cf9a588db88917c"}},
    {"stream": "Successfully built 89a87447678a\n"},
]


def test_build_log_names_the_failing_step_and_error() -> None:
    log = BuildLog()
    for event in FAILED_BUILD:
        log.feed(event)
    assert log.error.startswith("COPY failed") and not log.image_id
    assert log.failure().startswith("Step 3/4 : COPY missing.txt / failed: COPY failed")


def test_build_log_takes_the_image_id_from_aux() -> None:
    log = BuildLog()
    for event in GOOD_BUILD:
        log.feed(event)
    assert log.image_id.startswith("sha256:89a87447678a") and not log.error


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("unauthorized: authentication required", "credentials"),
        ("no basic auth credentials", "credentials"),
        ("denied: requested access to the resource is denied", "credentials"),
        ("received unexpected HTTP status: 503 Service Unavailable", "transient"),
        ("toomanyrequests: 429 Too Many Requests", "transient"),
        ("read tcp 127.0.0.1:5001: connection reset by peer", "transient"),
        ("manifest invalid: manifest invalid", "permanent"),
    ],
)
def test_push_errors_are_classified(text: str, kind: str) -> None:
    assert classify_push_error(text) == kind


def test_transient_text_does_not_match_versions_or_ids() -> None:
    assert not looks_transient("go: example.com/m@v1.5.03 not found")
    assert looks_transient("dial tcp 1.2.3.4:443: i/o timeout")


@pytest.mark.parametrize(
    ("kind", "app", "key"),
    [
        ("test-report", "kyb-platform", "test-report-kyb-platform"),
        ("security-report", "KYB_Platform v2", "security-report-kyb-platform-v2"),
    ],
)
def test_artifact_keys_use_prefects_charset(kind: str, app: str, key: str) -> None:
    assert artifact_key(kind, app) == key
    assert re.fullmatch(r"[a-z0-9-]*", key)

"""Images: the git ref built, the tag scheme, OCI labels, the build log and push errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from core.ci.output import OUTPUT_LINES, looks_transient
from core.errors import ConfigError


class GitRef(BaseModel):
    """What triggered the build: a branch push or a pull request, at one commit."""

    sha: str = Field(pattern=r"^[0-9a-f]{7,40}$")
    branch: str | None = None
    pr: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_event(self) -> GitRef:
        if (self.branch is None) == (self.pr is None):
            raise ValueError("give branch (a push) or pr (a pull request): exactly one of them")
        return self


class ImageResult(BaseModel):
    """An image in the registry: its immutable reference, its tags, and whether it was reused."""

    reference: str  # registry/repo@sha256:...
    digest: str
    tags: list[str]
    reused: bool
    labels: dict[str, str] = Field(default_factory=dict)


class BuiltImage(BaseModel):
    """An image ready to push: built into the local daemon, or found in the registry already."""

    name: str  # registry/repository, without a tag
    repository: str  # the repository inside the registry
    tags: list[str]  # the immutable commit tag last
    image_id: str = ""  # empty when the registry already has the commit tag
    existing: str = ""  # the digest the registry already has under the commit tag (reuse)
    labels: dict[str, str] = Field(default_factory=dict)
    app: str

    @property
    def reused(self) -> bool:
        """True when nothing was built: the registry already holds this commit's image."""
        return bool(self.existing)


def sanitize_tag(text: str, limit: int = 128) -> str:
    """A valid Docker tag from a branch name: lowercase, '/' and other characters -> '-'.

    Raises:
        ConfigError: nothing valid is left.
    """
    tag = re.sub(r"[^a-z0-9_.-]", "-", text.lower()).lstrip(".-")[:limit]
    if not tag:
        raise ConfigError(f"branch {text!r} gives an empty image tag: use letters or digits")
    return tag


def image_tags(ref: GitRef) -> tuple[list[str], str]:
    """Tags as docker/metadata-action makes them: the branch (or PR) and the commit.

    Tags as metadata-action's `type=ref,event=branch`, `type=ref,event=pr` and
    `type=sha,prefix={{branch}}-` make them (short sha: 7); never `latest`.

    For a pull request metadata-action's {{branch}} is empty: we tag `pr-<n>-<sha7>` so that
    every commit still gets one immutable tag.

    Returns:
        (all tags, the immutable commit tag), e.g. (["main", "main-1a2b3c4"], "main-1a2b3c4").
    """
    short = ref.sha[:7]
    head = f"pr-{ref.pr}" if ref.pr is not None else sanitize_tag(ref.branch or "")
    commit = f"{head[: 128 - len(short) - 1]}-{short}"
    return [head, commit], commit


REVISION = "org.opencontainers.image.revision"  # the full commit SHA an image was built from


def oci_labels(
    source: str, revision: str, created: datetime | None = None, version: str = "", title: str = ""
) -> dict[str, str]:
    """org.opencontainers.image.* labels (empty ones left out); created is RFC 3339 UTC."""
    when = (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = {
        "source": source,
        "revision": revision,
        "created": when,
        "version": version,
        "title": title,
    }
    return {f"org.opencontainers.image.{k}": v for k, v in values.items() if v}


class BuildLog:
    """Follows a Docker build's decoded JSON stream: the current step, the image id, the error."""

    def __init__(self) -> None:
        self.step, self.image_id, self.error = "", "", ""
        self.tail: list[str] = []

    def feed(self, event: dict[str, Any]) -> None:
        """Take one decoded event of the build stream."""
        for line in (s.strip() for s in str(event.get("stream", "")).splitlines()):
            if line.startswith("Step "):
                self.step = line
            elif m := re.match(r"Successfully built ([0-9a-f]+)", line):
                self.image_id = self.image_id or m[1]
            self.tail = [*self.tail, line][-OUTPUT_LINES:] if line else self.tail
        self.image_id = (event.get("aux") or {}).get("ID", self.image_id)
        if "error" in event or "errorDetail" in event:
            self.error = (event.get("errorDetail") or {}).get("message") or str(event["error"])

    def failure(self) -> str:
        """The failing step, the error, and the build's last output lines."""
        out = "\n".join(line for line in self.tail if line != self.step)
        return f"{self.step or 'build'} failed: {self.error}" + (f"\n{out}" if out else "")


def classify_push_error(text: str) -> str:
    """'credentials', 'transient' or 'permanent' for the error of a docker push stream."""
    if re.search(r"(?i)unauthorized|authentication required|denied|no basic auth|\b401\b", text):
        return "credentials"
    return "transient" if looks_transient(text) else "permanent"

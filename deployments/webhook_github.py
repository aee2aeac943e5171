"""GitHub push webhooks, the pure part: signatures, replay memory, reading a push, branch rules."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import SecretStr

from core.ci.images import GitRef, image_tags
from core.delivery.branches import BranchRule

SIGNATURE_PREFIX = "sha256="
# GitHub sends a GUID; anything else is refused before it is remembered or logged.
DELIVERY_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
BRANCH_PREFIX = "refs/heads/"


class BadPayload(ValueError):
    """The (verified) body is not a push event this receiver can read."""


def sign(secret: str | bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for this body: "sha256=<hex HMAC-SHA256>"."""
    key = secret.encode() if isinstance(secret, str) else secret
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def signature_ok(secret: SecretStr, body: bytes, header: str | None) -> bool:
    """True when the header is the body's HMAC under the secret, compared in constant time."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = sign(secret.get_secret_value(), body).encode()
    return hmac.compare_digest(expected, header.encode("utf-8", "replace"))


class ReplayGuard:
    """The delivery ids this process has accepted, at most `size` of them (least recent dropped).

    It lives in this process's memory only: a restart forgets every id, each worker process of
    a multi-process server has its own, and an id older than the last `size` deliveries is
    forgotten too. A replay that slips through then still starts no second run, because the run
    is created with the delivery id as Prefect's idempotency key (the server returns the run it
    already has); the guard just refuses replays early with 409.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the replay window must hold at least one delivery id")
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, delivery: str) -> bool:
        """Remember a delivery id; False when it was already seen (a replay)."""
        with self._lock:
            if delivery in self._seen:
                self._seen.move_to_end(delivery)
                return False
            self._seen[delivery] = None
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)
            return True

    def release(self, delivery: str) -> None:
        """Forget a claimed id whose handling failed, so GitHub's redelivery is accepted."""
        with self._lock:
            self._seen.pop(delivery, None)

    def __contains__(self, delivery: object) -> bool:
        return delivery in self._seen

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True)
class Push:
    """What a push event says.

    the ref, the commit after the push and its time, the GitHub repository (owner/name and web URL),
    the pusher.
    """

    ref: str
    commit: str
    deleted: bool
    repository: str
    pushed_by: str
    source: str = ""
    commit_time: str = ""
    clone_url: str = ""

    @property
    def branch(self) -> str | None:
        """The branch pushed to, or None for a tag or other ref."""
        return self.ref.removeprefix(BRANCH_PREFIX) if self.ref.startswith(BRANCH_PREFIX) else None


def parse_push(body: bytes) -> Push:
    """Read a push event's JSON body (only after its signature was verified).

    Raises:
        BadPayload: not JSON, or a field is missing or malformed.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"the body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadPayload("the body is not a JSON object")
    ref, commit = data.get("ref"), data.get("after")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise BadPayload("'ref' is missing or not a git ref")
    if not isinstance(commit, str) or not COMMIT.match(commit):
        raise BadPayload("'after' is missing or not a 40-character commit sha")
    repo, pusher, sender, head = (
        data.get(key) if isinstance(data.get(key), dict) else {}
        for key in ("repository", "pusher", "sender", "head_commit")
    )
    return Push(
        ref=ref,
        commit=commit,
        deleted=bool(data.get("deleted")) or set(commit) == {"0"},
        repository=str(repo.get("full_name") or ""),
        pushed_by=str(pusher.get("name") or sender.get("login") or ""),
        source=str(repo.get("html_url") or ""),
        commit_time=str(head.get("timestamp") or ""),
        clone_url=str(repo.get("clone_url") or ""),
    )


def body_digest(body: bytes) -> str:
    """What replay protection keys on: the SHA-256 of the signed body (delivery ids are unsigned).

    A replay of a captured push under new X-GitHub-Delivery ids is the same body, so the same key.
    """
    return hashlib.sha256(body).hexdigest()


def repository_key(name_or_url: str) -> str:
    """A repository's comparable name: "acme/kyb-platform" from a full name or a clone/web URL.

    "" when it names no owner/name pair.
    """
    text = name_or_url.strip().lower().removesuffix("/").removesuffix(".git")
    if "://" in text:
        text = text.split("://", 1)[1].split("/", 1)[1] if "/" in text.split("://", 1)[1] else ""
    elif text.startswith("git@") and ":" in text:
        text = text.split(":", 1)[1]
    parts = [p for p in text.split("/") if p]
    return "/".join(parts[-2:]) if len(parts) >= 2 else ""


def repository_allowed(push: Push, allowed: Sequence[str]) -> bool:
    """Whether the push comes from an allowed repository (its full name or its URLs).

    A URL in the allowlist must match the push's URL host too, so a same-named repository on
    another git host is not let in.
    """
    names = {repository_key(push.repository)} - {""}
    urls = [u for u in (push.clone_url, push.source) if u]
    for entry in allowed:
        if "://" in entry or entry.startswith("git@"):
            host = _host(entry)
            if any(_host(u) == host and repository_key(u) == repository_key(entry) for u in urls):
                return True
        elif repository_key(entry) in names:
            return True
    return False


def _host(url: str) -> str:
    if url.startswith("git@"):
        return url[4:].split(":", 1)[0].lower()
    return url.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].lower()


def environment_for(push: Push, branches: Mapping[str, BranchRule]) -> tuple[str | None, str]:
    """The environment a push ends in (the last its branch's rule deploys to), or None and why."""
    if push.branch is None:
        return None, f"not a branch push ({push.ref})"
    if push.deleted:
        return None, f"branch {push.branch} was deleted"
    rule = branches.get(push.branch)
    chain = rule.environments if rule else ()
    if not chain:
        return None, f"no environment for branch {push.branch}"
    return chain[-1], f"branch {push.branch} deploys to {' -> '.join(chain)}"


def tagged_image(repository: str, push: Push) -> str:
    """The image the run will build and deploy, by its commit tag (e.g.

    repo:main-1a2b3c4), as tasks/images.py tags it; the digest is only known once the run has built
    it.
    """
    _, commit_tag = image_tags(GitRef(sha=push.commit, branch=push.branch))
    return f"{repository}:{commit_tag}"


def registry_repository(image_repository: str) -> str:
    """The repository inside the registry.

    "127.0.0.1:5001/kyb-platform" -> "kyb-platform" (Docker's rule: a first part with a dot or
    colon, or "localhost", is the registry).
    """
    first, _, rest = image_repository.partition("/")
    is_registry = rest and ("." in first or ":" in first or first == "localhost")
    return rest if is_registry else image_repository


def run_parameters(
    push: Push, environment: str, image_repository: str, git_block: str = ""
) -> dict[str, str]:
    """The delivery deployment's parameters for one push (the names flows/delivery.py uses.

    `repository` is the registry repository, `source` the GitHub repository's URL, `git_block`
    the repository block the delivery fetches the commit from, "" for the worker's checkout).
    """
    return {
        "commit": push.commit,
        "branch": push.branch or "",
        "environment": environment,
        "tagged_image": tagged_image(image_repository, push),
        "repository": registry_repository(image_repository),
        "source": push.source,
        "commit_time": push.commit_time,
        "pushed_by": push.pushed_by,
        "git_block": git_block,
    }

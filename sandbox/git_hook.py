"""The git server's post-receive hook: GitHub's push webhook, for the platform's own git server.

Stands in for GitHub's webhook delivery (the platform cannot reach GitHub): after each push it
sends the receiver the event GitHub would send, with the fields the receiver reads (ref, before,
after, deleted, repository full_name/html_url/clone_url, pusher, head_commit timestamp), signed
with HMAC-SHA256 of the body under the webhook secret, in the headers GitHub uses. The receiver
itself is the real one (deployments/webhook.py). Its settings come from a 0600 JSON file beside
the repository (never from the environment): receiver URL, secret, full name, clone URL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

ZERO = "0" * 40


def payload(config: dict[str, str], before: str, after: str, ref: str, when: str) -> bytes:
    """The push event's JSON body, as GitHub shapes it (the fields the receiver reads)."""
    name = config["full_name"]
    return json.dumps(
        {
            "ref": ref,
            "before": before,
            "after": after,
            "deleted": after == ZERO,
            "repository": {
                "full_name": name,
                "html_url": config["clone_url"].removesuffix(".git"),
                "clone_url": config["clone_url"],
            },
            "pusher": {"name": config.get("pusher", "git-server")},
            "head_commit": {"timestamp": when} if when else None,
        }
    ).encode()


def _commit_time(after: str) -> str:
    if after == ZERO:
        return ""
    done = subprocess.run(
        ["git", "log", "-1", "--format=%cI", after],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return done.stdout.strip()


def deliver(config: dict[str, str], body: bytes) -> str:
    """POST one signed push to the receiver; its answer, one line."""
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256="
        + hmac.new(config["secret"].encode(), body, hashlib.sha256).hexdigest(),
    }
    try:
        answer = httpx.post(config["receiver_url"], content=body, headers=headers, timeout=15)
    except httpx.HTTPError as exc:
        return f"webhook not delivered: {type(exc).__name__}"
    return f"webhook: HTTP {answer.status_code} {answer.text[:300]}"


def main(config_path: str) -> None:
    """Read `<old> <new> <ref>` lines from stdin (git's post-receive input); send each push."""
    config = json.loads(Path(config_path).read_text())
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 3:
            continue
        before, after, ref = parts
        body = payload(config, before, after, ref, _commit_time(after))
        print(deliver(config, body), file=sys.stderr)  # shown to the pusher as "remote: ..."

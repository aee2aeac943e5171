"""Pure readers: which app and namespace a release run is for, and what its result artifact says."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

ENV_SLUG = "kyb-environment"


def environment_name(value: Any) -> str | None:
    """The Environment block a run's `environment` parameter names (a name or a block reference).

    Returns:
        The block's name; "id:<uuid>" for a reference by id; None if no environment is named.
    """
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):
        ref = value.get("$ref")
        if isinstance(ref, Mapping):
            slug = ref.get("block_document_slug")
            if isinstance(slug, str) and "/" in slug:
                return slug.split("/", 1)[1]
            if ref.get("block_document_id"):
                return f"id:{ref['block_document_id']}"
        if isinstance(value.get("name"), str):
            return value["name"]
    return None


def _rollout(text: Any) -> tuple[str | None, str | None]:
    """(name, namespace) of a Rollout's YAML text; (None, None) if it does not read."""
    if not isinstance(text, str) or not text.strip():
        return None, None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None, None
    meta = doc.get("metadata") if isinstance(doc, Mapping) else None
    if not isinstance(meta, Mapping):
        return None, None
    return meta.get("name"), meta.get("namespace")


def target_of(
    parameters: Mapping[str, Any], namespace_of: Callable[[str], str | None]
) -> tuple[str | None, str | None]:
    """The (app, namespace) a `release` run's parameters release; None where they do not say.

    A spec says both; else a Rollout's YAML gives the app (and maybe a namespace); `app` names the
    app; a named environment gives the namespace (looked up by `namespace_of(block name)`).
    """
    app = namespace = None
    spec = parameters.get("spec")
    if isinstance(spec, Mapping):
        app, namespace = spec.get("app"), spec.get("namespace")
    if app is None or namespace is None:
        r_app, r_ns = _rollout(parameters.get("rollout"))
        app = app or parameters.get("app") or r_app
        env = environment_name(parameters.get("environment"))
        namespace = namespace or (namespace_of(env) if env else None) or r_ns
    return app or None, namespace or None


_VERDICT = re.compile(r"^- (?P<key>[^:]+): \*\*(?P<outcome>\w+)\*\*: (?P<reason>.*)$")
_DECISION = re.compile(r"^- (?P<choice>[\w-]+) by (?P<by>.+?): (?P<reason>.*)$")


def read_result(markdown: str) -> dict[str, Any]:
    """What a `release-result-<app>` artifact says: outcome, summary, verdicts and decisions."""
    lines = markdown.splitlines()
    head = lines[0] if lines else ""
    out: dict[str, Any] = {
        "outcome": "failed" if head.rstrip().endswith("FAILED") else "succeeded",
        "summary": lines[2] if len(lines) > 2 else "",
        "verdicts": [],
        "decisions": [],
    }
    section = ""
    for line in lines:
        if line.startswith("## "):
            section = line[3:].strip().lower()
        elif section == "analysis verdicts" and (m := _VERDICT.match(line)):
            out["verdicts"].append(
                {"key": m["key"], "outcome": m["outcome"], "reason": m["reason"].strip()}
            )
        elif section == "human decisions" and (m := _DECISION.match(line)):
            out["decisions"].append(
                {"choice": m["choice"], "decided_by": m["by"], "reason": m["reason"].strip()}
            )
    return out

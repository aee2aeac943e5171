"""The web provider's `jsonPath`: the small part of Kubernetes' JSONPath that Argo's docs use."""

from __future__ import annotations

import re

_JSON_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def json_path_value(document: object, path: str) -> object:
    """The value at a web provider's `jsonPath` (`{$.data.ok}`, `{$.items[0].value}`, `{$}`).

    Raises:
        ValueError: the path is not of that form (checked when the template is read, too).
    """
    value = document
    for name, index, quoted in steps(path):
        if index is not None:
            ok = isinstance(value, list) and int(index) < len(value)
            value = value[int(index)] if ok else None
        else:
            value = value.get(name or quoted) if isinstance(value, dict) else None
        if value is None:
            return None  # nothing at the path: no data
    return value


def steps(path: str) -> list[tuple[str | None, str | None, str | None]]:
    """The (name, index, quoted name) steps of `{$.a[0]['b']}`.

    Raises:
        ValueError: the path is not of that form.
    """
    text = path.strip()
    text = text[1:-1].strip() if text.startswith("{") and text.endswith("}") else text
    if not text.startswith("$"):
        raise ValueError(f"jsonPath {path!r} must start with $ (e.g. {{$.data.value}})")
    rest, out = text[1:], []
    while rest:
        step = _JSON_STEP.match(rest)
        if step is None:
            raise ValueError(f"jsonPath {path!r}: only .name, [index] and ['name'] are read")
        out.append(step.groups())
        rest = rest[step.end() :]
    return out

"""The one name validator: Kubernetes' DNS-1123 labels and subdomains, and DNS-1035 labels."""

from __future__ import annotations

import re

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def is_dns_label(text: object) -> bool:
    """True for a DNS-1123 label (a namespace): 1-63 of a-z, 0-9, '-', alphanumeric ends."""
    return isinstance(text, str) and len(text) <= 63 and bool(_LABEL.fullmatch(text))


def is_dns_1035_label(text: object) -> bool:
    """True for a DNS-1035 label (a Service name): a DNS-1123 label that starts with a letter."""
    return isinstance(text, str) and len(text) <= 63 and bool(_LABEL_1035.fullmatch(text))


def is_dns_subdomain(text: object) -> bool:
    """True for a DNS-1123 subdomain (most object names): dot-separated labels, at most 253."""
    return (
        isinstance(text, str)
        and 0 < len(text) <= 253
        and all(_LABEL.fullmatch(part) for part in text.split("."))
    )


def label_error(value: str, what: str = "DNS-1123 label") -> str:
    """Why `value` is not a `what`, and what to use instead."""
    start = "a letter" if "1035" in what else "a letter or digit"
    return (
        f"{value!r} is not a {what}: use 1-63 of a-z, 0-9, '-', starting with {start} and ending "
        "with a letter or digit"
    )


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (`^[a-z0-9-]*$`) from `parts`: lowercased, dashes for the rest."""
    raw = "-".join(p for p in parts if p).lower()
    return re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")[:100].rstrip("-")

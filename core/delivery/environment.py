"""What an environment decides, pure: explicit parameters against it, its Namespace as declared."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from core.errors import ConfigError

T = TypeVar("T")


def settle(field: str, given: T | None, environment: str, from_environment: T | None) -> T | None:
    """The value to use: the explicit one, else the environment's; a different explicit one fails.

    Args:
        field: the parameter's name, for the message.
        given: what the caller passed (None: not given).
        environment: the environment's name, for the message.
        from_environment: what the environment sets (None: it sets nothing).

    Raises:
        ConfigError: both are set and differ.
    """
    if given is not None and from_environment is not None and given != from_environment:
        raise ConfigError(
            f"{field}={given!r} conflicts with environment {environment!r}, which sets "
            f"{from_environment!r}: leave {field} empty to use the environment's, or name "
            "another environment",
            environment=environment,
        )
    return given if given is not None else from_environment


def strategy_kind(strategy: Mapping[str, Any] | None) -> str | None:
    """`rolling`, `blueGreen` or `canary` for a strategy mapping (None for None)."""
    if not strategy:
        return None
    kinds = [k for k, v in strategy.items() if v is not None]
    return kinds[0] if len(kinds) == 1 else ",".join(sorted(kinds))


def namespace_drift(want: Mapping[str, Any], live: Mapping[str, Any] | None) -> list[str]:
    """How a live Namespace differs from the one an overlay declares (labels and annotations).

    The pipeline never writes Namespaces: an administrator applies them, so what the overlay
    declares (a Pod Security level, say) must already be in force. Labels and annotations the
    overlay does not mention are left alone.

    Args:
        want: the overlay's Namespace object.
        live: the cluster's Namespace object (API JSON), or None when it does not exist.

    Returns:
        One line per difference; empty when the live Namespace has everything declared.
    """
    meta = want.get("metadata") or {}
    name = meta.get("name", "?")
    if live is None:
        return [f"namespace {name} does not exist"]
    live_meta = live.get("metadata") or {}
    lines = []
    for kind in ("labels", "annotations"):
        have = live_meta.get(kind) or {}
        for key, value in sorted((meta.get(kind) or {}).items()):
            if have.get(key) != value:
                now = repr(have[key]) if key in have else "unset"
                lines.append(
                    f"namespace {name}: {kind[:-1]} {key} is {now}, the overlay says {value!r}"
                )
    return lines

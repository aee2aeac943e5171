"""The one duration parser: Go durations (`90s`, `1h30m`) as Argo and Velero take them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from core.errors import ConfigError

#: Go's time.ParseDuration units (Argo Rollouts' `duration`, `interval`; Velero's `ttl`).
GO_UNITS: Mapping[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
#: PromQL's range units (a query's `[5m]` window): no sub-millisecond units, but days and weeks.
PROMQL_UNITS: Mapping[str, float] = {
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"


def parse_duration(
    value: str | int | float,
    what: str = "duration",
    units: Mapping[str, float] = GO_UNITS,
    bare_seconds: bool = True,
    example: str = "",
    fractions: bool = True,
) -> float:
    """Seconds in a duration such as `90s`, `1h30m` or `500ms`; never negative.

    Args:
        value: the duration; a bare number is seconds when `bare_seconds` (Argo's `duration: 30`).
        what: what the value is, for the error message (e.g. "ttl", "pause duration").
        units: the unit table: GO_UNITS, or PROMQL_UNITS for a query's window.
        bare_seconds: accept a number without a unit as seconds.
        example: what to write instead, for the error message (a default names 30s, 5m, 1h30m).
        fractions: accept `1.5h` (Go does; PromQL does not).

    Raises:
        ConfigError: not a duration in those units, or negative.
    """
    names = sorted(units, key=len, reverse=True)
    kind = "PromQL" if units is PROMQL_UNITS else "Go"
    plain = "seconds (30) or " if bare_seconds else ""
    example = example or f"{plain}30s, 5m, 1h30m"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{what} {value!r} is not a duration: use {example}")
    text = str(value).strip()
    number = _NUMBER if fractions else r"(\d+)"
    sign, body = ("-", text[1:]) if text.startswith("-") else ("", text)
    if (bare_seconds and re.fullmatch(number, body)) or body == "0":
        seconds = float(body)
    else:
        part = re.compile(number + "(" + "|".join(map(re.escape, names)) + ")")
        if not body or re.fullmatch(f"(?:{part.pattern})+", body) is None:
            hint = " (Go durations have no 'd' unit: 30d is 720h)" if "d" in text else ""
            hint = "" if "d" in units else hint
            raise ConfigError(f"{what} {value!r} is not a {kind} duration{hint}: use {example}")
        seconds = sum(float(n) * units[u] for n, u in part.findall(body))
    seconds = -seconds if sign else seconds
    if seconds < 0 or math.isnan(seconds):
        raise ConfigError(f"{what} {value!r} is negative: use 0 or more, e.g. {example}")
    return seconds


def whole_seconds(value: str | int | float, what: str = "duration") -> int:
    """A Go duration (or bare seconds) rounded up to whole seconds, as the release spec keeps them.

    Raises:
        ConfigError: not a duration, or negative.
    """
    return math.ceil(parse_duration(value, what))


def go_duration(seconds: float) -> str:
    """Seconds written as a Go duration, as a person writes it: 5400 -> "1h30m", 30 -> "30s".

    The inverse of `parse_duration` for what specs hold (what the run form shows and a dumped
    spec carries, so `parse_duration(go_duration(s)) == s`).
    """
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise ConfigError(f"{seconds!r} is not a duration: use 0 or more seconds")
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000, 6):g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{int(hours)}h" if hours else "", f"{int(minutes)}m" if minutes else ""]
    return "".join(parts) + (f"{round(secs, 6):g}s" if secs else "")

"""Keep the platform's ports out of the kernel's ephemeral range.

Most of the platform's ports (30000-39999) lie inside Linux's default ephemeral range (32768-60999),
so an outgoing connection (a watch on the apiserver, a scrape) may be given one of them as its
source port, and the service that owns it then fails to bind ("address already in use"; seen with
dr-velero's metrics port on a CI run). `net.ipv4.ip_local_reserved_ports` tells the kernel never to
hand them out; ports already in use stay as they are.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from sandbox.settings import Settings

RESERVED = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def platform_ports(settings: Settings) -> set[int]:
    """Every port of the platform's services."""
    return {getattr(settings.ports, f.name) for f in fields(settings.ports)}


def _parse(text: str) -> set[int]:
    ports: set[int] = set()
    for part in text.replace("\n", "").split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            ports.update(range(int(low), int(high) + 1))
        elif part.strip():
            ports.add(int(part))
    return ports


def reserve(settings: Settings, path: Path = RESERVED) -> str:
    """Add the platform's ports to the reserved ones; what was done, in one line.

    Without the rights to (not root, or a read-only /proc in a container), nothing changes and the
    line says so: the platform still works, with the small chance of a port clash it had before.
    """
    wanted = platform_ports(settings)
    try:
        have = _parse(path.read_text())
        if wanted <= have:
            return "ports already reserved"
        path.write_text(",".join(str(p) for p in sorted(have | wanted)))
    except (OSError, ValueError) as exc:
        why = type(exc).__name__
        return f"could not reserve the platform's ports ({why}): a client may take one"
    return f"reserved {len(wanted - have)} ports from the ephemeral range"

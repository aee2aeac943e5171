"""The platform's components: each knows how to install, start, stop and report itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sandbox.settings import Settings


@dataclass(frozen=True)
class Status:
    """What `sandbox status` shows for one component."""

    name: str
    state: str  # running | stopped | external (running, but not started by us)
    address: str
    detail: str = ""


class Component(Protocol):
    """One service of the local platform."""

    name: str

    def __init__(self, settings: Settings) -> None: ...

    def install(self) -> None:
        """Make sure its programs exist (packages installed, binaries built); idempotent."""

    def up(self) -> None:
        """Start it unless it already runs, and wait until it answers."""

    def down(self) -> None:
        """Stop it if we started it; never touch a process we did not start."""

    def status(self) -> Status:
        """Report whether it runs and where."""

    def env(self) -> dict[str, str]:
        """Environment variables a client needs to use it."""

"""The human decisions a paused release takes: the choice, who made it and why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Choice(StrEnum):
    """What a human answers at a paused release."""

    PROMOTE = "promote"  # go on past this gate (the next step, or the switch for blue-green)
    PROMOTE_FULL = "promote-full"  # canary: skip the remaining steps and promote now
    SKIP = "skip"  # mark the current canary step done without waiting or analysing
    ABORT = "abort"  # roll back


@dataclass(frozen=True)
class Decision:
    """A human's answer to a pause: the choice, who made it and why."""

    choice: Choice
    decided_by: str
    reason: str = ""

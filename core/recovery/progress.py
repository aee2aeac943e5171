"""How far a backup, a restore, a disaster recovery or a drill has come, in percent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BACKED_UP, RESTORED = "itemsBackedUp", "itemsRestored"  # the counters of status.progress


def _share(done: float, total: float) -> float:
    """`done` of `total` as a fraction in [0, 1] (0 when there is nothing to count)."""
    return max(0.0, min(1.0, done / total)) if total > 0 else 0.0


@dataclass(frozen=True)
class VeleroProgress:
    """What a Backup's or Restore's status says of its progress."""

    phase: str
    done: int  # items backed up or restored so far
    total: int  # items Velero expects to handle (0 until it has counted them)

    @property
    def share(self) -> float:
        """The fraction done: Velero's counts; 1 once Completed, whatever they say."""
        return 1.0 if self.phase == "Completed" else _share(self.done, self.total)

    def describe(self, verb: str) -> str:
        """One line, e.g. `InProgress: 12 of 40 items backed up`."""
        if not self.total:
            return f"{self.phase}: no items counted yet"
        return f"{self.phase}: {self.done} of {self.total} items {verb}"


def velero_progress(obj: Mapping[str, Any], counter: str) -> VeleroProgress:
    """Read status.phase and status.progress of a velero.io/v1 Backup or Restore.

    Args:
        obj: the object's API JSON.
        counter: `itemsBackedUp` (a Backup) or `itemsRestored` (a Restore).
    """
    status = obj.get("status") or {}
    counts = status.get("progress") or {}

    def number(key: str) -> int:
        try:
            return max(0, int(counts.get(key) or 0))
        except (TypeError, ValueError):
            return 0

    return VeleroProgress(status.get("phase") or "New", number(counter), number("totalItems"))


@dataclass(frozen=True)
class Stages:
    """A run's stages in order, each with its weight in the run's 100 percent."""

    weights: tuple[tuple[str, float], ...]

    @property
    def names(self) -> list[str]:
        """The stages' names, in order."""
        return [name for name, _ in self.weights]

    def percent(self, stage: str, within: float = 0.0) -> float:
        """Percent at `stage`, `within` (0..1) of the way through it.

        Raises:
            KeyError: no such stage.
        """
        if stage not in self.names:
            raise KeyError(f"no stage {stage!r}: one of {self.names}")
        total = sum(w for _, w in self.weights)
        before = sum(w for _, w in self.weights[: self.names.index(stage)])
        weight = dict(self.weights)[stage]
        return round(100 * _share(before + weight * max(0.0, min(1.0, within)), total), 1)


BACKUP = Stages(
    (
        ("check namespaces", 10),  # and the storage location, and a free name
        ("create backup", 5),
        ("back up items", 70),
        ("read results", 5),
        ("check stored contents", 10),
    )
)
DISASTER_RECOVERY = Stages(
    (
        ("choose backup", 5),
        ("restore plan", 5),
        ("storage location read-only", 2),
        ("restore items", 43),
        ("deployments available", 20),
        ("check objects", 8),
        ("health check", 2),
        ("storage location mode back", 2),
        ("DNS switch", 8),
        ("report", 5),
    )
)
DRILL = Stages(
    (
        ("choose backup", 5),
        ("resource list", 5),
        ("restore items", 45),
        ("deployments available", 20),
        ("check objects", 10),
        ("cleanup", 10),
        ("report", 5),
    )
)

"""Which backup to restore (`latest`, a day, or a name), and a restore's recovery times."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime

from core.errors import ConfigError
from core.recovery.backups import BACKUP_PREFIX, COMPLETED, SHOWN_NAMES, BackupInfo

_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})|(\d{4})(\d{2})(\d{2})")


def _newest_first(backups: Iterable[BackupInfo]) -> list[BackupInfo]:
    """Backups newest first: by completion, then start time, then name."""
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(
        backups,
        key=lambda b: (b.completed or floor, b.started or floor, b.name),
        reverse=True,
    )


def _parse_day(text: str) -> date | None:
    """`YYYY-MM-DD` or `YYYYMMDD` as a date; None when the text has neither shape.

    Raises:
        ConfigError: the shape of a date but not a real one (2026-13-01).
    """
    found = _DAY.fullmatch(text)
    if found is None:
        return None
    try:
        return date(*(int(part) for part in found.groups() if part))
    except ValueError:
        raise ConfigError(f"backup date {text!r} is not a real date: use YYYY-MM-DD") from None


def select_backup(
    backups: Iterable[BackupInfo],
    which: str = "latest",
    prefix: str = BACKUP_PREFIX,
    namespaces: Collection[str] = (),
    location: str = "",
) -> BackupInfo:
    """The Completed backup to restore, chosen as the seed's DR script does.

    `which` (empty means latest) is one of:

    - `latest`: the newest Completed backup (by completion time) named `<prefix>-...`;
    - a UTC day, `YYYY-MM-DD` or `YYYYMMDD`: the newest Completed `<prefix>-...` backup that
      started that day;
    - a backup's name, or what follows `<prefix>-` in it (the seed's
      `kyb-platform-backup-$BACKUP_DATE`): that backup, which must be Completed.

    An empty prefix lets `latest` and days pick any backup. With `namespaces`, only backups that
    include all of them are candidates.

    Raises:
        ConfigError: no Completed backup at all; the named backup is not Completed (its phase is
            given); or nothing matches (up to five Completed backups are named, newest first).
    """
    which = (which or "").strip() or "latest"
    everything = list(backups)
    done = _newest_first(b for b in everything if b.phase == COMPLETED and b.covers(namespaces))
    where = f" {location!r}" if location else ""
    need = f" that includes {sorted(namespaces)}" if namespaces else ""
    if not done:
        raise ConfigError(f"no completed backup{need} exists in the storage location{where}")
    available = ", ".join(b.name for b in done[:SHOWN_NAMES])

    def ours(b: BackupInfo) -> bool:
        return not prefix or b.name.startswith(f"{prefix}-")

    if which.lower() == "latest":
        found = [b for b in done if ours(b)]
        if found:
            return found[0]
        raise ConfigError(
            f"no completed backup named {prefix}-...{need} in the storage location{where}: "
            f"available: {available}"
        )
    day = _parse_day(which)
    if day is not None:
        found = [b for b in done if ours(b) and b.started and b.started.date() == day]
        if found:
            return found[0]
        raise ConfigError(
            f"no completed backup{need} started on {day.isoformat()} (UTC): restore one of "
            f"{available}, or use latest"
        )
    for name in (which, f"{prefix}-{which}" if prefix else which):
        named = [b for b in everything if b.name == name]
        if not named:
            continue
        backup = named[0]
        if backup.phase != COMPLETED:
            raise ConfigError(
                f"backup {name} is {backup.phase}, not Completed: restore one of {available}"
            )
        if not backup.covers(namespaces):
            raise ConfigError(
                f"backup {name} does not include {sorted(namespaces)}: restore one of {available}"
            )
        return backup
    also = f" (or {prefix}-{which})" if prefix else ""
    raise ConfigError(
        f"no backup named {which!r}{also}: use latest, a day (YYYY-MM-DD) or one of {available}"
    )


def recovery_times(
    started: datetime, healthy: datetime, backup_completed: datetime
) -> dict[str, float]:
    """A recovery's RTO and RPO in seconds.

    RTO: from the recovery's start to the moment the restored service is healthy.
    RPO: from the restored backup's completion to the recovery's start (the changes lost).

    Raises:
        ConfigError: a naive datetime, healthy before started, or the backup completed after
            the recovery started.
    """
    if any(t.tzinfo is None for t in (started, healthy, backup_completed)):
        raise ConfigError("recovery times must be timezone-aware (UTC) datetimes")
    if healthy < started:
        raise ConfigError(f"healthy at {healthy.isoformat()} is before the start {started}")
    if backup_completed > started:
        raise ConfigError(
            f"the backup completed at {backup_completed.isoformat()}, after the recovery "
            f"started at {started.isoformat()}"
        )
    return {
        "rto_seconds": (healthy - started).total_seconds(),
        "rpo_seconds": (started - backup_completed).total_seconds(),
    }

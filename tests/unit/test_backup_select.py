"""Reading Velero Backup objects back: their verdict, which one to restore, RTO and RPO."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import ConfigError
from core.recovery.backups import BackupInfo, backup_verdict, is_terminal
from core.recovery.selection import recovery_times, select_backup


def backup_object(
    name: str,
    phase: str | None = "Completed",
    started: str | None = "2026-11-26T02:00:03Z",
    completed: str | None = "2026-11-26T02:00:09Z",
    **status: Any,
) -> dict[str, Any]:
    """A Backup as Velero v1.18 leaves it (spec defaults filled in by the server)."""
    body: dict[str, Any] = {
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {
            "name": name,
            "namespace": "velero",
            "uid": "6f2c1f0e-7d7b-4a57-9d2c-0f0e5a1b2c3d",
            "resourceVersion": "48121",
            "generation": 6,
            "creationTimestamp": "2026-11-26T02:00:02Z",
            "labels": {
                "app.kubernetes.io/managed-by": "kyb-pipeline",
                "velero.io/storage-location": "default",
            },
        },
        "spec": {
            "csiSnapshotTimeout": "10m0s",
            "defaultVolumesToFsBackup": False,
            "excludedResources": ["pods", "replicasets"],
            "hooks": {},
            "includedNamespaces": ["kyb-production", "kyb-staging"],
            "itemOperationTimeout": "4h0m0s",
            "metadata": {},
            "snapshotMoveData": False,
            "snapshotVolumes": False,
            "storageLocation": "default",
            "ttl": "720h0m0s",
        },
        "status": {
            "expiration": "2026-12-26T02:00:03Z",
            "formatVersion": "1.1.0",
            "hookStatus": {},
            "progress": {"itemsBackedUp": 42, "totalItems": 42},
            "version": 1,
            **status,
        },
    }
    if phase is not None:
        body["status"]["phase"] = phase
    if started is not None:
        body["status"]["startTimestamp"] = started
    if completed is not None:
        body["status"]["completionTimestamp"] = completed
    return body


def nightly(day: int, phase: str = "Completed", hour: int = 2) -> BackupInfo:
    """The nightly backup of 2026-11-<day> at <hour>:00 UTC, six seconds long."""
    start = datetime(2026, 11, day, hour, 0, 3, tzinfo=UTC)
    return BackupInfo.from_object(
        backup_object(
            f"kyb-platform-backup-202611{day:02d}{hour:02d}0000",
            phase,
            start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            (start + timedelta(seconds=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    )


# --- BackupInfo ---


def test_a_completed_backup_reads_back() -> None:
    info = BackupInfo.from_object(backup_object("kyb-platform-backup-20261126020000"))
    assert info.name == "kyb-platform-backup-20261126020000"
    assert info.phase == "Completed"
    assert info.started == datetime(2026, 11, 26, 2, 0, 3, tzinfo=UTC)
    assert info.completed == datetime(2026, 11, 26, 2, 0, 9, tzinfo=UTC)
    assert info.expiration == datetime(2026, 12, 26, 2, 0, 3, tzinfo=UTC)
    assert info.duration == timedelta(seconds=6)
    assert info.storage_location == "default"
    assert info.included_namespaces == ("kyb-production", "kyb-staging")
    assert info.excluded_resources == ("pods", "replicasets")
    assert (info.items_backed_up, info.total_items) == (42, 42)
    assert (info.warnings, info.errors) == (0, 0)
    assert info.failure_reason == "" and info.validation_errors == ()


def test_a_just_created_backup_has_no_status_and_is_new() -> None:
    body = backup_object("b", phase=None, started=None, completed=None)
    del body["status"]
    info = BackupInfo.from_object(body)
    assert info.phase == "New"
    assert info.started is None and info.duration is None
    assert info.items_backed_up == 0


def test_fractional_seconds_and_offsets_parse() -> None:
    info = BackupInfo.from_object(
        backup_object("b", started="2026-11-26T03:00:03.250+01:00", completed=None)
    )
    assert info.started == datetime(2026, 11, 26, 2, 0, 3, 250000, tzinfo=UTC)
    assert info.duration is None


def test_a_garbage_time_is_an_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="b startTimestamp 'yesterday' is not an RFC 3339"):
        BackupInfo.from_object(backup_object("b", started="yesterday"))


@pytest.mark.parametrize("obj", [{}, {"metadata": {}}, {"metadata": None}, {"kind": "Backup"}])
def test_an_object_without_a_name_is_not_a_backup(obj: dict) -> None:
    with pytest.raises(ConfigError, match="not a Velero Backup object"):
        BackupInfo.from_object(obj)


# --- verdicts ---


def test_completed_is_ok_and_counts_items_and_warnings() -> None:
    info = BackupInfo.from_object(backup_object("b", warnings=3))
    assert backup_verdict(info) == (True, "backup b completed: 42 items backed up, 3 warning(s)")


def test_partially_failed_names_phase_errors_and_warnings() -> None:
    body = backup_object("b", "PartiallyFailed", errors=2, warnings=1)
    ok, reason = backup_verdict(BackupInfo.from_object(body))
    assert not ok
    assert reason == "backup b ended PartiallyFailed with 2 error(s) and 1 warning(s)"


def test_failed_names_velero_failure_reason() -> None:
    why = 'found a backup with status "InProgress" during the server starting, mark it as "Failed"'
    body = backup_object("b", "Failed", completed=None, failureReason=why)
    ok, reason = backup_verdict(BackupInfo.from_object(body))
    assert not ok
    assert reason.startswith("backup b ended Failed with 0 error(s)")
    assert f"failure reason: {why}" in reason


def test_failed_validation_names_every_validation_error() -> None:
    errors = [
        "an existing backup storage location wasn't specified at backup creation time and the "
        "default 'default' wasn't found. Please address this issue (see `velero backup-location "
        "-h` for options) and create a new backup. Error: BackupStorageLocation.velero.io "
        '"default" not found',
        'Invalid included/excluded namespace lists: invalid namespace "Kyb"',
    ]
    body = backup_object("b", "FailedValidation", None, None, validationErrors=errors)
    ok, reason = backup_verdict(BackupInfo.from_object(body))
    assert not ok
    assert "ended FailedValidation" in reason
    assert "validation errors: an existing backup storage location" in reason
    assert 'invalid namespace "Kyb"' in reason


@pytest.mark.parametrize(
    "phase",
    [
        "New",
        "Queued",
        "ReadyToStart",
        "InProgress",
        "WaitingForPluginOperations",
        "WaitingForPluginOperationsPartiallyFailed",
        "Finalizing",
        "FinalizingPartiallyFailed",
    ],
)
def test_running_phases_are_not_terminal_and_not_ok(phase: str) -> None:
    assert not is_terminal(phase)
    ok, reason = backup_verdict(BackupInfo.from_object(backup_object("b", phase)))
    assert not ok and reason == f"backup b is still {phase}: it has not finished"


@pytest.mark.parametrize(
    "phase", ["Completed", "PartiallyFailed", "Failed", "FailedValidation", "Deleting"]
)
def test_final_phases_are_terminal(phase: str) -> None:
    assert is_terminal(phase)


def test_a_deleting_backup_is_not_ok() -> None:
    assert backup_verdict(BackupInfo.from_object(backup_object("b", "Deleting"))) == (
        False,
        "backup b is being deleted",
    )


def test_an_unknown_phase_is_not_terminal() -> None:
    assert not is_terminal("SomethingNew")
    assert not is_terminal("")


# --- which backup to restore ---

WEEK = [nightly(d) for d in (22, 23, 24, 25, 26)]


def test_latest_is_the_newest_completed_by_completion_time() -> None:
    backups = [*WEEK, nightly(27, "PartiallyFailed"), nightly(27, "InProgress", hour=3)]
    assert select_backup(backups, "latest").name == "kyb-platform-backup-20261126020000"
    assert select_backup(list(reversed(backups))).name == "kyb-platform-backup-20261126020000"


def test_an_empty_choice_means_latest() -> None:
    assert select_backup(WEEK, "").name == "kyb-platform-backup-20261126020000"


def test_latest_ignores_other_backups_unless_the_prefix_is_empty() -> None:
    manual = BackupInfo.from_object(
        backup_object(
            "before-upgrade", started="2026-11-27T10:00:00Z", completed="2026-11-27T10:00:05Z"
        )
    )
    assert select_backup([*WEEK, manual], "latest").name.endswith("20261126020000")
    assert select_backup([*WEEK, manual], "latest", prefix="").name == "before-upgrade"


@pytest.mark.parametrize("day", ["2026-11-24", "20261124"])
def test_a_day_picks_the_newest_completed_backup_started_that_utc_day(day: str) -> None:
    later_that_day = nightly(24, hour=14)
    failed_later = nightly(24, "Failed", hour=20)
    chosen = select_backup([*WEEK, later_that_day, failed_later], day)
    assert chosen.name == "kyb-platform-backup-20261124140000"


def test_a_day_without_a_completed_backup_lists_what_there_is() -> None:
    with pytest.raises(ConfigError) as err:
        select_backup([*WEEK, nightly(27, "Failed")], "2026-11-27")
    message = str(err.value)
    assert "no completed backup started on 2026-11-27 (UTC)" in message
    names = [f"kyb-platform-backup-202611{d}020000" for d in (26, 25, 24, 23, 22)]
    assert ", ".join(names) in message


def test_an_impossible_date_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a real date"):
        select_backup(WEEK, "2026-13-01")


def test_an_exact_name_is_chosen() -> None:
    name = "kyb-platform-backup-20261123020000"
    assert select_backup(WEEK, name).name == name


def test_the_seeds_backup_date_suffix_is_completed_with_the_prefix() -> None:
    chosen = select_backup(WEEK, "20261123020000")
    assert chosen.name == "kyb-platform-backup-20261123020000"


def test_a_named_backup_that_is_not_completed_says_its_phase() -> None:
    backups = [*WEEK, nightly(27, "PartiallyFailed")]
    with pytest.raises(ConfigError) as err:
        select_backup(backups, "kyb-platform-backup-20261127020000")
    assert "is PartiallyFailed, not Completed" in str(err.value)
    assert "kyb-platform-backup-20261126020000" in str(err.value)


def test_an_unknown_name_lists_up_to_five_completed_backups_newest_first() -> None:
    backups = [nightly(d) for d in range(10, 20)]
    with pytest.raises(ConfigError) as err:
        select_backup(backups, "kyb-platform-backup-20250101020000")
    message = str(err.value)
    assert "no backup named 'kyb-platform-backup-20250101020000'" in message
    listed = message.split("one of ")[1]
    newest = [f"kyb-platform-backup-202611{d}020000" for d in (19, 18, 17, 16, 15)]
    assert listed.split(", ") == newest


def test_no_completed_backup_at_all_says_so() -> None:
    with pytest.raises(ConfigError, match="no completed backup exists in the storage location"):
        select_backup([nightly(26, "Failed"), nightly(27, "InProgress")], "latest")
    with pytest.raises(ConfigError, match="storage location 'default'"):
        select_backup([], "latest", location="default")


def test_only_backups_holding_the_namespaces_are_candidates() -> None:
    staging_only = BackupInfo.from_object(
        backup_object(
            "kyb-platform-backup-20261127020000",
            started="2026-11-27T02:00:03Z",
            completed="2026-11-27T02:00:09Z",
        )
    )
    staging_only = replace(staging_only, included_namespaces=("kyb-staging",))
    backups = [*WEEK, staging_only]
    assert select_backup(backups, "latest").name.endswith("20261127020000")
    wanted = ["kyb-production"]
    assert select_backup(backups, "latest", namespaces=wanted).name.endswith("20261126020000")
    with pytest.raises(ConfigError, match="does not include"):
        select_backup(backups, staging_only.name, namespaces=wanted)
    with pytest.raises(ConfigError, match="that includes \\['kyb-production'\\]"):
        select_backup([staging_only], "latest", namespaces=wanted)


# --- RTO and RPO ---


def test_rto_is_start_to_healthy_and_rpo_is_backup_to_start() -> None:
    backup_done = datetime(2026, 11, 26, 2, 0, 9, tzinfo=UTC)
    started = datetime(2026, 11, 26, 14, 0, 0, tzinfo=UTC)
    healthy = started + timedelta(minutes=7, seconds=30)
    assert recovery_times(started, healthy, backup_done) == {
        "rto_seconds": 450.0,
        "rpo_seconds": 11 * 3600 + 59 * 60 + 51.0,
    }


def test_impossible_recovery_times_are_refused() -> None:
    t = datetime(2026, 11, 26, 14, 0, 0, tzinfo=UTC)
    with pytest.raises(ConfigError, match="before the start"):
        recovery_times(t, t - timedelta(seconds=1), t - timedelta(hours=1))
    with pytest.raises(ConfigError, match="after the recovery started"):
        recovery_times(t, t + timedelta(minutes=5), t + timedelta(seconds=1))
    with pytest.raises(ConfigError, match="timezone-aware"):
        recovery_times(t.replace(tzinfo=None), t, t)

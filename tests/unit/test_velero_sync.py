"""Waiting for Velero's backup sync: a backup that comes, and one that two syncs did not bring.

The storage location's watch is a script of the lastSyncedTime values it shows, and the Backup
appears for `get` once a given sync has run; the real sync between two clusters is in
tests/integration/test_backup_dr.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.recovery.errors import VeleroTimeout
from tasks import velero
from tests.unit.test_velero_downloads import install


def script(monkeypatch: pytest.MonkeyPatch, syncs: list[str | None], arrives: str) -> list:
    """The watch shows `syncs` in turn; the backup exists once the location showed `arrives`."""
    shown: list[str | None] = []

    def get(_install: Any, plural: str, name: str) -> dict[str, Any] | None:
        assert plural == "backups"
        return {"metadata": {"name": name}} if arrives in shown else None

    def wait_for(_install: Any, plural: str, name: str, done: Any, *_: Any) -> dict[str, Any]:
        assert plural == "backupstoragelocations"
        for last in syncs:
            shown.append(last)
            if done(bsl := {"status": {"lastSyncedTime": last}}):
                return bsl
        raise VeleroTimeout("backup sync: still Available after 60s")

    monkeypatch.setattr(velero, "get", get)
    monkeypatch.setattr(velero, "wait_for", wait_for)
    return shown


def test_a_backup_the_sync_brings_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = script(monkeypatch, ["t0", "t0", "t1", "t2"], arrives="t1")
    assert velero.await_synced(install(), "b", timeout=60)
    assert shown == ["t0", "t0", "t1"]  # found at the sync that brought it


def test_two_syncs_without_it_end_the_wait_early(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = script(monkeypatch, ["t0", "t0", "t1", "t1", "t2", "t3"], arrives="never")
    assert not velero.await_synced(install(), "b", timeout=60)
    assert shown == ["t0", "t0", "t1", "t1", "t2"]  # t1 may have listed before; t2 did not


def test_one_sync_is_not_enough_and_the_timeout_still_ends_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script(monkeypatch, [None, "t1"], arrives="never")  # never synced before, then one sync only
    assert not velero.await_synced(install(), "b", timeout=60)

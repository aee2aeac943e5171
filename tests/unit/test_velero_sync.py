"""Waiting for Velero's backup sync: a backup that comes, and one that two syncs did not bring.

The cluster's answers are a script of what `get` would read (the Backup, the location's
lastSyncedTime); the real sync between two clusters is in tests/integration/test_backup_dr.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tasks import velero
from tests.unit.test_velero_downloads import install


def script(monkeypatch: pytest.MonkeyPatch, syncs: list[str | None], arrives: int | None) -> list:
    """Read i answers the location's syncs[i] (the last repeats) and the backup from `arrives`."""
    reads: list[str] = []

    def get(_install: Any, plural: str, name: str) -> dict[str, Any] | None:
        reads.append(plural)
        n = reads.count("backups") - 1
        if plural == "backups":
            return {"metadata": {"name": name}} if arrives is not None and n >= arrives else None
        return {"status": {"lastSyncedTime": syncs[min(n, len(syncs) - 1)]}}

    monkeypatch.setattr(velero, "get", get)
    return reads


def test_a_backup_the_sync_brings_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    script(monkeypatch, ["t0", "t0", "t1"], arrives=3)
    assert velero.await_synced(install(), "b", timeout=10, poll=0)


def test_two_syncs_without_it_end_the_wait_early(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = script(monkeypatch, ["t0", "t0", "t1", "t1", "t2", "t3"], arrives=None)
    assert not velero.await_synced(install(), "b", timeout=60, poll=0)
    assert reads.count("backups") == 5  # t0 (before), t1 (may have listed before), t2: done


def test_one_sync_is_not_enough_and_the_timeout_still_ends_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script(monkeypatch, [None, "t1"], arrives=None)  # never synced before, then one sync only
    assert not velero.await_synced(install(), "b", timeout=0.3, poll=0.1)

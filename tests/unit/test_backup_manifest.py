"""Backup names, the velero.io/v1 Backup object, and the file-system backup warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.errors import ConfigError
from core.names import is_dns_label
from core.recovery.backups import (
    BACKUP_PREFIX,
    DEFAULT_EXCLUDED,
    DEFAULT_NAMESPACES,
    DEFAULT_TTL,
    backup_manifest,
    backup_name,
    parse_go_duration,
)
from core.recovery.volumes import fs_backup_warning

NIGHT = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
NAME = "kyb-platform-backup-20261126020000"


# --- names ---


def test_the_name_is_the_schedule_style_utc_timestamp() -> None:
    assert backup_name(NIGHT) == NAME


def test_a_local_time_is_named_by_its_utc_moment() -> None:
    berlin = timezone(timedelta(hours=1))
    assert backup_name(datetime(2026, 11, 26, 3, 0, 0, tzinfo=berlin)) == NAME


def test_a_naive_time_is_taken_as_utc() -> None:
    assert backup_name(datetime(2026, 11, 26, 2, 0, 0)) == NAME


def test_a_custom_prefix_is_used() -> None:
    assert backup_name(NIGHT, prefix="drill") == "drill-20261126020000"


def test_a_name_longer_than_63_characters_is_refused() -> None:
    with pytest.raises(ConfigError, match="at most 48 characters"):
        backup_name(NIGHT, prefix="x" * 49)
    assert len(backup_name(NIGHT, prefix="x" * 48)) == 63


@pytest.mark.parametrize("prefix", ["KYB", "kyb_backup", "-kyb", ""])
def test_a_prefix_that_makes_no_dns_label_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="DNS-1123"):
        backup_name(NIGHT, prefix=prefix)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("kyb-production", True),
        ("a", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("Kyb", False),
        ("kyb-", False),
        ("-kyb", False),
        ("kyb.prod", False),
        ("", False),
    ],
)
def test_dns_labels(text: str, ok: bool) -> None:
    assert is_dns_label(text) is ok


# --- TTL ---


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("720h", 720 * 3600),
        ("30m", 1800),
        ("1h30m", 5400),
        ("90s", 90),
        ("1.5h", 5400),
        ("720h0m0s", 720 * 3600),
        ("500ms", 0.5),
    ],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_go_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30d", "720", "h", "720 h", "forever", "", "-1h", "1w"])
def test_garbage_ttls_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ConfigError, match="720h"):
        parse_go_duration(text)


def test_a_day_unit_gets_a_hint() -> None:
    with pytest.raises(ConfigError, match="no 'd' unit: 30d is 720h"):
        parse_go_duration("30d")


@pytest.mark.parametrize("text", ["0", "0s", "0h0m"])
def test_a_zero_ttl_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="longer than zero"):
        parse_go_duration(text)


# --- the Backup object ---


def test_the_manifest_is_the_seeds_nightly_backup() -> None:
    manifest = backup_manifest(NAME, DEFAULT_NAMESPACES, DEFAULT_EXCLUDED, DEFAULT_TTL, "default")
    assert manifest == {
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {
            "name": NAME,
            "namespace": "velero",
            "labels": {"app.kubernetes.io/managed-by": "kyb-pipeline"},
        },
        "spec": {
            "includedNamespaces": ["kyb-production", "kyb-staging"],
            "excludedResources": ["pods", "replicasets"],
            "ttl": "720h",
            "storageLocation": "default",
            "snapshotVolumes": False,
            "defaultVolumesToFsBackup": False,
        },
    }


def test_the_defaults_are_the_seeds() -> None:
    assert BACKUP_PREFIX == "kyb-platform-backup"
    assert backup_manifest(NAME) == backup_manifest(
        NAME, ["kyb-production", "kyb-staging"], ["pods", "replicasets"], "720h", "default"
    )


def test_the_velero_namespace_and_labels_are_set_and_managed_by_cannot_be_overridden() -> None:
    manifest = backup_manifest(
        NAME,
        ["kyb-staging"],
        [],
        "168h",
        "minio",
        labels={"app.kubernetes.io/part-of": "kyb", "app.kubernetes.io/managed-by": "someone"},
        namespace="backup-system",
    )
    assert manifest["metadata"]["namespace"] == "backup-system"
    assert manifest["metadata"]["labels"] == {
        "app.kubernetes.io/part-of": "kyb",
        "app.kubernetes.io/managed-by": "kyb-pipeline",
    }
    assert manifest["spec"]["excludedResources"] == []
    assert manifest["spec"]["storageLocation"] == "minio"


def test_repeated_namespaces_are_kept_once_in_order() -> None:
    manifest = backup_manifest(NAME, ["kyb-staging", "kyb-production", "kyb-staging"])
    assert manifest["spec"]["includedNamespaces"] == ["kyb-staging", "kyb-production"]


def test_a_single_namespace_string_is_one_namespace_not_its_letters() -> None:
    assert backup_manifest(NAME, "kyb-staging")["spec"]["includedNamespaces"] == ["kyb-staging"]


def test_no_namespace_is_refused() -> None:
    with pytest.raises(ConfigError, match="no namespace to back up"):
        backup_manifest(NAME, [])


@pytest.mark.parametrize("bad", ["Kyb-Production", "kyb_production", "*", "a" * 64, ""])
def test_invalid_namespaces_are_named(bad: str) -> None:
    with pytest.raises(ConfigError, match="not valid namespace names") as err:
        backup_manifest(NAME, ["kyb-staging", bad])
    assert repr(bad) in str(err.value)


def test_a_bad_ttl_stops_the_manifest() -> None:
    with pytest.raises(ConfigError, match="ttl '30 days' is not a Go duration"):
        backup_manifest(NAME, ttl="30 days")


@pytest.mark.parametrize("bad", ["", "Default", "my location", "a_b"])
def test_a_bad_storage_location_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="storage location"):
        backup_manifest(NAME, storage_location=bad)


def test_a_bad_backup_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a DNS-1123 label"):
        backup_manifest("Nightly Backup")


def test_bad_excluded_resources_are_refused() -> None:
    with pytest.raises(ConfigError, match="replica sets"):
        backup_manifest(NAME, excluded_resources=["pods", "replica sets"])
    spec = backup_manifest(NAME, excluded_resources=["replicasets.apps", "events"])["spec"]
    assert spec["excludedResources"] == ["replicasets.apps", "events"]


@pytest.mark.parametrize(
    "labels",
    [{"bad key!": "x"}, {"team": "a" * 64}, {"team": "-x"}, {"Bad_Prefix/x": "y"}],
)
def test_labels_kubernetes_would_refuse_are_refused(labels: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="label"):
        backup_manifest(NAME, labels=labels)


# --- excluded pods drop file-system volume backups ---


def pod(name: str, volumes: list[dict], annotations: dict | None = None) -> dict:
    """A pod as the API returns it (the fields the warning reads)."""
    meta = {"name": name, "namespace": "kyb-production", "annotations": annotations or {}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"volumes": volumes}}


TOKEN = {"name": "kube-api-access-x2b9", "projected": {"sources": [{"serviceAccountToken": {}}]}}
CONFIG = {"name": "config", "configMap": {"name": "kyb-api-config"}}
SECRET = {"name": "tls", "secret": {"secretName": "kyb-api-tls"}}
SCRATCH = {"name": "tmp", "emptyDir": {}}
DATA = {"name": "data", "persistentVolumeClaim": {"claimName": "kyb-postgres-data"}}
HOST = {"name": "logs", "hostPath": {"path": "/var/log"}}


def test_no_warning_when_pods_are_not_excluded() -> None:
    pods = [pod("db-0", [DATA])]
    assert fs_backup_warning(["replicasets"], pods, default_volumes_to_fs_backup=True) is None


def test_no_warning_when_pods_only_mount_kubernetes_state_and_scratch_space() -> None:
    pods = [pod("api-1", [TOKEN, CONFIG, SECRET, SCRATCH])]
    assert fs_backup_warning(["pods"], pods, default_volumes_to_fs_backup=False) is None


def test_a_claim_is_lost_when_pods_are_excluded_even_without_fs_backup_by_default() -> None:
    warning = fs_backup_warning(DEFAULT_EXCLUDED, [pod("db-0", [TOKEN, DATA])], False)
    assert warning is not None
    assert "kyb-production/db-0:data" in warning
    assert "1 volume(s)" in warning
    assert "backup.velero.io/backup-volumes" in warning


def test_an_opted_in_volume_is_lost_when_pods_are_excluded() -> None:
    annotated = pod("api-1", [SCRATCH, CONFIG], {"backup.velero.io/backup-volumes": "tmp"})
    warning = fs_backup_warning(["pods"], [annotated], False)
    assert warning is not None and "kyb-production/api-1:tmp" in warning
    assert "api-1:config" not in warning


def test_annotation_lists_are_read_with_spaces_and_empty_entries() -> None:
    annotated = pod("api-1", [SCRATCH, CONFIG], {"backup.velero.io/backup-volumes": " tmp, ,"})
    warning = fs_backup_warning(["pods"], [annotated], False)
    assert warning is not None and "1 volume(s)" in warning


def test_with_fs_backup_by_default_every_data_volume_counts_but_kube_state_does_not() -> None:
    pods = [pod("api-1", [TOKEN, CONFIG, SECRET, HOST, SCRATCH, DATA])]
    warning = fs_backup_warning(["Pods"], pods, default_volumes_to_fs_backup=True)
    assert warning is not None
    assert "2 volume(s)" in warning
    assert "api-1:tmp" in warning and "api-1:data" in warning
    for kube_state in ("kube-api-access", "config", "tls", "logs"):
        assert f"api-1:{kube_state}" not in warning
    assert warning.endswith("to keep it, stop excluding pods")


def test_with_fs_backup_by_default_opted_out_volumes_do_not_count() -> None:
    opted_out = pod("api-1", [SCRATCH], {"backup.velero.io/backup-volumes-excludes": "tmp"})
    assert fs_backup_warning(["pods"], [opted_out], True) is None


@pytest.mark.parametrize("name", ["po", "pod", "*"])
def test_other_ways_of_excluding_pods_count(name: str) -> None:
    assert fs_backup_warning([name], [pod("db-0", [DATA])], False) is not None


def test_a_long_list_is_cut_to_five_with_the_rest_counted() -> None:
    pods = [pod(f"db-{i}", [DATA]) for i in range(8)]
    warning = fs_backup_warning(["pods"], pods, False)
    assert warning is not None
    assert "8 volume(s)" in warning and "and 3 more" in warning
    assert "db-4:data" in warning and "db-5:data" not in warning

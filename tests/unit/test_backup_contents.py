"""Reading a Velero backup contents tarball, built here in Velero v1.18's layout."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from typing import Any

import pytest

from core.errors import ConfigError
from core.recovery.contents import BackedUpObject, object_key, read_backup_tarball


def tarball(files: dict[str, bytes], compress: bool = True, prefix: str = "") -> bytes:
    """A tar (gzip-compressed) of regular files, headers as Velero writes them (mode 0755)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(prefix + path)
            info.size, info.mode, info.mtime = len(content), 0o755, 1795485603
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue()) if compress else raw.getvalue()


def velero_files(objects: list[dict[str, Any]], legacy_paths: bool = True) -> dict[str, bytes]:
    """The files Velero v1.18 writes for `objects` in their preferred version.

    the format version, and each object under resources/<res>[.<group>]/ twice, without a version
    folder and in `<version>-preferredversion` (pkg/backup/item_backupper.go).
    """
    files = {"metadata/version": b"1.1.0\n"}
    for body in objects:
        group, _, version = body["apiVersion"].rpartition("/")
        resource = RESOURCES[body["kind"]]
        group_resource = f"{resource}.{group}" if group else resource
        meta = body["metadata"]
        scope = f"namespaces/{meta['namespace']}" if meta.get("namespace") else "cluster"
        data = json.dumps(body).encode()
        if legacy_paths:
            files[f"resources/{group_resource}/{scope}/{meta['name']}.json"] = data
        files[
            f"resources/{group_resource}/{version}-preferredversion/{scope}/{meta['name']}.json"
        ] = data
    return files


def velero_tarball(objects: list[dict[str, Any]]) -> bytes:
    """A backup contents tarball holding `objects`, as Velero writes it."""
    return tarball(velero_files(objects))


RESOURCES = {
    "Namespace": "namespaces",
    "Deployment": "deployments",
    "Service": "services",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "Ingress": "ingresses",
}


def k8s(
    api_version: str, kind: str, name: str, namespace: str | None = "kyb-production", **fields: Any
) -> dict[str, Any]:
    """An object as the API server returns it (server-set metadata included)."""
    meta: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{kind}-{name}",
        "resourceVersion": "4711",
        "creationTimestamp": "2026-11-20T09:00:00Z",
        "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
    }
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}


NAMESPACE = k8s("v1", "Namespace", "kyb-production", None, spec={"finalizers": ["kubernetes"]})
DEPLOYMENT = k8s("apps/v1", "Deployment", "kyb-api", spec={"replicas": 2})
SERVICE = k8s("v1", "Service", "kyb-api", spec={"clusterIP": "10.96.0.12"})
CONFIG = k8s("v1", "ConfigMap", "kyb-api-config", data={"LOG_LEVEL": "info"})
SECRET = k8s("v1", "Secret", "kyb-api-secrets", type="Opaque", data={"API_KEY": "c2VjcmV0"})
INGRESS = k8s("networking.k8s.io/v1", "Ingress", "kyb-api", spec={"rules": []})
STAGING_CONFIG = k8s("v1", "ConfigMap", "kyb-api-config", "kyb-staging", data={"A": "b"})
BACKUP = [NAMESPACE, DEPLOYMENT, SERVICE, CONFIG, SECRET, INGRESS, STAGING_CONFIG]


def test_every_object_comes_back_once_with_group_resource_and_scope() -> None:
    found = read_backup_tarball(velero_tarball(BACKUP))
    assert [(o.group, o.resource, o.namespace, o.name) for o in found] == [
        ("", "configmaps", "kyb-production", "kyb-api-config"),
        ("", "configmaps", "kyb-staging", "kyb-api-config"),
        ("", "namespaces", None, "kyb-production"),
        ("", "secrets", "kyb-production", "kyb-api-secrets"),
        ("", "services", "kyb-production", "kyb-api"),
        ("apps", "deployments", "kyb-production", "kyb-api"),
        ("networking.k8s.io", "ingresses", "kyb-production", "kyb-api"),
    ]
    assert all(o.version == "v1" for o in found)


def test_bodies_are_the_stored_json() -> None:
    found = {o.key: o for o in read_backup_tarball(velero_tarball(BACKUP))}
    deployment = found[object_key("apps", "deployments", "kyb-production", "kyb-api")]
    assert deployment.body == DEPLOYMENT
    assert deployment.kind == "Deployment"
    assert deployment.group_resource == "deployments.apps"
    assert str(deployment) == "Deployment kyb-production/kyb-api"
    namespace = found[object_key("", "namespaces", "", "kyb-production")]
    assert namespace.namespace is None and str(namespace) == "Namespace kyb-production"


def test_the_exact_paths_velero_writes_are_read() -> None:
    data = json.dumps(CONFIG).encode()
    files = {
        "metadata/version": b"1.1.0\n",
        "resources/configmaps/namespaces/kyb-production/kyb-api-config.json": data,
        "resources/configmaps/v1-preferredversion/namespaces/kyb-production/"
        "kyb-api-config.json": data,
        "resources/namespaces/cluster/kyb-production.json": json.dumps(NAMESPACE).encode(),
        "resources/namespaces/v1-preferredversion/cluster/kyb-production.json": json.dumps(
            NAMESPACE
        ).encode(),
    }
    found = read_backup_tarball(tarball(files))
    assert [o.key for o in found] == [
        ("", "configmaps", "kyb-production", "kyb-api-config"),
        ("", "namespaces", None, "kyb-production"),
    ]


def test_the_preferred_version_wins_over_other_api_versions() -> None:
    v2 = k8s("autoscaling/v2", "HorizontalPodAutoscaler", "kyb-api", spec={"maxReplicas": 5})
    v1 = {**v2, "apiVersion": "autoscaling/v1"}
    base = "resources/horizontalpodautoscalers.autoscaling"
    files = {
        "metadata/version": b"1.1.0\n",
        f"{base}/v1/namespaces/kyb-production/kyb-api.json": json.dumps(v1).encode(),
        f"{base}/namespaces/kyb-production/kyb-api.json": json.dumps(v2).encode(),
        f"{base}/v2-preferredversion/namespaces/kyb-production/kyb-api.json": json.dumps(
            v2
        ).encode(),
    }
    (hpa,) = read_backup_tarball(tarball(files))
    assert (hpa.group, hpa.resource, hpa.version) == (
        "autoscaling",
        "horizontalpodautoscalers",
        "v2",
    )
    assert hpa.body["apiVersion"] == "autoscaling/v2"


def test_the_unversioned_copy_wins_over_a_non_preferred_version() -> None:
    v2 = k8s("autoscaling/v2", "HorizontalPodAutoscaler", "kyb-api")
    v1 = {**v2, "apiVersion": "autoscaling/v1"}
    base = "resources/horizontalpodautoscalers.autoscaling"
    files = {
        f"{base}/v1/namespaces/kyb-production/kyb-api.json": json.dumps(v1).encode(),
        f"{base}/namespaces/kyb-production/kyb-api.json": json.dumps(v2).encode(),
    }
    (hpa,) = read_backup_tarball(tarball(files))
    assert hpa.body["apiVersion"] == "autoscaling/v2" and hpa.version == ""


def test_an_object_only_in_a_non_preferred_version_is_still_returned() -> None:
    v1 = k8s("autoscaling/v1", "HorizontalPodAutoscaler", "kyb-api")
    path = (
        "resources/horizontalpodautoscalers.autoscaling/v1/namespaces/kyb-production/kyb-api.json"
    )
    (hpa,) = read_backup_tarball(tarball({path: json.dumps(v1).encode()}))
    assert hpa.version == "v1" and hpa.namespace == "kyb-production"


def test_an_old_backup_without_version_folders_reads() -> None:
    current = read_backup_tarball(velero_tarball(BACKUP))
    old = {p: d for p, d in velero_files(BACKUP).items() if "preferredversion" not in p}
    found = read_backup_tarball(tarball(old))
    assert [o.key for o in found] == [o.key for o in current]
    assert [o.body for o in found] == [o.body for o in current]
    assert all(o.version == "" for o in found)


def test_a_backup_with_only_versioned_paths_reads() -> None:
    found = read_backup_tarball(tarball(velero_files(BACKUP, legacy_paths=False)))
    assert len(found) == len(BACKUP)


def test_an_empty_backup_holds_no_objects() -> None:
    assert read_backup_tarball(tarball({"metadata/version": b"1.1.0\n"})) == []


def test_dot_slash_paths_directories_and_uncompressed_tars_are_read() -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for folder in ("./", "./resources/", "./resources/configmaps/"):
            entry = tarfile.TarInfo(folder)
            entry.type = tarfile.DIRTYPE
            tar.addfile(entry)
    dirs_only = raw.getvalue()
    assert dirs_only  # a tar holding folders only is still not a backup
    with pytest.raises(ConfigError, match="not a Velero backup tarball"):
        read_backup_tarball(gzip.compress(dirs_only))
    files = velero_files([CONFIG])
    assert len(read_backup_tarball(tarball(files, prefix="./"))) == 1
    assert len(read_backup_tarball(tarball(files, compress=False))) == 1


def test_other_files_are_ignored() -> None:
    files = velero_files([CONFIG]) | {
        "resources/configmaps/README.txt": b"hello",
        "resources/configmaps/namespaces/kyb-production/notes.txt": b"x",
        "resources/configmaps/namespaces/kyb-production/deep/er/x.json": b"{}",
        "metadata/something-else": b"?",
        "velero-backup.json": b"{}",
    }
    assert [o.name for o in read_backup_tarball(tarball(files))] == ["kyb-api-config"]


def test_objects_are_typed_records() -> None:
    (obj,) = read_backup_tarball(velero_tarball([CONFIG]))
    assert isinstance(obj, BackedUpObject)
    assert obj.body["data"] == {"LOG_LEVEL": "info"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"definitely not a tarball",
        gzip.compress(b"not a tar inside gzip"),
        b"\x1f\x8b\x08\x00garbage",
    ],
)
def test_garbage_is_not_a_velero_backup_tarball(data: bytes) -> None:
    with pytest.raises(ConfigError, match="not a Velero backup tarball"):
        read_backup_tarball(data)


def test_a_truncated_tarball_is_refused() -> None:
    data = velero_tarball(BACKUP)
    with pytest.raises(ConfigError, match="not a Velero backup tarball"):
        read_backup_tarball(data[: len(data) // 2])


def test_a_tar_of_something_else_is_refused() -> None:
    with pytest.raises(ConfigError, match="neither metadata/version nor resources/"):
        read_backup_tarball(tarball({"README.md": b"# hi", "src/main.py": b"print()"}))


def test_an_item_that_is_not_json_names_its_path() -> None:
    path = "resources/configmaps/namespaces/kyb-production/broken.json"
    with pytest.raises(ConfigError, match=f"{path} is not JSON"):
        read_backup_tarball(tarball({path: b"{not json"}))
    with pytest.raises(ConfigError, match=f"{path} is not a JSON object"):
        read_backup_tarball(tarball({path: b"[1, 2]"}))


def test_an_unknown_format_version_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"format version '2\.0\.0' is not supported"):
        read_backup_tarball(tarball({"metadata/version": b"2.0.0\n"}))

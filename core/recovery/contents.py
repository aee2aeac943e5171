"""What a Velero backup holds: the objects in its contents tarball, read without extracting."""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError

ObjectKey = tuple[str, str, str | None, str]
PREFERRED_SUFFIX = "-preferredversion"
_NOT_OURS = "not a Velero backup tarball"
# Which copy of an object wins: the preferred-version folder, then the unversioned (legacy)
# path, then any other API version.
_PREFERRED, _LEGACY, _OTHER = 0, 1, 2


def object_key(group: str, resource: str, namespace: str | None, name: str) -> ObjectKey:
    """The key of one object.

    (group, resource, namespace, name); namespace None (or "") for cluster-scoped objects, group ""
    for the core group.
    """
    return (group, resource, namespace or None, name)


def split_group_resource(text: str) -> tuple[str, str]:
    """`deployments.apps` -> ("apps", "deployments"); `configmaps` -> ("", "configmaps")."""
    resource, _, group = text.partition(".")
    return group, resource


@dataclass(frozen=True)
class BackedUpObject:
    """One object in a backup, as Velero stored it.

    `version` is the API version folder it was read from (`v1`), "" for the unversioned path.
    """

    group: str
    resource: str
    namespace: str | None
    name: str
    body: dict[str, Any]
    version: str = ""

    @property
    def key(self) -> ObjectKey:
        """The object's key (see `object_key`)."""
        return object_key(self.group, self.resource, self.namespace, self.name)

    @property
    def group_resource(self) -> str:
        """`deployments.apps`, `configmaps`: how Velero and its filters name the resource."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def kind(self) -> str:
        """The object's kind (`Deployment`), or its resource when the body has none."""
        return str(self.body.get("kind") or self.resource)

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


def _place(path: str) -> tuple[str, str, str | None, str, int] | None:
    """(group-resource, version, namespace, name, rank) of an item path; None if not an item."""
    parts = path.split("/")
    if len(parts) < 4 or parts[0] != "resources" or not parts[-1].endswith(".json"):
        return None
    group_resource, rest = parts[1], parts[2:]
    version = ""
    if rest[0] not in ("namespaces", "cluster"):
        version, rest = rest[0], rest[1:]
    name = rest[-1][: -len(".json")]
    if rest[0] == "cluster" and len(rest) == 2:
        namespace = None
    elif rest[0] == "namespaces" and len(rest) == 3 and rest[1]:
        namespace = rest[1]
    else:
        return None
    if not name or not group_resource:
        return None
    if not version:
        rank = _LEGACY
    elif version.endswith(PREFERRED_SUFFIX):
        version, rank = version[: -len(PREFERRED_SUFFIX)], _PREFERRED
    else:
        rank = _OTHER
    return group_resource, version, namespace, name, rank


def _members(data: bytes) -> list[tuple[str, bytes]]:
    """(path, content) of every regular file in a tar (gzip-compressed or not)."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise ConfigError(f"{_NOT_OURS}: the data is empty")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            files = []
            for member in tar:
                if not member.isfile():
                    continue
                handle = tar.extractfile(member)
                path = member.name.removeprefix("./").lstrip("/")
                files.append((path, handle.read() if handle else b""))
            return files
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ConfigError(f"{_NOT_OURS}: {exc}") from None


def read_backup_tarball(data: bytes) -> list[BackedUpObject]:
    """The objects of a backup contents tarball (`<backup>.tar.gz`), each once.

    What a Velero backup holds: the Kubernetes objects in its contents tarball, read without
    extracting anything to disk. The layout, as Velero v1.18 writes it (pkg/archive/filesystem.go
    `GetVersionedItemFilePath`, pkg/backup/item_backupper.go
    `backupItemInternal`/`getFileForArchive`, pkg/backup/backup.go
    `writeBackupVersion`; the restore side reads it in pkg/archive/parser.go):

        metadata/version                                  the format version, "1.1.0" and a newline
        resources/<res>/namespaces/<ns>/<name>.json       namespaced object, preferred API version
        resources/<res>/cluster/<name>.json               cluster-scoped object (namespaces too)
        resources/<res>/<v>-preferredversion/namespaces/<ns>/<name>.json     the same object again
        resources/<res>/<v>-preferredversion/cluster/<name>.json
        resources/<res>/<v>/namespaces/<ns>/<name>.json   another API version of it (only with the
                                                          EnableAPIGroupVersions feature)

    `<res>` is the group-resource: `configmaps` for the core group, `deployments.apps`,
    `ingresses.networking.k8s.io` (the resource, a dot, the group). Every object in its preferred
    version is written twice, without and with the version folder; each is returned once here.

    Each object comes from its preferred-version copy when there is one, else from the
    unversioned path, else from another API version. Files elsewhere are ignored, as Velero's
    own parser ignores them. Sorted by group, resource, namespace and name.

    Raises:
        ConfigError: not a (gzip-compressed) tar; no `metadata/version` and no `resources/`; a
            format version other than 1.x; or an item file that is not a JSON object.
    """
    files = _members(data)
    paths = {path for path, _ in files}
    if "metadata/version" not in paths and not any(p.startswith("resources/") for p in paths):
        raise ConfigError(f"{_NOT_OURS}: it has neither metadata/version nor resources/")
    chosen: dict[ObjectKey, tuple[int, BackedUpObject]] = {}
    for path, content in sorted(files):
        if path == "metadata/version":
            version = content.decode("utf-8", "replace").strip()
            if not version.startswith("1."):
                raise ConfigError(
                    f"backup format version {version!r} is not supported: this reader knows "
                    "Velero's format 1.x"
                )
            continue
        place = _place(path)
        if place is None:
            continue
        group_resource, version, namespace, name, rank = place
        try:
            body = json.loads(content)
        except ValueError:
            raise ConfigError(f"{_NOT_OURS}: {path} is not JSON") from None
        if not isinstance(body, dict):
            raise ConfigError(f"{_NOT_OURS}: {path} is not a JSON object")
        group, resource = split_group_resource(group_resource)
        obj = BackedUpObject(group, resource, namespace, name, body, version)
        if obj.key not in chosen or rank < chosen[obj.key][0]:
            chosen[obj.key] = (rank, obj)
    found = [obj for _, obj in chosen.values()]
    return sorted(found, key=lambda o: (o.group, o.resource, o.namespace or "", o.name))

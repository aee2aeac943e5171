"""Which pod volumes a backup that excludes pods would silently drop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.recovery.backups import SHOWN_NAMES

FS_BACKUP_ANNOTATION = "backup.velero.io/backup-volumes"
FS_EXCLUDE_ANNOTATION = "backup.velero.io/backup-volumes-excludes"
_KUBE_STATE_SOURCES = ("hostPath", "secret", "configMap", "projected", "downwardAPI")
_POD_NAMES = {"pods", "pod", "po", "*"}


def _names(annotation: object) -> set[str]:
    """The volume names of a comma-separated annotation value."""
    return {v.strip() for v in str(annotation or "").split(",") if v.strip()}


def _fs_volumes(pod: Mapping[str, Any], default_fs: bool) -> list[str]:
    """The volumes of a pod whose data only the pod's file-system backup would save."""
    meta = pod.get("metadata") or {}
    notes = meta.get("annotations") or {}
    volumes = (pod.get("spec") or {}).get("volumes") or []
    opted_in = _names(notes.get(FS_BACKUP_ANNOTATION))
    opted_out = _names(notes.get(FS_EXCLUDE_ANNOTATION))
    found = []
    for vol in volumes:
        name = vol.get("name", "")
        if default_fs:
            if any(k in vol for k in _KUBE_STATE_SOURCES) or name in opted_out:
                continue
            if name.startswith("default-token"):
                continue
            found.append(name)
        elif name in opted_in or "persistentVolumeClaim" in vol:
            found.append(name)
    return found


def fs_backup_warning(
    excluded_resources: Iterable[str],
    pods: Iterable[Mapping[str, Any]],
    default_volumes_to_fs_backup: bool,
) -> str | None:
    """A warning when excluding pods drops volume data the backup would otherwise hold.

    Velero backs up a volume's files through the pod that mounts it (file-system backup,
    kopia): with pods excluded, no pod volume is backed up. The warning names the pod volumes
    whose data is lost that way (None when there are none, or pods are not excluded):

    - with `default_volumes_to_fs_backup`, every volume Velero would back up by default: all
      but hostPath, secret, configMap, projected and downwardAPI volumes (that data is in the
      Kubernetes objects, or not reachable), volumes named in the pod's
      `backup.velero.io/backup-volumes-excludes` annotation, and `default-token-*` volumes
      (emptyDir volumes count: Velero backs them up);
    - without it, the volumes the pod opts in through `backup.velero.io/backup-volumes`, and
      every persistentVolumeClaim volume: this pipeline's backups take no volume snapshots, so
      the pod is the only way to a claim's data; emptyDir scratch space is not counted.

    Args:
        excluded_resources: the backup's `excludedResources` (pods, pod, po or * exclude pods).
        pods: the pods of the backed-up namespaces (API JSON).
        default_volumes_to_fs_backup: the backup's `defaultVolumesToFsBackup`.
    """
    if not {str(r).strip().lower() for r in excluded_resources} & _POD_NAMES:
        return None
    lost: list[str] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        lost += [f"{where}:{vol}" for vol in _fs_volumes(pod, default_volumes_to_fs_backup)]
    if not lost:
        return None
    shown = ", ".join(lost[:SHOWN_NAMES]) + (
        f" and {len(lost) - SHOWN_NAMES} more" if len(lost) > SHOWN_NAMES else ""
    )
    fix = "stop excluding pods"
    if not default_volumes_to_fs_backup:
        fix += f" and annotate the pods with {FS_BACKUP_ANNOTATION}=<volume names>"
    return (
        f"pods are excluded from the backup, so Velero backs up no pod volume: the data of "
        f"{len(lost)} volume(s) is not in it ({shown}); to keep it, {fix}"
    )

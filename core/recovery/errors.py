"""The recovery domain's errors; the tree below hangs off core.errors."""

#     PipelineError
#     ├── BackupFailed          Velero ended the backup Failed, PartiallyFailed or FailedValidation
#     ├── RestoreFailed         Velero ended the restore badly, or what it restored does not serve
#     ├── DrillFailed           a drill's restore lacks objects, differs, or is not available
#     ├── VeleroTimeout         a Velero object did not reach a final phase in the time allowed
#     └── StorageUnavailable    Velero cannot reach the backup storage location

from __future__ import annotations

from core.errors import PipelineError


class BackupFailed(PipelineError):
    """Velero ended the backup Failed, PartiallyFailed or FailedValidation."""


class RestoreFailed(PipelineError):
    """Velero ended the restore Failed or PartiallyFailed, or what it restored does not serve."""


class DrillFailed(PipelineError):
    """The backup did not restore: objects missing, different, or not available."""


class VeleroTimeout(PipelineError):
    """A Velero object did not reach a final phase in the time we were willing to wait."""


class StorageUnavailable(PipelineError):
    """Velero cannot reach the backup storage location (it re-validated it for a while)."""

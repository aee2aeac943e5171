"""The release domain's errors; the tree below hangs off core.errors."""

#     PipelineError
#     ├── ConfigError
#     │   └── SpecError         a release spec or Rollout document is invalid (also a ValueError)
#     ├── RolloutTimeout        a workload neither completed nor failed in the time allowed
#     ├── ReleaseFailed         the release did not reach its end state; rolled back where possible
#     ├── RollbackFailed        a rollback did not bring the app back to a healthy state
#     ├── ReleaseLocked         another release or rollback of the app held its lock too long
#     └── LockLost              another run took over the app's lock while this one held it

from __future__ import annotations

from core.errors import ConfigError, PipelineError


class SpecError(ConfigError, ValueError):
    """Permanent: a release spec or Rollout document is invalid; the message says what to fix."""


class RolloutTimeout(PipelineError):
    """The rollout neither completed nor failed within the time we were willing to wait."""


class ReleaseFailed(PipelineError):
    """The release did not reach its end state; the cluster was rolled back where possible."""


class RollbackFailed(PipelineError):
    """The rollback did not bring the Deployment back to a healthy state."""


class ReleaseLocked(PipelineError):
    """Another release or rollback of the app held its lock for longer than this run would wait."""


class LockLost(PipelineError):
    """The app's lock went to another run (this one could not renew it in time): stop writing."""

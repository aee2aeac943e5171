"""A release's progress artifact: created at its first move, updated in place afterwards."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact


class Progress:
    """The progress artifact `release-progress-<namespace>-<app>` of one release run."""

    def __init__(self, namespace: str, app: str) -> None:
        self.key = f"release-progress-{namespace}-{app}"
        self.id: Any = None

    def update(self, percent: float, text: str) -> None:
        """Show `percent` done with `text`, creating the artifact on the first call."""
        if self.id is None:
            self.id = create_progress_artifact(percent, key=self.key, description=text)
        else:
            update_progress_artifact(self.id, percent, description=text)

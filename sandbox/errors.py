"""The local platform's error: a component that could not be installed, built or started."""

from __future__ import annotations

from core.errors import PipelineError


class PlatformError(PipelineError):
    """A component of the local platform could not be installed, built or started."""

    def __init__(self, component: str, message: str, fix: str = "", **context: object) -> None:
        self.component = component
        self.fix = fix
        text = f"[{component}] {message}" + (f" -> {fix}" if fix else "")
        super().__init__(text, **context)

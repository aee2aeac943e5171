"""The pipeline's error tree: every failure says what failed, where, and whether retrying can help.

    PipelineError                  base; carries context (resource, namespace, revision, query, ...)
    ├── ConfigError                permanent: bad input or settings; the message says what to fix
    │   └── CredentialsError       permanent: credentials refused (401/403, bad login)
    ├── TransientError             worth retrying: connection refused, timeouts, 5xx, 429, conflicts
    └── PlatformError              a local-platform component failed to install, build or start

Retry policy (DESIGN.md principle 9) keys off this tree: only TransientError is retried.
Messages never contain secrets: callers pass names and addresses, never tokens or passwords.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    def __init__(self, message: str, **context: object) -> None:
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} ({details})"


class ConfigError(PipelineError):
    """Permanent: the input or configuration is wrong; retrying cannot help."""


class CredentialsError(ConfigError):
    """Permanent: a service refused the credentials it was given."""


class TransientError(PipelineError):
    """A fault that may pass: retry with backoff."""


class PlatformError(PipelineError):
    """A component of the local platform could not be installed, built or started."""

    def __init__(self, component: str, message: str, fix: str = "", **context: object) -> None:
        self.component = component
        self.fix = fix
        text = f"[{component}] {message}" + (f" -> {fix}" if fix else "")
        super().__init__(text, **context)

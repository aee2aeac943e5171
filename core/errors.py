"""The pipeline's error tree: each failure says what failed, where, and whether to retry."""

#     PipelineError                  base; carries context (resource, namespace, revision, ...)
#     ├── ConfigError                permanent: bad input or settings; the message says what to fix
#     │   └── CredentialsError       permanent: credentials refused (401/403, bad login)
#     └── TransientError             worth retrying: refused connections, timeouts, 5xx, 429, 409
#
# Each domain hangs its own errors off this tree, in one module: core/release/errors.py,
# core/recovery/errors.py, core/delivery/errors.py, core/ci/errors.py. The local platform's
# PlatformError lives in sandbox/errors.py.
#
# Retry policy (DESIGN.md principle 9) keys off this tree: only TransientError is retried.
# Messages never contain secrets: callers pass names and addresses, never tokens or passwords.

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

"""The CI stages' errors: a stage that ran and found a problem, or a tool that cannot run."""

#     PipelineError
#     ├── StageFailed           permanent: a stage ran and found a problem
#     │   ├── TestsFailed       failing tests, named
#     │   ├── CompileFailed     the code or its tests do not compile
#     │   ├── GateFailed        findings at or above the severity threshold
#     │   └── BuildFailed       the image build failed
#     └── ConfigError
#         └── ToolUnavailable   a required tool is missing or cannot be built
#
# All are permanent: the retry policy (tasks/retry.py) never retries them.

from __future__ import annotations

from typing import ClassVar

from core.errors import ConfigError, PipelineError


class StageFailed(PipelineError):
    """Permanent: a CI stage ran and found a problem; retrying cannot help."""


class TestsFailed(StageFailed):
    """Tests failed; the message names them."""

    __test__: ClassVar[bool] = False  # not a pytest test class


class CompileFailed(StageFailed):
    """The code or its tests do not compile; the message carries the compiler's output."""


class GateFailed(StageFailed):
    """Findings at or above the configured severity threshold; the message names them."""


class BuildFailed(StageFailed):
    """The image build failed; the message names the failing step."""


class ToolUnavailable(ConfigError):
    """A required tool is missing or cannot be built; the message says how to get it."""

"""The delivery domain's errors; the tree below hangs off core.errors."""

#     PipelineError
#     ├── DeliveryFailed        a stage failed; what ran before it is kept, later stages did not run
#     ├── ChecksFailed          health or smoke checks failed; `results` holds every check
#     └── EndpointsNotReady     fewer pods than wanted turned Ready in the time allowed

from __future__ import annotations

from collections.abc import Sequence

from core.delivery.checks import CheckResult
from core.errors import PipelineError


class DeliveryFailed(PipelineError):
    """A stage of the delivery failed; what ran before it is kept, later stages did not run."""


class ChecksFailed(PipelineError):
    """Health or smoke checks failed; `results` holds every check, passed or not."""

    def __init__(self, message: str, results: Sequence[CheckResult], **context: object) -> None:
        self.results = list(results)
        super().__init__(message, **context)


class EndpointsNotReady(PipelineError):
    """Fewer pods than wanted turned Ready within the time we were willing to wait."""
